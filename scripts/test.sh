#!/usr/bin/env bash
# Sets up the virtualenv (with the text, test and beam extras) and runs the test suite (all but the
# opt-in `long` tests; `--long` adds them, see tests/conftest.py).
# Two pytest-xdist workers; a test file is one unit of work (its module fixtures are built once;
# tests/conftest.py orders the files);
# arguments go to pytest and win over these defaults, e.g. `-n 0` for one process.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh text,test,beam
. .venv/bin/activate
export TF_CPP_MIN_LOG_LEVEL=2 TF_USE_LEGACY_KERAS=1 HF_HUB_OFFLINE=1
set +e
python -m pytest -q -p no:cacheprovider --numprocesses=2 --dist=loadfile --durations=15 "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
  exit 1
fi
exit "$status"
