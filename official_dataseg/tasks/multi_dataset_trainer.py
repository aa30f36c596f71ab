"""Model Garden's Trainer, evaluating every configured dataset in turn, and its runner.

`base_trainer.Trainer` evaluates one validation dataset. DaTaSeg evaluates several, each with its
own task type, vocabulary and metrics (ADE semantic mIoU, COCO PQ, O365 mask AP, transfer sets).
This trainer keeps one eval dataset and one compiled eval loop per dataset, tells the task which
dataset it is evaluating, prefixes each dataset's metrics with its name and writes a few
prediction overlays per dataset to the eval summaries.

Fault tolerance: the training input iterator is part of the checkpoint (a restarted run continues
at the same data position), with the next batch waiting on the devices
(`device_input_buffer.DeviceInputBuffer`, saved too); the train step can be compiled whole with
XLA; the runner's checkpoint manager falls back to the previous checkpoint when the latest cannot
be read.
"""
import functools
import os
from typing import Dict, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from official.core import base_trainer
from official.core import train_lib
from official.core import train_utils

from official_dataseg.evaluation import report
from official_dataseg.tasks import device_input_buffer
from official_dataseg.tasks import learning_rate as lr_lib
from official_dataseg.tasks import progress

METRICS_FILE = 'metrics.json'
TRAIN_INPUTS_SCOPE = 'train_inputs'


