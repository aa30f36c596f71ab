"""Model Garden's Trainer, evaluating every configured dataset in turn.

`base_trainer.Trainer` evaluates one validation dataset. DaTaSeg evaluates several, each with its
own task type, vocabulary and metrics (ADE semantic mIoU, COCO PQ, O365 mask AP, transfer sets).
This trainer keeps one eval dataset and one compiled eval loop per dataset, tells the task which
dataset it is evaluating, and prefixes each dataset's metrics with its name.
"""
import os
from typing import Dict, Optional

from absl import logging
import tensorflow as tf

from official.core import base_trainer
from official.core import train_lib
from official.core import train_utils

from official_dataseg.evaluation import report

METRICS_FILE = 'metrics.json'


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

  def train_loop_end(self):
    """Model Garden's loop end, then a clear stop after too many non-finite steps in a row."""
    logs = super().train_loop_end()
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
    return all_logs

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


class MultiDatasetExperimentRunner(train_lib.OrbitExperimentRunner):
  """Model Garden's experiment runner, building a `MultiDatasetTrainer`."""

  def _build_trainer(self, task, train: bool, evaluate: bool) -> base_trainer.Trainer:
    with self.strategy.scope():
      return train_utils.create_trainer(
          self.params, task, train=train, evaluate=evaluate,
          checkpoint_exporter=self._build_best_checkpoint_exporter(),
          trainer_cls=MultiDatasetTrainer)
