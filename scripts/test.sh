#!/usr/bin/env bash
# Quickstart, command 2: run the test suite (sets up .venv first when needed).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PATH="$PWD/.venv/bin:$PATH"  # dvc.yaml runs `python -m pipeline.<stage>`: the venv python
exec .venv/bin/python -m pytest "$@"
