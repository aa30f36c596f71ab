"""Fault tolerance: SIGKILL + restart resumes at the checkpoint's step and data position; a
corrupted latest checkpoint falls back to the previous one; a NaN loss skips the update and is
counted."""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf, tf_keras

from official.core import exp_factory
from official.core import task_factory
from official_dataseg import common
from official_dataseg import registry_imports  # pylint: disable=unused-import
from official_dataseg.dataloaders import input_builder
from official_dataseg.tasks import multi_dataset_trainer
from official_dataseg.utils import experiment as experiment_lib
from tests.tasks import helpers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_STEPS = 6
KILL_AFTER_CHECKPOINT = 4
SMALL_DEMO = ','.join([
    'task.model.input_size=[64,64,3]', 'task.train_data.output_size=[64,64]',
    'task.validation_data.output_size=[64,64]', 'task.train_data.global_batch_size=2',
    'task.train_data.max_instances=8', 'task.train_data.shuffle_buffer_size=4',
    'task.model.pixel_decoder.num_filters=16', 'task.model.pixel_decoder.mask_embedding_dim=16',
    'task.model.transformer_decoder.num_layers=3', 'task.model.transformer_decoder.hidden_size=16',
    'task.model.transformer_decoder.ffn_dim=32', 'task.model.transformer_decoder.num_queries=6',
    'task.model.backbone.resnet.model_id=10', f'trainer.train_steps={TRAIN_STEPS}',
    'trainer.steps_per_loop=1', 'trainer.summary_interval=1', 'trainer.checkpoint_interval=2',
    'trainer.max_to_keep=5',
])


def _train_command(model_dir, replicas=1):
  command = [sys.executable, os.path.join(REPO, 'train.py'), '--experiment=dataseg_demo',
             '--mode=train', f'--model_dir={model_dir}', f'--params_override={SMALL_DEMO}']
  if replicas > 1:  # MirroredStrategy over logical CPU devices.
    command[-1] += ',runtime.distribution_strategy=mirrored'
    command.append(f'--cpu_replicas={replicas}')
  return command


def _env():
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', TF_USE_LEGACY_KERAS='1',
              CUDA_VISIBLE_DEVICES='-1',
              PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))


def _latest_step(model_dir) -> int:
  latest = tf.train.latest_checkpoint(str(model_dir))
  return int(latest.rsplit('-', 1)[1]) if latest else 0


def _stream(params, replicas):
  """A fresh iterator over the per-replica batches one input pipeline makes for `replicas`."""
  # The training process set no global seed; tf.data's seeded shuffle combines the global seed
  # with its own, so clear any global seed that an earlier test in this process set.
  tf.random.set_seed(None)
  context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                       num_replicas_in_sync=replicas)
  return iter(input_builder.build_train_dataset(params.task.train_data, context))


def _numpy(batch):
  return {k: v.numpy() for k, v in batch.items()}


def _fresh_batches(params, replicas, first, count):
  """Per-replica batches `first` .. `first + count - 1` of a fresh stream."""
  iterator = _stream(params, replicas)
  for _ in range(first):
    next(iterator)
  return [_numpy(next(iterator)) for _ in range(count)]


def _saved_position(params, replicas, checkpoint):
  """(the buffered per-replica batches, the iterator's next one) saved in `checkpoint`."""
  iterator = _stream(params, replicas)
  tf.train.Checkpoint(train_iterator=iterator).read(checkpoint).expect_partial()
  reader = tf.train.load_checkpoint(checkpoint)
  assert reader.get_tensor('train_input_buffer/filled/.ATTRIBUTES/VARIABLE_VALUE')
  buffered = [{key: reader.get_tensor(f'train_input_buffer/slots/{replica}/{key}/'
                                      '.ATTRIBUTES/VARIABLE_VALUE')
               for key in iterator.element_spec}
              for replica in range(replicas)]
  return buffered, _numpy(next(iterator))


def _assert_same_batch(got, expected, message):
  for key, value in expected.items():
    if np.issubdtype(value.dtype, np.floating):
      # The same example; recomputed floats (box corners) may differ in the last bit (seen once
      # in ~10 runs, 6e-8 on a [0, 1] coordinate, with another test process on the cores).
      np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-6, err_msg=f'{message} {key}')
    else:
      np.testing.assert_array_equal(got[key], value, err_msg=f'{message} {key}')


