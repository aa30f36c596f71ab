r"""Times DaTaSeg's train step and inference on CPU, split into its parts.

  python tools/benchmark_train_step.py                         # ResNet-50, 512x512, batch 2
  python tools/benchmark_train_step.py --image_size=1024 --batch_size=1
  python tools/benchmark_train_step.py --experiment=dataseg_demo --image_size=128 --batch_size=8
  python tools/benchmark_train_step.py --profile_dir=/tmp/trace   # TensorBoard trace of 2 steps

Settings (the PyTorch reference in docs/performance.md uses the same): the experiment's model
(`dataseg_r50`: ResNet-50, 100 queries, 9 decoder layers) with random weights, float32, one
training dataset (`--dataset`, default COCO panoptic: 133 classes), a fixed in-memory batch of
`--num_objects` disjoint rectangular masks per image padded to the experiment's `max_instances`,
`--threads` intra-op threads. Each figure is the median over `--runs` calls after `--warmup`.

Printed: the whole `DataSegTask.train_step` (in a `tf.function`, as the trainer runs it), its
split into forward, matching, losses, backward and optimizer update (each a separate
`tf.function`: the parts sum to more than the step, which overlaps them), inference
(`model(..., training=False)`, batch 1), images/s and achieved GFLOP/s. FLOPs come from
TensorFlow's graph profiler on the step's own graph (a multiply-add counts 2), and a 2048^3
float32 matmul gives the machine's peak in the same sitting.
"""
import os
import statistics
import time

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '-1')  # A CPU benchmark.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
import tensorflow as tf, tf_keras

# Imported for its side effect: it registers an Einsum FLOPs counter.
from official.core import exp_factory
from official.modeling import hyperparams
from official.core import train_utils  # pylint: disable=unused-import
from official_dataseg import common
from official_dataseg import registry_imports  # pylint: disable=unused-import
from official_dataseg.tasks import dataseg_task

from cpu_info import cpu_model  # tools/cpu_info.py (this script's folder)

_EXPERIMENT = flags.DEFINE_string('experiment', 'dataseg_r50', 'Registered experiment.')
_DATASET = flags.DEFINE_string('dataset', 'coco_panoptic',
                               "Training dataset of the experiment to use, or 'all'.")
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 512, 'Square training / inference input side.')
_BATCH_SIZE = flags.DEFINE_integer('batch_size', 2, 'Training batch size.')
_MAX_INSTANCES = flags.DEFINE_integer('max_instances', 0,
                                      "GT slots M; 0 keeps the experiment's.")
_NUM_OBJECTS = flags.DEFINE_integer('num_objects', 10, 'Real objects per training image.')
_THREADS = flags.DEFINE_integer('threads', 2, 'Intra-op threads (0: TensorFlow decides).')
_INTER_OP_THREADS = flags.DEFINE_integer(
    'inter_op_threads', 0, 'Inter-op threads: ops run at once (0: TensorFlow decides).')
_RUNS = flags.DEFINE_integer('runs', 5, 'Timed calls of each function.')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Untimed calls first.')
_PARTS = flags.DEFINE_bool('parts', True, 'Also time forward / matching / losses / backward / '
                           'update separately.')
_INFERENCE_SIZES = flags.DEFINE_list('inference_sizes', ['512', '1024'],
                                     'Square sizes for batch-1 inference ([] to skip).')
_JIT = flags.DEFINE_bool('jit_compile', False, 'Compile the whole train step with XLA.')
_PARAMS_OVERRIDE = flags.DEFINE_string(
    'params_override', '', "Experiment overrides applied last, e.g. 'task.host_matching=false'.")
_PROFILE_DIR = flags.DEFINE_string('profile_dir', '', 'Write a profiler trace of 2 train '
                                   'steps here (open with TensorBoard).')


def build_task_and_model(experiment: str, dataset: str, image_size: int, batch_size: int,
                         max_instances: int, params_override: str = ''):
  """The experiment at CPU benchmark settings: float32, plain batch norm, one dataset."""
  params = exp_factory.get_exp_config(experiment)
  params.override({
      'runtime': {'distribution_strategy': 'one_device', 'mixed_precision_dtype': 'float32'},
      'task': {'model': {'input_size': [image_size, image_size, 3],
                         'norm_activation': {'use_sync_bn': False}},
               'train_data': {'output_size': [image_size, image_size],
                              'global_batch_size': batch_size, 'dtype': 'float32'}},
  }, is_strict=True)
  if params_override:
    params = hyperparams.override_params_dict(params, params_override, is_strict=True)
  if max_instances:
    params.task.train_data.max_instances = max_instances
  if dataset != 'all':
    chosen = [d for d in params.task.train_data.datasets if d.name.startswith(dataset)]
    if not chosen:
      raise ValueError(f'--dataset={dataset!r}: the experiment trains on '
                       f'{[d.name for d in params.task.train_data.datasets]}')
    params.task.train_data.datasets = tuple(chosen[:1])
  task = dataseg_task.DataSegTask(params.task)
  model = task.build_model()
  optimizer = task.create_optimizer(params.trainer.optimizer_config, params.runtime)
  return params, task, model, optimizer


