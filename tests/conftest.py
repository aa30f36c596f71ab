"""Test-wide settings: tf_keras for every `tf.keras`, quiet TensorFlow logs, and the opt-in
`long` tests (marked `@pytest.mark.long`: each trains or XLA-compiles for minutes). They are
deselected (pytest's summary counts them) unless `--long` is given:

  bash scripts/test.sh                   # what CI runs: everything but the long tests
  bash scripts/test.sh --long -m long    # only the long tests
  bash scripts/test.sh --long            # everything
"""
import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '-1')


def pytest_addoption(parser):
  parser.addoption('--long', action='store_true', default=False,
                   help='also run the tests marked long (each trains or XLA-compiles for '
                        'minutes; not in CI)')


def pytest_collection_modifyitems(config, items):
  if config.getoption('--long'):
    return
  long_tests = [item for item in items if item.get_closest_marker('long')]
  if long_tests:
    config.hook.pytest_deselected(items=long_tests)
    items[:] = [item for item in items if not item.get_closest_marker('long')]
