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
log=.venv/pip-install.log
target="."
[ -n "$extras" ] && target=".[${extras}]"
echo "[setup] pip install -e '$target' (first time: a few minutes; log in $log)"
if ! { python -m pip install --upgrade pip && \
       python -m pip install --disable-pip-version-check -e "$target"; } > "$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "[setup] error: pip install failed; full log in $log" >&2
  exit 1
fi
echo "[setup] ready: $(python -c 'import tensorflow as tf; print("tensorflow", tf.__version__)' 2>/dev/null)"
