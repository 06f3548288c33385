#!/usr/bin/env bash
# One prepared GPU check: efficiency at Qwen2.5-7B shape + the tiny preset's training and
# evaluation on CUDA. Needs only python with torch + transformers; run from anywhere:
#   OUT=/some/folder scripts/gpu_check.sh            # on a GPU machine (<= 8 min on an H200)
#   scripts/gpu_check.sh --cpu-rehearsal --out DIR   # toy sizes on the CPU (what the tests run)
# Other flags: --budget-s SECONDS, --phases tiny efficiency. Exit status 0 only when every check passed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# the repository's .venv when there is one (dev machines), else whatever python has torch (GPU images)
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY="$(command -v python3 || command -v python)"; fi
fi
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$PY" -m solopo.bench.gpu_check "$@"
