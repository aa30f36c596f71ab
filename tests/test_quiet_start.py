"""Command-line entry points keep TensorFlow's C++ start-up lines off the console."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_UP_LINES = ('cudart_stub', 'cpu_feature_guard', 'oneDNN custom operations')


@pytest.mark.slow
def test_converter_help_prints_only_the_usage():
  env = {k: v for k, v in os.environ.items() if k != 'TF_CPP_MIN_LOG_LEVEL'}
  env['PYTHONPATH'] = REPO + os.pathsep + os.environ.get('PYTHONPATH', '')
  result = subprocess.run([sys.executable, '-m', 'tfrecords_tools.coco_panoptic', '--help'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
  assert result.stdout.startswith('usage:')
  console = result.stdout + result.stderr
  assert not [line for line in console.splitlines()
              if any(marker in line for marker in START_UP_LINES)], console
