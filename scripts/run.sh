#!/usr/bin/env bash
# The README's first command: set up what is missing, build, and open the Tessera app.
# Arguments are passed to the binary: `bash scripts/run.sh info`, `bash scripts/run.sh --help`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}"
bash scripts/setup.sh app
exec cargo run --release --locked --bin tessera -- "$@"
