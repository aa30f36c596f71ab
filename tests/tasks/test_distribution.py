"""MirroredStrategy over 2 logical CPU devices gives the single-device loss and update on the same
global batch (each run is a subprocess of tests/tasks/replica_step.py; same initial weights).

Tolerance: 1e-4 relative on the loss (float32 sums in another order), 1e-5 absolute on each
variable's sum after the update.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.tasks import helpers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(strategy, suite, weights, output):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', TF_USE_LEGACY_KERAS='1',
             CUDA_VISIBLE_DEVICES='-1',
             PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  result = subprocess.run([sys.executable, '-m', 'tests.tasks.replica_step',
                           f'--strategy={strategy}', f'--suite={suite}',
                           f'--weights={weights}', f'--output={output}'],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(output) as f:
    return json.load(f)


@pytest.mark.slow
def test_mirrored_two_cpus_matches_one_device(tmp_path):
  suite = helpers.make_suite(str(tmp_path))
  weights = str(tmp_path / 'initial_weights')
  single = _run('one_device', suite, weights, str(tmp_path / 'one_device.json'))
  mirrored = _run('mirrored', suite, weights, str(tmp_path / 'mirrored.json'))
  assert mirrored['num_replicas'] == 2
  assert mirrored['image_sum'] == single['image_sum']
  assert mirrored['loss'] == pytest.approx(single['loss'], rel=1e-4)
  for name, value in single['variable_sums'].items():
    np.testing.assert_allclose(mirrored['variable_sums'][name], value, atol=1e-5, err_msg=name)