def synthetic_batch(batch_size: int, image_size: int, max_instances: int, num_objects: int,
                    num_classes: int, dataset_id: int = 0, seed: int = 0):
  """A parser-like batch: `num_objects` disjoint rectangles per image, on a grid."""
  rng = np.random.default_rng(seed)
  side = image_size // 4
  grid = int(np.ceil(np.sqrt(num_objects)))
  cell = side // grid
  masks = np.zeros([batch_size, max_instances, side, side], np.uint8)
  classes = np.zeros([batch_size, max_instances], np.int32)
  valid = np.zeros([batch_size, max_instances], np.float32)
  boxes = np.zeros([batch_size, max_instances, 4], np.float32)
  for b in range(batch_size):
    for k in range(min(num_objects, max_instances)):
      row, col = divmod(k, grid)
      top = row * cell + rng.integers(0, cell // 4 + 1)
      left = col * cell + rng.integers(0, cell // 4 + 1)
      bottom = row * cell + cell - rng.integers(0, cell // 4 + 1)
      right = col * cell + cell - rng.integers(0, cell // 4 + 1)
      masks[b, k, top:bottom, left:right] = 1
      boxes[b, k] = [top / side, left / side, bottom / side, right / side]
      classes[b, k] = rng.integers(0, num_classes)
      valid[b, k] = 1.0
  return {
      common.IMAGE: tf.constant(rng.normal(size=[batch_size, image_size, image_size, 3]),
                                tf.float32),
      common.DATASET_ID: tf.fill([batch_size], dataset_id),
      common.GT_MASKS: tf.constant(masks),
      common.GT_CLASSES: tf.constant(classes),
      common.GT_VALID: tf.constant(valid),
      common.GT_BOXES: tf.constant(boxes),
      common.IGNORE_MASK: tf.zeros([batch_size, side, side], tf.uint8),
  }


def median_seconds(function, runs: int, warmup: int):
  for _ in range(warmup):
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, 'numpy') else t, function())
  timings = []
  for _ in range(runs):
    start = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, 'numpy') else t, function())
    timings.append(time.perf_counter() - start)
  return statistics.median(timings), timings


def graph_gflops(function, *args) -> float:
  """GFLOPs of one call of a tf.function, from TensorFlow's graph profiler."""
  graph = function.get_concrete_function(*args).graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options['output'] = 'none'
  profile = tf.compat.v1.profiler.profile(graph=graph, run_meta=tf.compat.v1.RunMetadata(),
                                          cmd='op', options=options)
  return profile.total_float_ops / 1e9


def matmul_peak_gflops(size: int = 2048, runs: int = 5) -> float:
  a = tf.random.normal([size, size])
  b = tf.random.normal([size, size])
  matmul = tf.function(lambda: tf.matmul(a, b))
  seconds, _ = median_seconds(matmul, runs, 2)
  return 2 * size ** 3 / seconds / 1e9


