#!/usr/bin/env bash
# Installs what a fresh Debian/Ubuntu machine lacks for Tessera, and nothing twice.
#   setup.sh app    the desktop app: Vulkan loader + Mesa drivers (lavapipe when there is no GPU), X11/Wayland libs
#   setup.sh test   the test suite: the above + the wasm32 target + wasm-bindgen-cli of the Cargo.lock version,
#                   Chromium and Node.js with playwright-core for the browser end-to-end check
#   setup.sh web    the browser build: the wasm32 target + wasm-bindgen-cli
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-test}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_packages() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! command -v apt-get >/dev/null; then
        echo "setup: please install these system packages (or your system's equivalents): ${missing[*]}" >&2
        return 0
    fi
    echo "setup: installing ${missing[*]}" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

wasm_toolchain() {
    if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
        echo "setup: adding the wasm32-unknown-unknown target" >&2
        rustup target add wasm32-unknown-unknown
    fi
    # wasm-bindgen's CLI must be exactly the version of the crate in Cargo.lock.
    local want
    want=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/, ""); print; exit}' Cargo.lock)
    if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]; then
        echo "setup: installing wasm-bindgen-cli $want (about 12 minutes on 2 cores, once)" >&2
        # No --locked: its lock pins a crate the registry mirror lacks (stack-notes §3).
        cargo install -q wasm-bindgen-cli --version "$want"
    fi
}

# The browser end-to-end check: Debian's Chromium, driven by playwright-core (web/package.json) from
# Node.js; npm ci is cheap when web/node_modules is already there.
browser_tools() {
    apt_packages chromium
    command -v node >/dev/null && command -v npm >/dev/null || apt_packages nodejs npm
    if [ ! -d web/node_modules/playwright-core ]; then
        echo "setup: installing playwright-core into web/node_modules" >&2
        npm ci --prefix web --no-audit --no-fund --silent
    fi
}

# Vulkan loader and Mesa's drivers: lavapipe is the software adapter CI and GPU-less machines use.
graphics=(libvulkan1 mesa-vulkan-drivers)
# What winit opens at run time for a window on X11 or Wayland.
windowing=(libxkbcommon-x11-0 libxcursor1 libxrandr2 libxi6 libx11-xcb1 libwayland-client0 libwayland-cursor0 libwayland-egl1)

case "$what" in
    app)  apt_packages "${graphics[@]}" "${windowing[@]}" ;;
    test) apt_packages "${graphics[@]}"; wasm_toolchain; browser_tools ;;
    web)  wasm_toolchain ;;
    *) echo "usage: setup.sh app|test|web" >&2; exit 2 ;;
esac
