"""Test-wide settings: tf_keras for every `tf.keras`, quiet TensorFlow logs, and the opt-in
`long` tests (marked `@pytest.mark.long`: each trains or XLA-compiles for minutes). They are
deselected (pytest's summary counts them) unless `--long` is given:

  bash scripts/test.sh                   # what CI runs: everything but the long tests
  bash scripts/test.sh --long -m long    # only the long tests
  bash scripts/test.sh --long            # everything

Under pytest-xdist (`scripts/test.sh` runs two workers with `--dist=loadfile`), each test file is
one unit of work. Files with more `slow` tests are handed out first (the two longest before all),
so that a long file does not start last and run alone.
"""
import collections
import os

import pytest

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '-1')


def pytest_addoption(parser):
  parser.addoption('--long', action='store_true', default=False,
                   help='also run the tests marked long (each trains or XLA-compiles for '
                        'minutes; not in CI)')


def pytest_collection_modifyitems(config, items):
  if not config.getoption('--long'):
    long_tests = [item for item in items if item.get_closest_marker('long')]
    if long_tests:
      config.hook.pytest_deselected(items=long_tests)
      items[:] = [item for item in items if not item.get_closest_marker('long')]
  _order_for_xdist(items)


# The longest test files under xdist on 2 cores (~280 s and ~150 s) start first.
_LONGEST_FILES = ('tests/test_end_to_end.py', 'tests/test_evaluation_paths.py')


def _order_for_xdist(items):
  """Orders the test files: the longest first, then by their count of slow tests."""
  files = collections.OrderedDict()
  for item in items:
    files.setdefault(item.nodeid.split('::')[0], []).append(item)
  def order(path):
    longest = _LONGEST_FILES.index(path) if path in _LONGEST_FILES else len(_LONGEST_FILES)
    return longest, -sum(1 for item in files[path] if item.get_closest_marker('slow'))
  ordered = sorted(files, key=order)  # Stable: ties keep collection order.
  items[:] = [item for path in ordered for item in files[path]]
