#!/usr/bin/env bash
# Sets up the virtualenv (with the text, test and beam extras) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh text,test,beam
. .venv/bin/activate
export TF_CPP_MIN_LOG_LEVEL=2 TF_USE_LEGACY_KERAS=1 HF_HUB_OFFLINE=1
set +e
python -m pytest -q -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
