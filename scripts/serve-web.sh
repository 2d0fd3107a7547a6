#!/usr/bin/env bash
# Serves web/dist/ on http://127.0.0.1:${PORT:-8080}/ (localhost counts as a secure context, so WebGPU works).
set -euo pipefail
cd "$(dirname "$0")/../web/dist" 2>/dev/null || { echo "no web/dist yet: run bash scripts/build-web.sh first" >&2; exit 1; }
port="${PORT:-8080}"
echo "Tessera on http://127.0.0.1:$port/"
exec python3 -m http.server "$port" --bind 127.0.0.1