class MultiDatasetTrainer(base_trainer.Trainer):
  """Trains on the task's mixed training stream; evaluates each validation dataset."""

  def __init__(self, config, task, model, optimizer, train=True, evaluate=True,
               train_dataset=None, validation_dataset=None, checkpoint_exporter=None):
    self._eval_datasets: Dict[str, tf.distribute.DistributedDataset] = {}
    self._eval_loop_fns = {}
    if evaluate and validation_dataset is None:
      strategy = tf.distribute.get_strategy()
      for name in task.eval_dataset_names:
        self._eval_datasets[name] = strategy.distribute_datasets_from_function(
            lambda ctx, name=name: task.build_eval_inputs(name, ctx))
      validation_dataset = next(iter(self._eval_datasets.values()), None)
    super().__init__(config, task, model, optimizer, train=train, evaluate=evaluate,
                     train_dataset=train_dataset, validation_dataset=validation_dataset,
                     checkpoint_exporter=checkpoint_exporter)
    self._jit_task_train_step = None
    if train and _mirrors_over_several_devices(self.strategy):
      self._create_variables_before_tracing()
    self._eval_summary_writer = None
    self._host_train_iterator = None
    self._device_input_buffer = None
    if train and config.task.checkpoint_train_iterator:
      # tf.distribute's iterators cannot be checkpointed (TF 2.20), so this worker reads its
      # per-replica batches from one plain tf.data iterator (checkpointable) and hands one to
      # each local replica (`next_train_inputs`), as the distributed iterator would.
      strategy = tf.distribute.get_strategy()
      worker_index = _worker_index(strategy)
      num_workers = strategy.num_replicas_in_sync // len(strategy.extended.worker_devices)
      input_context = tf.distribute.InputContext(
          num_input_pipelines=num_workers, input_pipeline_id=worker_index,
          num_replicas_in_sync=strategy.num_replicas_in_sync)
      self._host_train_iterator = iter(task.build_inputs(config.task.train_data, input_context))
      # Built now, before the runner restores the latest checkpoint. Only the chief's checkpoint
      # is kept (Model Garden's layout), so other workers restart their own stream.
      key = 'train_iterator' if worker_index == 0 else f'train_iterator_worker_{worker_index}'
      setattr(self._checkpoint, key, self._host_train_iterator)
      self._train_iter = self._host_train_iterator
      if config.task.device_input_buffer:
        self._device_input_buffer = device_input_buffer.DeviceInputBuffer(
            self._host_train_iterator.element_spec, strategy.extended.worker_devices)
        buffer_key = ('train_input_buffer' if worker_index == 0
                      else f'train_input_buffer_worker_{worker_index}')
        setattr(self._checkpoint, buffer_key, self._device_input_buffer)

  def _create_variables_before_tracing(self) -> None:
    """Builds every layer and optimizer slot now, in eager mode.

    Keras builds some layers at their first call, and the optimizer makes its slots at its
    first update. Created inside Orbit's traced train loop under a MirroredStrategy of several
    devices, their initialisers fail to lift (an unfed placeholder in TensorFlow's
    `fn_with_cond`); created here, they are ordinary mirrored variables.
    """
    task = self.task
    height, width = self.config.task.train_data.output_size
    with self.strategy.scope():
      # pylint: disable=protected-access
      inputs = task._model_inputs(tf.zeros([1, height, width, 3]), task._train_vocabularies,
                                  tf.constant(0))
      self.model(inputs, training=False)
      self.optimizer._create_all_weights(self.model.trainable_variables)
      # pylint: enable=protected-access

  def next_train_inputs(self, iterator):
    """Per-replica batches: from the checkpointed host iterator, or the distributed one."""
    with tf.name_scope(TRAIN_INPUTS_SCOPE):  # Names the input ops in profiler traces.
      return self._next_train_inputs(iterator)

  def _next_train_inputs(self, iterator):
    # Not `iterator is self._host_train_iterator`: in the traced loop `iterator` is the loop
    # function's argument, a new object over the same iterator resource.
    if self._host_train_iterator is None:
      return super().next_train_inputs(iterator)
    if self._device_input_buffer is None:
      return self.strategy.experimental_distribute_values_from_function(
          lambda _: next(iterator))
    return self._device_input_buffer.next_inputs(self.strategy, iterator)

  def train_loop_begin(self):
    """Model Garden's loop begin; then fills an empty device input buffer (after any restore)."""
    super().train_loop_begin()
    if self._device_input_buffer is not None:
      self._device_input_buffer.fill_if_empty(self._host_train_iterator)

  def train_step(self, iterator):
    """Model Garden's step; with `task.jit_compile_train_step` the task step is one XLA cluster."""
    if not self.config.task.jit_compile_train_step:
      return super().train_step(iterator)
    if self._jit_task_train_step is None:
      self._jit_task_train_step = tf.function(self.task.train_step, jit_compile=True)

    def step_fn(inputs):
      logs = self._jit_task_train_step(inputs, model=self.model, optimizer=self.optimizer,
                                       metrics=self.train_metrics)
      self._train_loss.update_state(logs[self.task.loss])
      self.global_step.assign_add(1)

    inputs = self.next_train_inputs(iterator)
    self.strategy.run(step_fn, args=(inputs,), options=self._runtime_options)

  def train_loop_end(self):
    """Model Garden's loop end, then a clear stop after too many non-finite steps in a row.

    `learning_rate` is the schedule's, without the last step's dataset multiplier (the
    multipliers are fixed per dataset in the config).
    """
    logs = super().train_loop_end()
    logs['learning_rate'] = lr_lib.base_learning_rate(self.optimizer)
    limit = self.config.task.max_consecutive_nonfinite_steps
    in_a_row = int(self.task.consecutive_nonfinite_steps.numpy())
    if limit > 0 and in_a_row >= limit:
      raise RuntimeError(
          f'{in_a_row} consecutive training steps had a non-finite loss or gradient (limit '
          f'task.max_consecutive_nonfinite_steps={limit}); stopping at step '
          f'{int(self.global_step.numpy())}. Lower the learning rate or check the input data.')
    return logs

  def evaluate(self, num_steps: tf.Tensor) -> Optional[Dict[str, tf.Tensor]]:
    """Runs `num_steps` (-1: all) eval steps on each dataset; returns '<dataset>/<metric>' logs."""
    all_logs = {}
    for name, dataset in self._eval_datasets.items():
      logging.info('Evaluating %s', name)
      self.task.set_eval_dataset(name)
      self._eval_dataset = dataset
      self._eval_iter = None
      # One traced loop per dataset: shapes and post-processing differ between datasets.
      self._eval_loop_fn = self._eval_loop_fns.get(name)
      logs = super().evaluate(num_steps)
      self._eval_loop_fns[name] = self._eval_loop_fn
      for key, value in (logs or {}).items():
        all_logs[f'{name}/{key}'] = value
    self.task.set_eval_dataset(None)
    self._report(all_logs)
    self._write_summary_images()
    return all_logs

  def _write_summary_images(self) -> None:
    """Writes the task's prediction overlays to `<model_dir>/<validation_summary_subdir>`."""
    images = {name: overlays for name, overlays in self.task.summary_images.items() if overlays}
    if not images or not self.task.logging_dir:
      return
    if self._eval_summary_writer is None:
      self._eval_summary_writer = tf.summary.create_file_writer(os.path.join(
          self.task.logging_dir, self.config.trainer.validation_summary_subdir))
    step = int(self.global_step.numpy())
    with self._eval_summary_writer.as_default():
      for name, overlays in images.items():
        for index, overlay in enumerate(overlays):
          tf.summary.image(f'{name}/prediction_{index}', np.asarray(overlay)[None], step=step)
    self._eval_summary_writer.flush()

  def _report(self, logs) -> None:
    """Prints the metric table and writes `<model_dir>/metrics.json`."""
    step = int(self.global_step.numpy())
    results = report.split_by_dataset(logs)
    task_types = {d.name: d.task_type for d in self.config.task.validation_data.datasets}
    print(report.format_table(step, results, task_types), flush=True)
    if self.task.logging_dir:
      path = os.path.join(self.task.logging_dir, METRICS_FILE)
      report.write_json(path, step, results, task_types)
      logging.info('Wrote %s', path)


