#!/usr/bin/env bash
# Creates .venv with the pinned stack if it is missing or stale. Idempotent; safe to call before every command.
set -euo pipefail
cd "$(dirname "$0")/.."
stamp=.venv/.solopo-installed
want=$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
start=$(date +%s)
echo "[bootstrap] creating .venv (one-off, ~1-3 min)" >&2
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade uv >&2
links=()
# The machine's local wheel folder holds the CPU build of torch; without it an unpinned resolver pulls CUDA.
[ -d /opt/wheels ] && links=(--find-links /opt/wheels)
export UV_COMPILE_BYTECODE=1 DS_BUILD_OPS=0
.venv/bin/python -m uv pip install --python .venv/bin/python "${links[@]}" -r requirements.txt -e . >&2
echo "$want" > "$stamp"
echo "[bootstrap] environment ready in $(( $(date +%s) - start )) s" >&2
