"""`DeviceInputBuffer`: batch t from the devices, batch t + 1 copied during step t, exact restore.

References: a `tf.data.Dataset.range` stream, whose elements name their own position, and the
graph of the trainer's traced train loop (what the step's inputs depend on).
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official.core import exp_factory
from official.core import task_factory
from official_dataseg import registry_imports  # pylint: disable=unused-import
from official_dataseg.tasks import device_input_buffer
from official_dataseg.tasks import multi_dataset_trainer
from tests.tasks import helpers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _stream():
  """Element i: {'position': i, 'image': [2, 3] filled with i (uint8)}."""
  return tf.data.Dataset.range(1000).map(lambda i: {
      'position': i, 'image': tf.fill([2, 3], tf.cast(i, tf.uint8))})


def _loop(buffer, strategy):
  @tf.function
  def run_steps(iterator, num_steps):
    positions = tf.TensorArray(tf.int64, size=num_steps)
    for step in tf.range(num_steps):
      inputs = buffer.next_inputs(strategy, iterator)
      per_replica = strategy.run(lambda x: x['position'], args=(inputs,))
      positions = positions.write(step, strategy.experimental_local_results(per_replica)[0])
    return positions.stack()
  return run_steps


def test_step_t_reads_batch_t_and_the_buffer_then_holds_t_plus_1():
  strategy = tf.distribute.OneDeviceStrategy('/cpu:0')
  iterator = iter(_stream())
  buffer = device_input_buffer.DeviceInputBuffer(iterator.element_spec, ['/cpu:0'])
  buffer.fill_if_empty(iterator)
  buffer.fill_if_empty(iterator)  # Already full: takes nothing from the stream.
  run_steps = _loop(buffer, strategy)
  np.testing.assert_array_equal(run_steps(iterator, tf.constant(3)), [0, 1, 2])
  assert int(buffer.slots[0]['position'].numpy()) == 3
  np.testing.assert_array_equal(buffer.slots[0]['image'].numpy(), np.full([2, 3], 3, np.uint8))
  assert int(next(iterator)['position']) == 4


def test_checkpoint_restores_the_exact_stream(tmp_path):
  strategy = tf.distribute.OneDeviceStrategy('/cpu:0')

  def fresh():
    iterator = iter(_stream())
    buffer = device_input_buffer.DeviceInputBuffer(iterator.element_spec, ['/cpu:0'])
    return iterator, buffer, tf.train.Checkpoint(train_iterator=iterator, buffer=buffer)

  iterator, buffer, checkpoint = fresh()
  buffer.fill_if_empty(iterator)
  run_steps = _loop(buffer, strategy)
  run_steps(iterator, tf.constant(3))
  path = checkpoint.save(str(tmp_path / 'ckpt'))
  uninterrupted = run_steps(iterator, tf.constant(4)).numpy()
  np.testing.assert_array_equal(uninterrupted, [3, 4, 5, 6])

  iterator, buffer, checkpoint = fresh()
  checkpoint.restore(path).assert_consumed()
  buffer.fill_if_empty(iterator)  # Restored full: must not draw.
  np.testing.assert_array_equal(_loop(buffer, strategy)(iterator, tf.constant(4)), uninterrupted)

  # A checkpoint written without the buffer (before it existed): the buffer fills from the
  # restored iterator, so the stream still continues where that iterator stood.
  iterator, buffer, _ = fresh()
  old_path = tf.train.Checkpoint(train_iterator=iterator).save(str(tmp_path / 'old'))
  next(iterator)
  iterator, buffer, checkpoint = fresh()
  checkpoint.restore(old_path).expect_partial()
  buffer.fill_if_empty(iterator)
  np.testing.assert_array_equal(_loop(buffer, strategy)(iterator, tf.constant(2)), [0, 1])


def test_refuses_inputs_without_a_static_shape():
  spec = {'image': tf.TensorSpec([None, 8, 8, 3], tf.float32)}
  with pytest.raises(ValueError, match="'image' has shape"):
    device_input_buffer.DeviceInputBuffer(spec, ['/cpu:0'])


_MIRRORED_SCRIPT = textwrap.dedent('''
    import json
    import tensorflow as tf
    from official_dataseg.tasks import device_input_buffer
    from official_dataseg.utils import cpu_replicas
    strategy = cpu_replicas.cpu_mirrored_strategy(2)
    with strategy.scope():
      iterator = iter(tf.data.Dataset.range(100).map(lambda i: {'position': i}))
      buffer = device_input_buffer.DeviceInputBuffer(iterator.element_spec,
                                                     strategy.extended.worker_devices)
    buffer.fill_if_empty(iterator)

    @tf.function
    def step(iterator):
      inputs = buffer.next_inputs(strategy, iterator)
      positions = strategy.run(lambda x: x['position'], args=(inputs,))
      return strategy.experimental_local_results(positions)

    steps = [[int(p) for p in step(iterator)] for _ in range(3)]
    devices = [buffer.slots[i]['position'].device for i in range(2)]
    print(json.dumps({'steps': steps, 'devices': devices}))
''')


@pytest.mark.slow
def test_mirrored_replicas_each_get_their_own_batch():
  """Two logical CPU replicas: step t gives replica r the stream's element 2t + r."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', CUDA_VISIBLE_DEVICES='-1',
             PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  result = subprocess.run([sys.executable, '-c', _MIRRORED_SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  output = json.loads(result.stdout.strip().splitlines()[-1])
  assert output['steps'] == [[0, 1], [2, 3], [4, 5]]
  assert output['devices'][0].endswith('CPU:0') and output['devices'][1].endswith('CPU:1')


def _train_loop_body(tmp_path, buffer_on: bool):
  """The FunctionDef of the while loop body of the trainer's traced train loop."""
  params = exp_factory.get_exp_config('dataseg_demo')
  params.override(helpers.SMALL_SIZES, is_strict=True)
  params.override(helpers.TINY_RESNET, is_strict=True)
  helpers.point_at_suite(params, helpers.make_suite(str(tmp_path)))
  params.task.device_input_buffer = buffer_on
  strategy = tf.distribute.OneDeviceStrategy('/cpu:0')
  with strategy.scope():
    task = task_factory.get_task(params.task, logging_dir=str(tmp_path / 'model'))
  runner = multi_dataset_trainer.MultiDatasetExperimentRunner(
      distribution_strategy=strategy, task=task, mode='train', params=params,
      model_dir=str(tmp_path / 'model'))
  trainer = runner.trainer
  loop = trainer.create_train_loop_fn()
  iterator = trainer._train_iter  # pylint: disable=protected-access
  graph_def = loop.get_concrete_function(iterator, tf.constant(1)).graph.as_graph_def()
  assert any(n.op == 'While' for n in graph_def.node)
  bodies = [f for f in graph_def.library.function
            if any(n.op == 'IteratorGetNext' for n in f.node_def)]
  assert len(bodies) == 1, [f.signature.name for f in bodies]
  return bodies[0]


def _descendants(function_def, op_type):
  """Op types of the nodes that depend (data or control) on the nodes of `op_type`."""
  consumers = {}
  for node in function_def.node_def:
    for name in node.input:
      source = name.lstrip('^').split(':')[0]
      consumers.setdefault(source, []).append(node)
  frontier = [n for n in function_def.node_def if n.op == op_type]
  seen = {n.name for n in frontier}
  while frontier:
    node = frontier.pop()
    for consumer in consumers.get(node.name, []):
      if consumer.name not in seen:
        seen.add(consumer.name)
        frontier.append(consumer)
  return {n.op for n in function_def.node_def if n.name in seen}


@pytest.mark.slow
def test_the_step_does_not_wait_for_the_next_batch(tmp_path):
  """With the buffer, nothing of the step depends on the iterator's output; without, all does."""
  with_buffer = _descendants(_train_loop_body(tmp_path / 'on', True), 'IteratorGetNext')
  assert with_buffer <= {'IteratorGetNext', 'AssignVariableOp', 'Identity', 'NoOp'}, with_buffer
  without = _descendants(_train_loop_body(tmp_path / 'off', False), 'IteratorGetNext')
  assert without & {'StatefulPartitionedCall', 'PartitionedCall', 'Conv2D', '_MklNativeConv2D',
                    '_MklNativeFusedConv2D', 'ResourceApplyAdam', 'AssignAddVariableOp'}, without
