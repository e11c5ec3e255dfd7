#!/usr/bin/env bash
# Create .venv with the exact pins of requirements.lock and install narcotag into it (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "narcotag: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-lock
if [ ! -f "$stamp" ] || ! cmp -s requirements.lock "$stamp"; then
  echo "narcotag: installing pinned dependencies (requirements.lock) ..."
  .venv/bin/python -m pip install -q --upgrade pip setuptools wheel
  .venv/bin/python -m pip install -q -r requirements.lock
  cp requirements.lock "$stamp"
fi
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
# DVC's anonymous usage analytics stay off in this project (also set in .dvc/config).
export DVC_NO_ANALYTICS=1
