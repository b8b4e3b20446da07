#!/usr/bin/env bash
# Install augframe into the current Python. torch is pinned to 2.13.0 only where torch is missing,
# so the project's own range (torch>=2.3) never pulls a multi-GB CUDA build by accident.
# Usage: bash scripts/setup.sh [--test]   (--test adds the test extras)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q torch==2.13.0
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
"$PY" -m pip install -q -e ".${extras}"
