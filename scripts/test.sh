#!/usr/bin/env bash
# The README's second command: set up what is missing, then run the whole test suite:
# every crate's tests (GPU tests on the best adapter; lavapipe on a machine without a GPU)
# and the browser build of the app.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}"
bash scripts/setup.sh test
echo "== native tests (target dir $CARGO_TARGET_DIR)"
cargo test --workspace --locked
echo "== browser build"
bash scripts/build-web.sh
echo "== all tests passed"