def _mirrors_over_several_devices(strategy) -> bool:
  """A Mirrored or MultiWorkerMirrored strategy with more than one replica."""
  return strategy.num_replicas_in_sync > 1 and isinstance(
      strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy))


def _worker_index(strategy) -> int:
  """This worker's index (0 unless multi-worker)."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return 0
  return int(resolver.task_id or 0)


class FallbackCheckpointManager(tf.train.CheckpointManager):
  """Restores the newest readable checkpoint: a corrupted latest one falls back, with a warning.

  A run killed while writing, or a damaged file, leaves a latest checkpoint that cannot be read;
  the previous ones kept by `max_to_keep` are tried in turn, newest first.
  """

  def restore_or_initialize(self):
    for path in reversed(self.checkpoints):
      try:
        self._checkpoint.restore(path)
        return path
      except (tf.errors.OpError, ValueError) as e:
        logging.warning('Cannot restore checkpoint %s (%s: %s); trying the previous one.',
                        path, type(e).__name__, str(e).splitlines()[0] if str(e) else '')
        print(f'WARNING: checkpoint {path} is unreadable ({type(e).__name__}); '
              'falling back to the previous checkpoint.', flush=True)
    if self.checkpoints:
      raise RuntimeError(f'None of the checkpoints {self.checkpoints} in {self.directory} can '
                         'be restored; remove them to start from scratch.')
    return super().restore_or_initialize()


class MultiDatasetExperimentRunner(train_lib.OrbitExperimentRunner):
  """Model Garden's experiment runner, building a `MultiDatasetTrainer` and a one-line console."""

  def __init__(self, distribution_strategy, task, mode, params, model_dir, **kwargs):
    kwargs.setdefault('controller_cls', functools.partial(
        progress.ProgressController,
        dataset_names=[d.name for d in params.task.train_data.datasets]))
    super().__init__(distribution_strategy, task, mode, params, model_dir, **kwargs)

  def _maybe_build_checkpoint_manager(self) -> Optional[tf.train.CheckpointManager]:
    manager = super()._maybe_build_checkpoint_manager()
    if manager is None:
      return None
    manager.__class__ = FallbackCheckpointManager  # Same state; only the restore differs.
    return manager

  def _build_trainer(self, task, train: bool, evaluate: bool) -> base_trainer.Trainer:
    with self.strategy.scope():
      return train_utils.create_trainer(
          self.params, task, train=train, evaluate=evaluate,
          checkpoint_exporter=self._build_best_checkpoint_exporter(),
          trainer_cls=MultiDatasetTrainer)
