"""Test-wide settings: tf_keras for every `tf.keras`, quiet TensorFlow logs, and the opt-in
`long` tests (marked `@pytest.mark.long`: each trains or XLA-compiles for minutes). They are
deselected (pytest's summary counts them) unless `--long` is given:

  bash scripts/test.sh                   # what CI runs: everything but the long tests
  bash scripts/test.sh --long -m long    # only the long tests
  bash scripts/test.sh --long            # everything

Under pytest-xdist (`scripts/test.sh` runs two workers with `--dist=loadgroup`), each test file is
one unit of work, and so is `tests/serving/` as a whole (its package-scoped fixtures export
SavedModels once per worker only if the package's tests run together). Units with more `slow`
tests are handed out first (the three longest before all), so that a long file does not start last
and run alone.
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


# First: pytest-xdist's own hook reads the `xdist_group` marks set here.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
  if not config.getoption('--long'):
    long_tests = [item for item in items if item.get_closest_marker('long')]
    if long_tests:
      config.hook.pytest_deselected(items=long_tests)
      items[:] = [item for item in items if not item.get_closest_marker('long')]
  _group_for_xdist(items)

# Packages whose tests share package-scoped fixtures: one xdist unit each.
_PACKAGE_UNITS = ('tests/serving/',)
# The longest units (measured under xdist on 2 cores: ~350 s, ~280 s, ~150 s) start first.
_LONGEST_UNITS = ('tests/serving/', 'tests/test_end_to_end.py', 'tests/test_evaluation_paths.py')


def _xdist_unit(item) -> str:
  path = item.nodeid.split('::')[0]
  for package in _PACKAGE_UNITS:
    if path.startswith(package):
      return package
  return path


def _group_for_xdist(items):
  """Marks each item with its unit's `xdist_group`; the longest units first, then by their count
  of slow tests."""
  units = collections.OrderedDict()
  for item in items:
    units.setdefault(_xdist_unit(item), []).append(item)
  def order(unit):
    longest = _LONGEST_UNITS.index(unit) if unit in _LONGEST_UNITS else len(_LONGEST_UNITS)
    return longest, -sum(1 for item in units[unit] if item.get_closest_marker('slow'))
  ordered = sorted(units, key=order)  # Stable: ties keep collection order.
  items[:] = [item for unit in ordered for item in units[unit]]
  for unit in ordered:
    for item in units[unit]:
      item.add_marker(pytest.mark.xdist_group(unit))
