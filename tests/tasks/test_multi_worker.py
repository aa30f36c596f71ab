"""MultiWorkerMirroredStrategy with 2 worker processes on localhost gives the single-device loss
and update on the same global batch.

Each worker is a subprocess of tests/tasks/replica_step.py with its own TF_CONFIG task index; each
has one replica, and worker i takes image i of the global batch. All runs start from the weights
the one_device run writes. Only loopback addresses are used.

Tolerance (as test_distribution.py): 1e-4 relative on the loss (float32 sums in another order),
1e-5 absolute on each variable's sum after the update.
"""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from tests.tasks import helpers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 400


def _free_ports(count):
  """`count` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
  sockets = []
  try:
    for _ in range(count):
      s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
      s.bind(('127.0.0.1', 0))
      sockets.append(s)
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def _command(strategy, suite, weights, output):
  return [sys.executable, '-m', 'tests.tasks.replica_step', f'--strategy={strategy}',
          f'--suite={suite}', f'--weights={weights}', f'--output={output}']


def _env(tf_config=None):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', TF_USE_LEGACY_KERAS='1',
             CUDA_VISIBLE_DEVICES='-1',
             PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  env.pop('TF_CONFIG', None)
  if tf_config is not None:
    env['TF_CONFIG'] = json.dumps(tf_config)
  return env


def _read(path):
  with open(path) as f:
    return json.load(f)


def _run_workers(suite, weights, outputs, log_dir):
  """Starts both workers, waits for both (bounded), and fails with each worker's log tail."""
  workers = [f'localhost:{port}' for port in _free_ports(len(outputs))]
  processes, logs = [], []
  try:
    for index, output in enumerate(outputs):
      log = open(os.path.join(log_dir, f'worker_{index}.log'), 'w+')
      logs.append(log)
      tf_config = {'cluster': {'worker': workers}, 'task': {'type': 'worker', 'index': index}}
      processes.append(subprocess.Popen(
          _command('multi_worker', suite, weights, output), cwd=REPO, env=_env(tf_config),
          stdout=log, stderr=subprocess.STDOUT))
    codes = [p.wait(timeout=TIMEOUT_S) for p in processes]
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
        p.wait()
  for index, (code, log) in enumerate(zip(codes, logs)):
    log.seek(0)
    assert code == 0, f'worker {index} exited with {code}:\n{log.read()[-3000:]}'
    log.close()


@pytest.mark.slow
def test_multi_worker_two_processes_matches_one_device(tmp_path):
  suite = helpers.make_suite(str(tmp_path))
  weights = str(tmp_path / 'initial_weights')
  single_path = str(tmp_path / 'one_device.json')
  result = subprocess.run(_command('one_device', suite, weights, single_path), cwd=REPO,
                          env=_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
  assert result.returncode == 0, result.stderr[-3000:]
  single = _read(single_path)

  outputs = [str(tmp_path / f'worker_{i}.json') for i in range(2)]
  _run_workers(suite, weights, outputs, str(tmp_path))
  for index, output in enumerate(outputs):
    worker = _read(output)
    print(f'worker {index} loss {worker["loss"]:.6f}, one device {single["loss"]:.6f}')
    assert worker['num_replicas'] == 2
    assert worker['image_sum'] == single['image_sum']
    assert worker['loss'] == pytest.approx(single['loss'], rel=1e-4)
    for name, value in single['variable_sums'].items():
      np.testing.assert_allclose(worker['variable_sums'][name], value, atol=1e-5, err_msg=name)
