"""Every registered experiment, shrunk, runs two train steps on CPU with its own datasets, loss
weights and learning-rate multipliers; the learning rate applied on each step is the hand-computed
`base lr * warm-up fraction * multiplier of the step's dataset`, both as reported and as seen in the
parameter update (first Adam step after zeroed moments: |update| = lr * sqrt(1 - b2^t) /
(1 - b1^t) * (1 - b1) / sqrt(1 - b2) for the largest gradients).

The experiments keep their datasets' configs; only the files are the built-in suite's (one per task
type) and the sizes shrink (ResNet-10 / a 2-block ViT, 64x64, 6 queries). All experiments run in one
test per experiment (~20 s each on 2 busy cores): the default run takes a representative subset
(paper ResNet, demo, ViTDet, a single-dataset baseline, all dataset-specific modules); DATASEG_TEST_ALL_EXPERIMENTS=1 runs every registered experiment.
tests/configs checks every experiment's settings against the paper's tables.
"""
import os

import numpy as np
import pytest
import tensorflow as tf, tf_keras

from official.core import exp_factory
from official.core import task_factory
from official_dataseg import common
from official_dataseg import registry_imports  # pylint: disable=unused-import
from official_dataseg.dataloaders import input_builder
from official_dataseg.tasks import dataseg_task
from official_dataseg.tasks import learning_rate as lr_lib
from official_dataseg.utils import experiment as experiment_lib
from tests.tasks import helpers

BETA_1, BETA_2 = 0.9, 0.999
DEFAULT_SUBSET = ('dataseg_demo', 'dataseg_r50', 'dataseg_vitdet_b', 'dataseg_r50_o365_only',
                  'dataseg_r50_all_specific_modules')


def _expected_learning_rate(params, iteration: int, multiplier: float) -> float:
  optimization = params.trainer.optimizer_config
  base = optimization.learning_rate.stepwise.values[0]
  assert iteration < optimization.learning_rate.stepwise.boundaries[0]
  warmup = optimization.warmup.linear
  if iteration < warmup.warmup_steps:
    base = warmup.warmup_learning_rate + iteration / warmup.warmup_steps * (
        base - warmup.warmup_learning_rate)
  return base * multiplier


def _first_adam_step_factor(iteration: int) -> float:
  t = iteration + 1
  return (np.sqrt(1 - BETA_2**t) / (1 - BETA_1**t)) * (1 - BETA_1) / np.sqrt(1 - BETA_2)


def _build(name, tfrecord_dir):
  params = exp_factory.get_exp_config(name)
  params.override(helpers.SMALL_SIZES, is_strict=True)
  if params.task.model.backbone.type == 'vitdet':
    params.override(helpers.TINY_VIT, is_strict=True)
  else:
    params.override(helpers.TINY_RESNET, is_strict=True)
  # No weight decay: the update is then the Adam step alone.
  params.trainer.optimizer_config.optimizer.adamw.weight_decay_rate = 0.0
  helpers.point_at_suite(params, tfrecord_dir)
  task = task_factory.get_task(params.task)
  model = task.build_model()
  optimizer = task.create_optimizer(params.trainer.optimizer_config, params.runtime)
  return params, task, model, optimizer


def _zero_adam_moments(optimizer, variables):
  for variable in variables:
    for slot in optimizer.get_slot_names():
      optimizer.get_slot(variable, slot).assign(tf.zeros_like(variable))


@pytest.fixture(scope='module')
def tfrecord_dir(tmp_path_factory):
  return helpers.make_suite(str(tmp_path_factory.mktemp('suite')))


def _experiments():
  names = experiment_lib.registered_experiments()
  if os.environ.get('DATASEG_TEST_ALL_EXPERIMENTS') == '1':
    return names
  assert set(DEFAULT_SUBSET) <= set(names)
  return [n for n in names if n in DEFAULT_SUBSET]


@pytest.mark.slow
@pytest.mark.parametrize('name', _experiments())
def test_two_steps_with_the_experiments_learning_rates(tfrecord_dir, name):
  experiment_index = experiment_lib.registered_experiments().index(name)
  params, task, model, optimizer = _build(name, tfrecord_dir)
  datasets = params.task.train_data.datasets
  readers = input_builder.build_train_datasets(params.task.train_data)
  metrics = task.build_metrics()
  step = tf.function(lambda inputs: task.train_step(inputs, model, optimizer, metrics))  # pylint: disable=cell-var-from-loop
  # Just after the warm-up: updates far above float32 resolution of the weights. (The ramp
  # itself: test_learning_rate_during_warmup.)
  start_iteration = params.trainer.optimizer_config.warmup.linear.warmup_steps + 1
  optimizer.iterations.assign(start_iteration)
  # Two steps on two different datasets (rotating over the experiments).
  truncated_per_step = {}
  for offset in range(2):
    dataset_index = (experiment_index + offset) % len(datasets)
    batch = next(iter(readers[datasets[dataset_index].name]))
    assert int(batch[common.DATASET_ID][0]) == dataset_index
    iteration = int(optimizer.iterations.numpy())
    if iteration > start_iteration:
      _zero_adam_moments(optimizer, model.trainable_variables)
    before = [v.numpy() for v in model.trainable_variables]
    assert before, 'the model is built before its first step'
    logs = step(batch)
    # The training summaries carry the objects the batch lost to max_instances.
    truncated_per_step.setdefault(dataset_index, []).append(
        float(np.mean(batch[common.NUM_TRUNCATED])))
    truncated = {m.name: m for m in metrics}[
        f'{datasets[dataset_index].name}/{dataseg_task.TRUNCATED_METRIC}']
    assert float(truncated.result()) == pytest.approx(
        np.mean(truncated_per_step[dataset_index]), abs=1e-6), (name, offset)
    expected = _expected_learning_rate(
        params, iteration, datasets[dataset_index].learning_rate_multiplier)
    assert float(logs['learning_rate']) == pytest.approx(expected, rel=1e-5), (name, offset)
    assert bool(logs['finite']) and np.isfinite(float(logs[task.loss])), name
    largest_update = max(float(np.max(np.abs(v.numpy() - b)))
                         for v, b in zip(model.trainable_variables, before))
    # Adam's epsilon (1e-7) against sqrt(v) of the largest clipped gradients: < 3%.
    assert largest_update == pytest.approx(
        expected * _first_adam_step_factor(iteration), rel=3e-2), (name, offset)
  # Each dataset's criterion carries that dataset's loss weights.
  for criterion, dataset in zip(task._criteria, datasets):  # pylint: disable=protected-access
    assert criterion._weights.as_dict() == dataset.loss.as_dict(), name  # pylint: disable=protected-access
  tf_keras.backend.clear_session()


@pytest.mark.parametrize('name', ['dataseg_r50', 'dataseg_demo'])
def test_learning_rate_during_warmup(name):
  params = exp_factory.get_exp_config(name)
  task_cls = task_factory.get_task_cls(type(params.task))
  optimizer = task_cls.create_optimizer(params.trainer.optimizer_config, params.runtime)
  for dataset in params.task.train_data.datasets:
    lr_lib.set_dataset_multiplier(optimizer, dataset.learning_rate_multiplier)
    for iteration in (0, 7, params.trainer.optimizer_config.warmup.linear.warmup_steps - 1):
      optimizer.iterations.assign(iteration)
      assert float(lr_lib.current_learning_rate(optimizer)) == pytest.approx(
          _expected_learning_rate(params, iteration, dataset.learning_rate_multiplier),
          rel=1e-5, abs=1e-12)
