r"""Does the train loop copy the next batch while the step computes? A profiler trace says.

Trains `dataseg_demo` on the built-in synthetic suite under MirroredStrategy over
`--cpu_replicas` logical CPU devices, with the checkpointed input iterator (the default), once
with the device input buffer off and once on (`task.device_input_buffer`), and records a
TensorFlow profiler trace of `--steps` steps of each. From each trace it prints:
  - the median step time;
  - per step, the time of the input ops the step's inputs come from (the trainer's
    `train_inputs` name scope: without the buffer, the host iterator's `IteratorGetNext` and the
    hand-out to the replicas; with it, the reads of the buffer's variables);
  - per step, with the buffer, the time of the refill (`IteratorGetNext` of the next batch and
    its copies into the replicas' buffers), which nothing of the step depends on, and the share
    of it during which an op of the step (forward, losses, backward, update) ran on another
    thread.
On a CPU the "copy to the device" is a memory copy within the host, so both columns are small
here; on an accelerator the refill is the host-to-device transfer that the buffer takes off the
step's critical path.

  python tools/trace_train_input.py                      # 2 logical CPUs, 128x128, batch 8
  python tools/trace_train_input.py --image_size=256 --profile_dir=/tmp/input_trace

Open a trace with TensorBoard's profile plugin (`--profile_dir`) to see the same on a timeline.
"""
import collections
import glob
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Before TensorFlow is imported: Keras 2 (tf_keras) and no C++ start-up lines.
from official_dataseg.utils import quiet_tensorflow  # pylint: disable=g-import-not-at-top,unused-import

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from cpu_info import cpu_model  # tools/cpu_info.py (this script's folder)
from official_dataseg.utils import cpu_replicas  # pylint: disable=g-bad-import-order

_CPU_REPLICAS = flags.DEFINE_integer('cpu_replicas', 2, 'Logical CPU devices (replicas).')
_STEPS = flags.DEFINE_integer('steps', 8, 'Traced train steps per configuration.')
_WARMUP = flags.DEFINE_integer('warmup', 2, 'Untraced steps first (tracing, first fills).')
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 128, 'Square training input side.')
_BATCH_SIZE = flags.DEFINE_integer('global_batch_size', 8, 'Global training batch size.')
_PROFILE_DIR = flags.DEFINE_string('profile_dir', '', 'Keep the traces here (default: a '
                                   'temporary directory, removed).')

# Op events that span other ops (function calls, the loop itself) are not the step's work.
_CONTAINER_OPS = frozenset({'While', 'StatefulPartitionedCall', 'PartitionedCall', 'If',
                            'StatelessIf', 'Case', 'StatelessCase', 'Process'})


def _op_events(xplane_path: str):
  """[(start_ps, end_ps, name, op type, thread)] of the TensorFlow op events in a trace."""
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top
  space = xplane_pb2.XSpace()
  with open(xplane_path, 'rb') as f:
    space.ParseFromString(f.read())
  events = []
  for plane in space.planes:
    if plane.name != '/host:CPU':
      continue
    for line in plane.lines:
      if not line.name.startswith('tf_Compute'):
        continue
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        op_name, _, op_type = name.rpartition(':')
        if not op_name or op_type in _CONTAINER_OPS:
          continue
        start = line.timestamp_ns * 1000 + event.offset_ps
        events.append((start, start + event.duration_ps, op_name, op_type, line.name))
  return events


def _covered_seconds(event, others) -> float:
  """Seconds of `event` during which an op of `others` (sorted by start) ran on another thread."""
  start, end, _, _, thread = event
  covered, cursor = 0, start
  for s, e, _, _, other_thread in others:
    if s >= end:
      break
    if other_thread == thread:
      continue
    s, e = max(s, cursor), min(e, end)
    if e > s:
      covered += e - s
      cursor = e
  return covered / 1e12


def _input_summary(events, inputs_scope: str):
  """(seconds of input ops the step waits for, of refill ops, refill seconds overlapped)."""
  inputs = [e for e in events if f'{inputs_scope}/' in e[2]]
  step_ops = sorted((e for e in events if f'{inputs_scope}/' not in e[2]), key=lambda e: e[0])
  refill = [e for e in inputs if '/refill/' in e[2]]
  waited = [e for e in inputs if '/refill/' not in e[2]]
  return (sum(e[1] - e[0] for e in waited) / 1e12, sum(e[1] - e[0] for e in refill) / 1e12,
          sum(_covered_seconds(e, step_ops) for e in refill))


