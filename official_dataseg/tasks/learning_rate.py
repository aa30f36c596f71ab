"""Per-dataset learning-rate multipliers (DESIGN section 7).

The paper multiplies the learning rate by 3 / 5 / 2 on steps that draw ADE / COCO / O365. Adam is
invariant to the scale of the loss, so a loss weight cannot do this: the multiplier must act on the
learning rate itself. `MultipliedSchedule` wraps Model Garden's schedule and multiplies it by a
non-trainable variable that the train step sets to the drawn dataset's multiplier before the update.
Because one dataset fills the whole global batch, the multiplier is exact.
"""
from typing import Any, Dict

import tensorflow as tf, tf_keras


class MultipliedSchedule(tf_keras.optimizers.schedules.LearningRateSchedule):
  """`base_schedule(step) * multiplier`, where `multiplier` is a variable set per step."""

  def __init__(self, base_schedule, name: str = 'dataset_learning_rate_multiplier'):
    super().__init__()
    self.base_schedule = base_schedule
    # ONLY_FIRST_REPLICA: every replica assigns the same value (one dataset per global batch).
    self.multiplier = tf.Variable(
        1.0, trainable=False, dtype=tf.float32, name=name,
        synchronization=tf.VariableSynchronization.ON_WRITE,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  def __call__(self, step):
    base = self.base_schedule(step) if callable(self.base_schedule) else self.base_schedule
    return tf.cast(base, tf.float32) * self.multiplier

  def get_config(self) -> Dict[str, Any]:
    """JSON-serialisable config (the multiplier is runtime state, not config)."""
    base = self.base_schedule
    if isinstance(base, tf_keras.optimizers.schedules.LearningRateSchedule):
      base = tf_keras.optimizers.schedules.serialize(base)
    return {'base_schedule': base, 'name': self.multiplier.name.split(':')[0]}

  @classmethod
  def from_config(cls, config: Dict[str, Any]) -> 'MultipliedSchedule':
    base = config['base_schedule']
    if isinstance(base, dict):
      base = tf_keras.optimizers.schedules.deserialize(base)
    return cls(base, name=config.get('name', 'dataset_learning_rate_multiplier'))


def set_dataset_multiplier(optimizer, multiplier: tf.Tensor) -> None:
  """Sets the multiplier of `optimizer`'s `MultipliedSchedule` (no-op for other schedules)."""
  # A LossScaleOptimizer (float16) wraps the real optimizer.
  optimizer = getattr(optimizer, 'inner_optimizer', optimizer)
  schedule = optimizer.learning_rate
  if isinstance(schedule, MultipliedSchedule):
    schedule.multiplier.assign(tf.cast(multiplier, tf.float32))


def current_learning_rate(optimizer) -> tf.Tensor:
  """float32 [] learning rate the next `apply_gradients` uses (the multiplier included)."""
  optimizer = getattr(optimizer, 'inner_optimizer', optimizer)
  schedule = optimizer.learning_rate
  if callable(schedule):
    return tf.cast(schedule(optimizer.iterations), tf.float32)
  return tf.cast(schedule, tf.float32)


def base_learning_rate(optimizer) -> tf.Tensor:
  """float32 [] the schedule's learning rate at the optimizer's step, without the multiplier."""
  optimizer = getattr(optimizer, 'inner_optimizer', optimizer)
  schedule = optimizer.learning_rate
  if isinstance(schedule, MultipliedSchedule):
    schedule = schedule.base_schedule
  if callable(schedule):
    return tf.cast(schedule(optimizer.iterations), tf.float32)
  return tf.cast(schedule, tf.float32)
