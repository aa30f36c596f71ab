"""The per-dataset learning-rate multiplier scales the update exactly (hand-computed AdamW step)."""
import numpy as np
import tensorflow as tf

from official.modeling import optimization
from official_dataseg.tasks import learning_rate as lr_lib


def _optimizer(learning_rate=0.1, weight_decay=0.05):
  config = optimization.OptimizationConfig({
      'optimizer': {'type': 'adamw', 'adamw': {'weight_decay_rate': weight_decay,
                                               'gradient_clip_norm': 0.0,
                                               'global_clipnorm': 0.1}},
      'learning_rate': {'type': 'constant', 'constant': {'learning_rate': learning_rate}}})
  factory = optimization.OptimizerFactory(config)
  return factory.build_optimizer(lr_lib.MultipliedSchedule(factory.build_learning_rate()))


def test_first_adamw_step_moves_by_lr_times_multiplier():
  optimizer = _optimizer()
  variable = tf.Variable([1.0, 2.0])

  @tf.function
  def step(multiplier):
    lr_lib.set_dataset_multiplier(optimizer, multiplier)
    optimizer.apply_gradients([(tf.constant([1.0, -1.0]), variable)])

  step(tf.constant(3.0))
  # First Adam step: m/(sqrt(v)+eps) = sign(g) (clipping keeps the sign); lr = 0.1 * 3.
  # Decoupled decay: var -= lr * 0.05 * var. Adam's epsilon (1e-7 against sqrt(v) ~ 2e-3) shifts
  # the step by ~5e-5 relative, hence the tolerance.
  lr = 0.3
  expected = np.array([1.0, 2.0]) - lr * np.array([1.0, -1.0]) - lr * 0.05 * np.array([1.0, 2.0])
  np.testing.assert_allclose(variable.numpy(), expected, rtol=1e-4)
  assert float(optimizer.learning_rate(optimizer.iterations)) == np.float32(0.3)


def test_multiplier_changes_between_steps():
  optimizer = _optimizer(learning_rate=0.1, weight_decay=0.0)
  schedule = optimizer.learning_rate
  lr_lib.set_dataset_multiplier(optimizer, 5.0)
  assert float(schedule(0)) == np.float32(0.5)
  lr_lib.set_dataset_multiplier(optimizer, 2.0)
  assert float(schedule(0)) == np.float32(0.2)


def test_optimizer_config_serialises_and_round_trips():
  optimizer = _optimizer(learning_rate=0.1)
  config = optimizer.get_config()['learning_rate']
  schedule = lr_lib.MultipliedSchedule.from_config(config['config'])
  assert float(schedule(0)) == np.float32(0.1)  # Multiplier back at 1.


def test_base_learning_rate_leaves_the_multiplier_out():
  # What the console and the `learning_rate` summary show: the schedule, not the last dataset's
  # multiplied rate.
  optimizer = _optimizer(learning_rate=0.1)
  lr_lib.set_dataset_multiplier(optimizer, 5.0)
  assert float(lr_lib.current_learning_rate(optimizer)) == np.float32(0.5)
  assert float(lr_lib.base_learning_rate(optimizer)) == np.float32(0.1)
