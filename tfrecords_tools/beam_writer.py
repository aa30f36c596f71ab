"""The Apache Beam path of `tfrecord_writer.write_sharded` (--runner=...).

The same conversion as the local path, spread over Beam workers (the
DirectRunner's processes on this machine; Dataflow, Flink or Spark workers at
dataset scale), and the same output:

  tasks (sorted, from the driver)
    -> staged as pickled chunks of (index, task) beside the output (through
       tf.io.gfile, so gs:// works on Dataflow), read back by the workers and
       spread over them (Reshuffle);
    -> `tfrecord_writer.guarded(process_fn, task)`: the converter's own
       per-image function, not a copy;
    -> the example of task i, keyed by shard `tfrecord_writer.shard_of(i)`,
       grouped per shard and written in task order to `<shard>.tmp`;
    -> every result without its example bytes folded into one
       `tfrecord_writer.RunTally` (a combine: its sums and smallest-index
       messages do not depend on the order of merges), saved for the driver.

The driver (`write_sharded`) then applies --strict, --max_skip_fraction and
the renames, the side files and the manifest exactly as on the local path, so
an image's shard, the order within a shard, every file's bytes and every error
text are those of `--runner=local`.

A ConversionError raised by `process_fn` (a fatal input error) does not fail
the Beam job: it is recorded in the tally and raised by the driver, the first
in task order, with the local path's text. Likewise under --strict: the job
converts every image (the local path stops at the first issue), then the
driver raises the first issue's error; the shards stay `.tmp` and are removed.

Needs the `beam` extra (`pip install -e '.[beam]'`); `write_sharded` imports
this module only for a Beam runner.
"""

import dataclasses
import math
import os
import pickle
import secrets
from typing import Any, Callable, Iterable, List, Sequence, Tuple

import apache_beam as beam
from apache_beam.options import pipeline_options
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from tfrecords_tools import tfrecord_writer
from tfrecords_tools.tfrecord_writer import ConversionError, ImageResult

# Tasks per staged chunk file: few files for the driver to write at 1.7M
# images, enough of them for small runs; Reshuffle spreads the tasks anyway.
_MAX_TASKS_PER_CHUNK = 1000
_MIN_CHUNKS = 32
_STAGING_SUFFIX = '-beam_staging.tmp'
_TALLY_FILE = 'tally.pkl'
_SUMMARY_TAG = 'summary'


def _stage_tasks(staging_dir: str, tasks: Sequence[Any]) -> List[str]:
  """Writes `tasks` as pickled lists of (index, task); returns the files."""
  tf.io.gfile.makedirs(staging_dir)
  per_chunk = min(_MAX_TASKS_PER_CHUNK,
                  max(1, math.ceil(len(tasks) / _MIN_CHUNKS)))
  paths = []
  for start in range(0, len(tasks), per_chunk):
    path = os.path.join(staging_dir, f'tasks-{start:09d}.pkl')
    chunk = list(enumerate(tasks[start:start + per_chunk], start))
    with tf.io.gfile.GFile(path, 'wb') as f:
      f.write(pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL))
    paths.append(path)
  return paths


def _read_chunk(path: str) -> Iterable[Tuple[int, Any]]:
  with tf.io.gfile.GFile(path, 'rb') as f:
    yield from pickle.loads(f.read())


class _ConvertFn(beam.DoFn):
  """(index, task) -> (shard, (index, example bytes)) + a summary output.

  The summary is (index, ImageResult without its bytes, None), or
  (index, None, error text) when `process_fn` raised a ConversionError.
  """

  def __init__(self, process_fn: Callable[[Any], ImageResult],
               num_shards: int):
    super().__init__()
    self._process_fn = process_fn
    self._num_shards = num_shards
    # Progress in the runner's UI (e.g. Dataflow's job page); the report
    # itself comes from the tally.
    self._images = beam.metrics.Metrics.counter('conversion', 'images')
    self._written = beam.metrics.Metrics.counter('conversion', 'images_written')

  def process(self, indexed_task):
    index, task = indexed_task
    self._images.inc()
    try:
      result = tfrecord_writer.guarded(self._process_fn, task)
    except ConversionError as error:
      yield beam.pvalue.TaggedOutput(_SUMMARY_TAG, (index, None, str(error)))
      return
    example = result.serialized_example
    if example is not None:
      self._written.inc()
      yield tfrecord_writer.shard_of(index, self._num_shards), (index, example)
      # The tally needs to know an example was written, not its bytes.
      result = dataclasses.replace(result, serialized_example=b'')
    yield beam.pvalue.TaggedOutput(_SUMMARY_TAG, (index, result, None))


class _TallyFn(beam.CombineFn):
  """Summaries -> one RunTally (order-independent, see RunTally)."""

  def __init__(self, num_classes: int, num_shards: int):
    super().__init__()
    self._num_classes = num_classes
    self._num_shards = num_shards

  def create_accumulator(self):
    return tfrecord_writer.RunTally(self._num_classes, self._num_shards)

  def add_input(self, mutable_accumulator, element):
    index, result, error = element
    if error is not None:
      mutable_accumulator.add_fatal(index, error)
    else:
      mutable_accumulator.add(index, result)
    return mutable_accumulator

  def merge_accumulators(self, accumulators):
    accumulators = iter(accumulators)
    merged = next(accumulators)
    for tally in accumulators:
      merged.merge(tally)
    return merged

  def extract_output(self, accumulator):
    return accumulator