def _run(buffer_on: bool, suite: str, work_dir: str, strategy):
  """(median step seconds, per step: input seconds before the step, refill seconds; the refill's
  share overlapped by step ops; trace path)."""
  # pylint: disable=g-import-not-at-top
  from official.core import exp_factory
  from official_dataseg import registry_imports
  from official_dataseg.tasks import multi_dataset_trainer
  from tests.tasks import helpers
  # pylint: enable=g-import-not-at-top
  params = exp_factory.get_exp_config('dataseg_demo')
  size = _IMAGE_SIZE.value
  params.override({'task': {
      'model': {'input_size': [size, size, 3]},
      'train_data': {'output_size': [size, size], 'global_batch_size': _BATCH_SIZE.value},
      'validation_data': {'output_size': [size, size]},
      'device_input_buffer': buffer_on}}, is_strict=True)
  helpers.point_at_suite(params, suite)
  model_dir = os.path.join(work_dir, f'model_buffer_{"on" if buffer_on else "off"}')
  with strategy.scope():
    task = registry_imports.get_task(params.task, logging_dir=model_dir)
  runner = multi_dataset_trainer.MultiDatasetExperimentRunner(
      distribution_strategy=strategy, task=task, mode='train', params=params,
      model_dir=model_dir)
  trainer = runner.trainer
  trainer.train(tf.constant(_WARMUP.value))
  step_seconds = []
  for _ in range(2):  # Untraced, for the step time.
    start = time.perf_counter()
    trainer.train(tf.constant(_STEPS.value))
    step_seconds.append((time.perf_counter() - start) / _STEPS.value)
  trace_dir = os.path.join(work_dir, f'trace_buffer_{"on" if buffer_on else "off"}')
  tf.profiler.experimental.start(trace_dir)
  trainer.train(tf.constant(_STEPS.value))
  tf.profiler.experimental.stop()
  trace = sorted(glob.glob(os.path.join(trace_dir, 'plugins/profile/*/*.xplane.pb')))[-1]
  waited, refill, overlapped = _input_summary(_op_events(trace),
                                              multi_dataset_trainer.TRAIN_INPUTS_SCOPE)
  steps = _STEPS.value
  return (float(np.median(step_seconds)), waited / steps, refill / steps,
          overlapped / refill if refill else 0.0, trace)


def main(_):
  strategy = cpu_replicas.cpu_mirrored_strategy(_CPU_REPLICAS.value)
  from tfrecords_tools import synthetic_suite  # pylint: disable=g-import-not-at-top
  print(f'CPU: {cpu_model()}, {os.cpu_count()} cores; MirroredStrategy over '
        f'{strategy.num_replicas_in_sync} logical CPU devices; dataseg_demo at '
        f'{_IMAGE_SIZE.value}x{_IMAGE_SIZE.value}, global batch {_BATCH_SIZE.value}', flush=True)
  with tempfile.TemporaryDirectory() as temporary:
    work_dir = _PROFILE_DIR.value or temporary
    raw = synthetic_suite.generate(os.path.join(work_dir, 'raw'), seed=3, num_train=16,
                                   num_val=2)
    suite = os.path.join(work_dir, 'tfrecords')
    synthetic_suite.convert_all(raw, suite)
    rows = collections.OrderedDict()
    for buffer_on in (False, True):
      rows[buffer_on] = _run(buffer_on, suite, work_dir, strategy)
  print(f'{"device input buffer":<21}{"step (median)":>14}{"inputs the step waits for":>27}'
        f'{"refill during the step":>24}{"refill overlapped":>19}')
  for buffer_on, (step, waited, refill, share, trace) in rows.items():
    print(f'{"on" if buffer_on else "off":<21}{step * 1e3:>11.1f} ms{waited * 1e3:>24.2f} ms'
          f'{refill * 1e3:>21.2f} ms{share if buffer_on else float("nan"):>19.0%}')
    if _PROFILE_DIR.value:
      print(f'  trace: {trace}')


if __name__ == '__main__':
  app.run(main)
