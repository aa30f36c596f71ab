"""MirroredStrategy over logical CPU devices: the multi-replica path on a machine without
accelerators (`train.py --cpu_replicas`, the distribution tests, `tools/trace_train_input.py`)."""
import tensorflow as tf, tf_keras  # pylint: disable=unused-import


def cpu_mirrored_strategy(num_replicas: int) -> tf.distribute.MirroredStrategy:
  """Splits the first CPU into `num_replicas` logical devices and mirrors over them.

  Must run before TensorFlow initialises its devices (before any op runs).
  """
  cpu = tf.config.list_physical_devices('CPU')[0]
  tf.config.set_logical_device_configuration(
      cpu, [tf.config.LogicalDeviceConfiguration()] * num_replicas)
  return tf.distribute.MirroredStrategy([f'/cpu:{i}' for i in range(num_replicas)])