def time_train_step(task, model, optimizer, batch, jit_compile: bool):
  """Returns {name: (median seconds, timings)} and the step's GFLOPs."""
  results = {}
  step = tf.function(lambda: task.train_step(batch, model, optimizer), jit_compile=jit_compile)
  results['train_step'] = median_seconds(step, _RUNS.value, _WARMUP.value)
  gflops = graph_gflops(step)
  if _PROFILE_DIR.value:
    tf.profiler.experimental.start(_PROFILE_DIR.value)
    for _ in range(2):
      step()
    tf.profiler.experimental.stop()
  if not _PARTS.value:
    return results, gflops

  dataset_id = batch[common.DATASET_ID][0]
  model_inputs = task._model_inputs(batch[common.IMAGE], task._train_vocabularies, dataset_id)  # pylint: disable=protected-access
  criterion = task._criteria[0]  # pylint: disable=protected-access

  forward = tf.function(lambda: model(model_inputs, training=True))
  results['forward'] = median_seconds(forward, _RUNS.value, 1)
  outputs = forward()
  mask_logits = tf.identity(outputs[common.MASK_LOGITS])
  class_logits = tf.identity(outputs[common.CLASS_LOGITS])
  matching = tf.function(lambda: criterion.match(mask_logits, class_logits, batch).gt_to_entry)
  results['matching'] = median_seconds(matching, _RUNS.value, 1)
  losses = tf.function(lambda: task.build_losses(batch, {
      common.MASK_LOGITS: mask_logits, common.CLASS_LOGITS: class_logits})['total'])
  results['matching + losses'] = median_seconds(losses, _RUNS.value, 1)

  variables = model.trainable_variables

  @tf.function
  def forward_backward():
    with tf.GradientTape() as tape:
      step_outputs = model(model_inputs, training=True)
      loss = task.build_losses(batch, step_outputs)['total']
    return tape.gradient(loss, variables)
  results['forward + losses + backward'] = median_seconds(forward_backward, _RUNS.value, 1)

  gradients = [tf.identity(g) for g in forward_backward()]

  @tf.function
  def update():
    optimizer.apply_gradients(zip(gradients, variables))
    return optimizer.iterations
  results['optimizer update'] = median_seconds(update, _RUNS.value, 1)
  return results, gflops


def time_inference(params, task, image_size: int):
  params = params.replace()
  params.task.model.input_size = [image_size, image_size, 3]
  params.task.train_data.output_size = [image_size, image_size]  # The model's input spec.
  model = dataseg_task.DataSegTask(params.task).build_model()
  images = tf.random.normal([1, image_size, image_size, 3])
  inputs = task._model_inputs(images, task._train_vocabularies, tf.constant(0))  # pylint: disable=protected-access
  infer = tf.function(lambda: model(inputs, training=False))
  seconds = median_seconds(infer, _RUNS.value, _WARMUP.value)
  return seconds, graph_gflops(infer)


def main(_):
  if _THREADS.value:
    tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
  if _INTER_OP_THREADS.value:
    tf.config.threading.set_inter_op_parallelism_threads(_INTER_OP_THREADS.value)
  params, task, model, optimizer = build_task_and_model(
      _EXPERIMENT.value, _DATASET.value, _IMAGE_SIZE.value, _BATCH_SIZE.value,
      _MAX_INSTANCES.value, _PARAMS_OVERRIDE.value)
  num_classes = task._train_vocabularies.vocabularies[0].num_classes  # pylint: disable=protected-access
  batch = synthetic_batch(_BATCH_SIZE.value, _IMAGE_SIZE.value,
                          params.task.train_data.max_instances, _NUM_OBJECTS.value, num_classes)
  print(f'CPU: {cpu_model()}, {os.cpu_count()} cores, intra-op threads {_THREADS.value}, '
        f'inter-op threads {_INTER_OP_THREADS.value}')
  peak = matmul_peak_gflops()
  print(f'float32 2048^3 matmul: {peak:.1f} GFLOP/s')
  print(f'{_EXPERIMENT.value}: {_IMAGE_SIZE.value}x{_IMAGE_SIZE.value}, batch '
        f'{_BATCH_SIZE.value}, M={params.task.train_data.max_instances}, '
        f'{_NUM_OBJECTS.value} objects/image, datasets '
        f'{[d.name for d in params.task.train_data.datasets]}, jit_compile={_JIT.value}, '
        f'host_matching={params.task.host_matching}')
  results, step_gflops = time_train_step(task, model, optimizer, batch, _JIT.value)
  step_seconds = results['train_step'][0]
  for name, (seconds, timings) in results.items():
    print(f'  {name:30s} {seconds:8.3f} s   (runs: {", ".join(f"{t:.3f}" for t in timings)})')
  print(f'  train step: {_BATCH_SIZE.value / step_seconds:.3f} images/s, '
        f'{step_gflops:.1f} GFLOP/step, {step_gflops / step_seconds:.1f} GFLOP/s '
        f'= {100 * step_gflops / step_seconds / peak:.0f}% of matmul peak')
  for size in _INFERENCE_SIZES.value:
    (seconds, timings), gflops = time_inference(params, task, int(size))
    print(f'  inference {size}x{size} batch 1     {seconds:8.3f} s   (runs: '
          f'{", ".join(f"{t:.3f}" for t in timings)}), {gflops:.1f} GFLOP, '
          f'{gflops / seconds:.1f} GFLOP/s = {100 * gflops / seconds / peak:.0f}% of peak')


if __name__ == '__main__':
  app.run(main)