@pytest.mark.slow
@pytest.mark.parametrize('replicas', [1, 2], ids=['one_device', 'mirrored_2_cpus'])
def test_sigkill_then_restart_resumes_at_checkpoint_step_and_data_position(tmp_path, replicas):
  """With the device input buffer on (the default), one device or MirroredStrategy over two."""
  helpers.make_suite(str(tmp_path / 'demo_output'))
  model_dir = tmp_path / 'model'
  process = subprocess.Popen(_train_command(model_dir, replicas), cwd=tmp_path, env=_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 400
  while _latest_step(model_dir) < KILL_AFTER_CHECKPOINT:
    assert process.poll() is None, f'training ended early:\n{process.stderr.read()[-3000:]}'
    assert time.time() < deadline, 'no checkpoint in time'
    time.sleep(0.2)
  process.send_signal(signal.SIGKILL)
  process.wait()
  killed_at = _latest_step(model_dir)
  assert KILL_AFTER_CHECKPOINT <= killed_at < TRAIN_STEPS

  resumed = subprocess.run(_train_command(model_dir, replicas), cwd=tmp_path, env=_env(),
                           capture_output=True, text=True, timeout=400)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  restored = re.findall(r'restored from checkpoint: (\S+)', resumed.stdout)
  assert restored and restored[0].endswith(f'ckpt-{killed_at}'), resumed.stdout[-2000:]
  assert _latest_step(model_dir) == TRAIN_STEPS  # Same end as an uninterrupted run.
  final = tf.train.load_checkpoint(str(model_dir / f'ckpt-{TRAIN_STEPS}'))
  assert final.get_tensor('global_step/.ATTRIBUTES/VARIABLE_VALUE') == TRAIN_STEPS

  # Data position. Each step takes one per-replica batch per replica from the one host stream.
  # An uninterrupted run, after TRAIN_STEPS steps, holds the next step's batches in the device
  # buffer and its iterator stands one step further. A restart from the first batch would be
  # (TRAIN_STEPS - killed_at) steps into the stream instead.
  params = experiment_lib.parse_experiment('dataseg_demo', [str(model_dir / 'params.yaml')])
  os.chdir(tmp_path)  # The demo's dataset paths are relative to the working directory.
  try:
    expected = _fresh_batches(params, replicas, TRAIN_STEPS * replicas, replicas + 1)
    buffered, after = _saved_position(params, replicas, str(model_dir / f'ckpt-{TRAIN_STEPS}'))
    restarted = _fresh_batches(params, replicas, (TRAIN_STEPS - killed_at) * replicas, 1)[0]
  finally:
    os.chdir(REPO)
  for replica in range(replicas):
    _assert_same_batch(buffered[replica], expected[replica], f'buffer of replica {replica}:')
  _assert_same_batch(after, expected[replicas], 'iterator:')
  assert any(not np.array_equal(restarted[k], v) for k, v in expected[0].items())


def test_corrupted_latest_checkpoint_falls_back_to_previous(tmp_path, capsys):
  variable = tf.Variable(0.0)
  checkpoint = tf.train.Checkpoint(v=variable)
  manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=3)
  for value in (1.0, 2.0, 3.0):
    variable.assign(value)
    manager.save()
  latest = manager.latest_checkpoint
  with open(latest + '.data-00000-of-00001', 'r+b') as f:  # Damage the newest data file.
    size = f.seek(0, 2)
    f.seek(0)
    f.write(b'\xff' * size)
  with open(latest + '.index', 'wb') as f:
    f.write(b'not an index')
  variable.assign(0.0)
  fallback = multi_dataset_trainer.FallbackCheckpointManager(checkpoint, str(tmp_path),
                                                             max_to_keep=3)
  restored = fallback.restore_or_initialize()
  assert restored.endswith('ckpt-2')
  assert float(variable.numpy()) == 2.0
  assert 'ckpt-3 is unreadable' in capsys.readouterr().out


@pytest.mark.slow
def test_nan_loss_skips_update_and_is_counted(tmp_path):
  tfrecord_dir = helpers.make_suite(str(tmp_path))
  params = exp_factory.get_exp_config('dataseg_demo')
  params.override(helpers.SMALL_SIZES, is_strict=True)
  params.override(helpers.TINY_RESNET, is_strict=True)
  helpers.point_at_suite(params, tfrecord_dir)
  task = task_factory.get_task(params.task)
  model = task.build_model()
  optimizer = task.create_optimizer(params.trainer.optimizer_config, params.runtime)
  metrics = task.build_metrics()
  step = tf.function(lambda inputs: task.train_step(inputs, model, optimizer, metrics))
  batch = next(iter(input_builder.build_train_dataset(params.task.train_data)))
  step(batch)  # A finite step creates the optimizer slots.
  before = [v.numpy() for v in model.trainable_variables]
  poisoned = dict(batch)
  poisoned[common.IMAGE] = batch[common.IMAGE] * np.nan
  for in_a_row in (1, 2):
    logs = step(poisoned)
    assert not bool(logs['finite'])
    assert int(task.consecutive_nonfinite_steps.numpy()) == in_a_row
  for variable, value in zip(model.trainable_variables, before):
    np.testing.assert_array_equal(variable.numpy(), value, err_msg=variable.name)
  by_name = {m.name: m for m in metrics}
  assert float(by_name['skipped_nonfinite_steps'].result()) == pytest.approx(2 / 3)
  logs = step(batch)
  assert bool(logs['finite']) and int(task.consecutive_nonfinite_steps.numpy()) == 0
  tf_keras.backend.clear_session()