def _write_shard(keyed_records, paths: Sequence[str]):
  """Writes one shard's records, in task order, to `<shard path>.tmp`.

  A runner may run a bundle twice (a retry, a speculative copy): each attempt
  writes its own `<shard path>.<8 hex>.tmp` (a name a later run also clears
  away) and renames it to `<shard path>.tmp`, never two writers in one file.
  """
  shard, records = keyed_records
  attempt_path = f'{paths[shard]}.{secrets.token_hex(4)}.tmp'
  with tf.io.TFRecordWriter(attempt_path) as writer:
    for _, example in sorted(records, key=lambda record: record[0]):
      writer.write(example)
  tf.io.gfile.rename(attempt_path, paths[shard] + '.tmp', overwrite=True)


def _save(tally: tfrecord_writer.RunTally, path: str):
  with tf.io.gfile.GFile(path, 'wb') as f:
    f.write(pickle.dumps(tally, protocol=pickle.HIGHEST_PROTOCOL))


def _pipeline_options(flags: Sequence[str], runner: str
                      ) -> pipeline_options.PipelineOptions:
  """Beam's options from `flags`; a flag Beam does not know is an error.

  Beam itself only logs and drops such a flag, so a mistyped converter flag
  (`--num_shard 4`) would pass unnoticed.

  Raises:
    ConversionError: naming the unknown flags.
  """
  options = pipeline_options.PipelineOptions(list(flags), runner=runner)
  unknown = sorted(set(options.get_all_options(retain_unknown_options=True)) -
                   set(options.get_all_options()))
  if unknown:
    raise ConversionError(
        f'--runner={runner}: neither the converter nor Beam knows the flag(s) '
        f'{", ".join("--" + name for name in unknown)}')
  return options


def write_shards(output_prefix: str, paths: Sequence[str], tasks: Sequence[Any],
                 process_fn: Callable[[Any], ImageResult], num_classes: int,
                 runner: str, options: Sequence[str]
                 ) -> tfrecord_writer.RunTally:
  """Runs the conversion on Beam; writes every `paths[i] + '.tmp'`.

  Args:
    output_prefix: the run's output prefix; the tasks are staged in
      `<prefix>-beam_staging.tmp/`, removed when the run ends.
    paths: the final shard paths, shard order.
    tasks: per-image inputs of `process_fn`, in output order.
    process_fn: the converter's top-level task -> ImageResult function.
    num_classes: vocabulary size (class frequency counts).
    runner: a Beam runner name (tfrecord_writer.BEAM_RUNNERS).
    options: Beam pipeline options, `--flag=value` strings.

  Returns:
    The run's tally (the caller checks strict / skips and writes the side
    files).

  Raises:
    ConversionError: the Beam job did not finish.
  """
  staging_dir = output_prefix + _STAGING_SUFFIX
  if tf.io.gfile.exists(staging_dir):  # Left by a killed run.
    tf.io.gfile.rmtree(staging_dir)
  tally_path = os.path.join(staging_dir, _TALLY_FILE)
  try:
    chunk_paths = _stage_tasks(staging_dir, tasks)
    options = _pipeline_options(options, runner)
    pipeline = beam.Pipeline(options=options)
    converted = (
        pipeline
        | 'ChunkFiles' >> beam.Create(chunk_paths)
        | 'ReadTasks' >> beam.FlatMap(_read_chunk)
        | 'Spread' >> beam.Reshuffle()
        # Any: Beam would infer a union of both outputs from `process`.
        | 'Convert' >> beam.ParDo(_ConvertFn(process_fn, len(paths)))
        .with_output_types(Any).with_outputs(_SUMMARY_TAG, main='records'))
    _ = (converted.records
         | 'GroupByShard' >> beam.GroupByKey()
         | 'WriteShards' >> beam.Map(_write_shard, paths))
    _ = (converted[_SUMMARY_TAG]
         | 'Tally' >> beam.CombineGlobally(_TallyFn(num_classes, len(paths)))
         | 'SaveTally' >> beam.Map(_save, tally_path))
    state = pipeline.run().wait_until_finish()
    if state != beam.runners.runner.PipelineState.DONE:
      raise ConversionError(f'{output_prefix}: the Beam job ended in state '
                            f'{state}; nothing written')
    with tf.io.gfile.GFile(tally_path, 'rb') as f:
      tally = pickle.loads(f.read())
    # A shard that got no example (fewer examples than shards) is still
    # written, empty, as on the local path.
    for path in paths:
      if not tf.io.gfile.exists(path + '.tmp'):
        tf.io.TFRecordWriter(path + '.tmp').close()
    return tally
  finally:
    if tf.io.gfile.exists(staging_dir):
      tf.io.gfile.rmtree(staging_dir)
