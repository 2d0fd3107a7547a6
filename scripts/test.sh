#!/usr/bin/env bash
# The README's second command: set up what is missing, then run the whole test suite:
# every crate's tests (GPU tests on the best adapter; lavapipe on a machine without a GPU)
# the browser build of the app and its end-to-end check in headless Chromium, and the
# benchmarks in their quick mode.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}"
bash scripts/setup.sh test
echo "== native tests (target dir $CARGO_TARGET_DIR)"
cargo test --workspace --locked
echo "== GPU tests (ignored by plain cargo test: they need an adapter; lavapipe here without a GPU)"
# --tests: only the test targets, so no doc example marked `ignore` gets run.
cargo test --workspace --locked --tests -- --ignored
echo "== browser build"
bash scripts/build-web.sh
echo "== browser end to end (headless Chromium): WebGPU on its software adapter, then without WebGPU"
node web/e2e.mjs
WEBGPU=0 node web/e2e.mjs
echo "== benchmarks, quick mode (no timing asserted: checks the commands run)"
# Every family and anchor on the CPU backend, and the shipped VAR on the wgpu device: all of them on
# lavapipe took about 10 minutes (mostly the anchors), and the GPU tests above already sample every
# family there.
"$CARGO_TARGET_DIR/debug/tessera" --device cpu bench sample --quick
"$CARGO_TARGET_DIR/debug/tessera" bench sample var --quick
"$CARGO_TARGET_DIR/debug/tessera" bench train --quick
"$CARGO_TARGET_DIR/debug/tessera" bench kernels --quick
echo "== all tests passed"
