#!/usr/bin/env bash
# Builds the browser app into web/dist/ (cargo + wasm-bindgen; nothing is downloaded at build time).
# Serve it with `bash scripts/serve-web.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/tessera/target}"
bash scripts/setup.sh web
# The web profile (Cargo.toml) is sized for download; TESSERA_WEB_PROFILE=release or dev for others.
profile="${TESSERA_WEB_PROFILE:-web}"
cargo build --locked --lib --target wasm32-unknown-unknown --profile "$profile"
dir="$profile"; [ "$profile" = dev ] && dir=debug
rm -rf web/dist && mkdir -p web/dist
# The names and producers sections only serve debuggers and tools: 8.7 MB of names (BENCHMARKS.md,
# "Web bundle size"); a panic's message still reaches the console.
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section \
    --out-dir web/dist --out-name tessera \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/$dir/tessera.wasm"
cp index.html web/dist/index.html
# The shipped models and the MNIST digits are not in the wasm: the page fetches them from the same
# paths as in the repository (src/shipped.rs and tessera-data's mnist.rs name them; every quoted
# "assets/..." there is one).
assets=$(grep -oh '"assets/[^"]*"' src/shipped.rs crates/tessera-data/src/mnist.rs | tr -d '"' | sort -u)
for f in $assets; do
    mkdir -p "web/dist/$(dirname "$f")"
    cp "$f" "web/dist/$f"
done
# The offline copy (web/sw.js) precaches the code and those files. Its cache is named after this
# build's files, so a new build replaces it.
build=$(cd web/dist && cat index.html tessera.js tessera_bg.wasm $assets | sha256sum | cut -c1-16)
list=$(printf '"./%s", ' $assets)
sed -e "s/__BUILD__/$build/" -e "s|__ASSETS__|${list%, }|" web/sw.js > web/dist/sw.js
echo "web bundle: web/dist ($(du -sh web/dist | cut -f1)); serve it with: bash scripts/serve-web.sh"
