#!/usr/bin/env bash
# Creates (or reuses) the project's virtualenv in .venv and installs the package into it.
#   bash scripts/setup_env.sh            core install (TensorFlow, Model Garden, ...)
#   bash scripts/setup_env.sh text,test  with extras (text embeddings tool, test tools)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python_bin="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating virtualenv .venv with $($python_bin --version)"
  "$python_bin" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
target="."
[ -n "$extras" ] && target=".[${extras}]"
echo "[setup] pip install -e '$target' (first time: a few minutes)"
python -m pip install --quiet --disable-pip-version-check -e "$target"
echo "[setup] ready: $(python -c 'import tensorflow as tf; print("tensorflow", tf.__version__)' 2>/dev/null)"
