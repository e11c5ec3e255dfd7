#!/usr/bin/env bash
# Quickstart, command 1: set everything up and run the main job on the built-in sample data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PATH="$PWD/.venv/bin:$PATH"  # dvc.yaml runs `python -m pipeline.<stage>`: the venv python
[ -d ../shared/data/markets ] || echo "narcotag: ../shared is not here; running on the built-in sample only."
.venv/bin/dvc repro
.venv/bin/narcotag summary
.venv/bin/narcotag score data/raw/sample --model models:/narcotag-tagger@champion --out data/scored/sample --report --fresh && echo "narcotag: sample scored -> data/scored/sample/ (open data/scored/sample/report.html; records in parts/, rejects in quarantine.jsonl); MLflow UI: .venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db"
