"""The next training batch, waiting on each local replica's device and saved with the checkpoint.

With `task.checkpoint_train_iterator` the replicas read from one host-side `tf.data` iterator,
so that the checkpoint holds the exact data position. Without more, the copy of every batch from
the host to the devices would sit on the critical path of each step: the step could not start
before its batch had arrived. `DeviceInputBuffer` keeps one batch ahead on every local device
(device prefetch of depth one) without giving up the exact position:

  step t:  inputs = the buffer's batches (batch t, already on the devices)
           the buffer <- next(host iterator)  (batch t + 1; the copy runs while step t computes)

The buffer is a set of variables, one per input tensor and local device, tracked by the
checkpoint next to the host iterator. After step t the iterator stands at batch t + 2 and the
buffer holds batch t + 1, and both are restored together, so a restarted run reads batch t + 1
next, as an uninterrupted one does. A fresh buffer (or one restored from a checkpoint written
without it) is filled from the iterator before the first train loop (`fill_if_empty`).

The variables are plain per-device variables, not the strategy's mirrored ones: each device holds
its own replica's batch. Cost: one per-replica batch of device memory and of checkpoint space per
local replica.
"""
from typing import Any, List, Sequence

import tensorflow as tf, tf_keras  # pylint: disable=unused-import
# A variable on one device under a strategy's scope: the public `tf.Variable` would become a
# mirrored variable (one value for all replicas); this class bypasses the strategy's creator.
from tensorflow.python.ops import resource_variable_ops  # pylint: disable=g-direct-tensorflow-import


class DeviceInputBuffer(tf.Module):
  """One per-replica batch ahead on each device; `next_batches` reads it and refills it."""

  def __init__(self, element_spec: Any, devices: Sequence[str],
               name: str = 'device_input_buffer'):
    """Creates zero-filled buffers shaped like the host iterator's elements.

    Args:
      element_spec: the host iterator's `element_spec`: one replica's batch, with fully
        defined shapes (the training batches are padded and drop the remainder).
      devices: this worker's replica devices, in the order of its local replicas.
      name: the module's name.

    Raises:
      ValueError: an element's shape is not fully defined.
    """
    super().__init__(name=name)
    named = (element_spec.items() if isinstance(element_spec, dict)
             else enumerate(tf.nest.flatten(element_spec)))
    for path, tensor_spec in named:
      if not tensor_spec.shape.is_fully_defined():
        raise ValueError(f'DeviceInputBuffer: training input {path!r} has shape '
                         f'{tensor_spec.shape}; a fully defined shape is needed (static batch '
                         'size, padded instances)')
    self.slots: List[Any] = []
    for device in devices:
      with tf.device(device):
        self.slots.append(tf.nest.map_structure(
            lambda s: resource_variable_ops.ResourceVariable(
                tf.zeros(s.shape, s.dtype), trainable=False), element_spec))
    with tf.device(devices[0]):
      self.filled = resource_variable_ops.ResourceVariable(False, trainable=False)

  def _fill(self, host_iterator) -> None:
    for slot in self.slots:
      tf.nest.map_structure(lambda variable, value: variable.assign(value), slot,
                            next(host_iterator))

  def fill_if_empty(self, host_iterator: tf.data.Iterator) -> None:
    """Fills a fresh buffer (or one restored from a checkpoint without it) from the iterator.

    Eager; call before each train loop, after any checkpoint restore.
    """
    if not bool(self.filled.numpy()):
      self._fill(host_iterator)
      self.filled.assign(True)

  def next_batches(self, host_iterator: tf.data.Iterator) -> List[Any]:
    """This step's per-device batches; the buffers then receive the next step's.

    Args:
      host_iterator: the checkpointed host iterator (in a traced train loop, the loop's
        iterator argument).

    Returns:
      One structure of tensors (the iterator's element structure) per device, each on its
      device.
    """
    # Reads come before the refill's assignments (automatic control dependencies order the
    # operations on each variable as written); the step uses these reads only, so the refill
    # overlaps the step.
    with tf.name_scope('read'):
      current = [tf.nest.map_structure(lambda v: v.read_value(), slot) for slot in self.slots]
    with tf.name_scope('refill'):
      self._fill(host_iterator)
    return current

  def next_inputs(self, strategy: tf.distribute.Strategy, host_iterator: tf.data.Iterator):
    """`next_batches` as the strategy's per-replica value: local replica i gets device i's."""
    batches = self.next_batches(host_iterator)
    num_local = len(batches)
    # Replica ids are global; a worker's local replicas are consecutive.
    return strategy.experimental_distribute_values_from_function(
        lambda context: batches[context.replica_id_in_sync_group % num_local])
