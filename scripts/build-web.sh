#!/usr/bin/env bash
# Builds the browser app into web/dist/ (cargo + wasm-bindgen; nothing is downloaded at build time).
# Serve it with `bash scripts/serve-web.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}"
bash scripts/setup.sh web
profile="${TESSERA_WEB_PROFILE:-release}"
cargo build --locked --lib --target wasm32-unknown-unknown --profile "$profile"
dir="$profile"; [ "$profile" = dev ] && dir=debug
rm -rf web/dist && mkdir -p web/dist
# The names and producers sections only serve debuggers and tools: 8.7 MB of names (BENCHMARKS.md,
# "Web bundle size"); a panic's message still reaches the console.
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section \
    --out-dir web/dist --out-name tessera \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$dir/tessera.wasm"
cp index.html web/dist/index.html
# The offline copy (web/sw.js): its cache is named after this build's files, so a new build
# replaces it.
build=$(cat web/dist/index.html web/dist/tessera.js web/dist/tessera_bg.wasm | sha256sum | cut -c1-16)
sed "s/__BUILD__/$build/" web/sw.js > web/dist/sw.js
echo "web bundle: web/dist ($(du -sh web/dist | cut -f1)); serve it with: bash scripts/serve-web.sh"
