"""Sharded, deterministic, atomic tf.Example writing shared by every converter.

A converter turns its raw layout into a sorted list of picklable per-image
tasks and a top-level `process_fn(task) -> ImageResult`. `write_sharded` maps
`process_fn` over the tasks, here (in a pool of spawned processes when
`num_workers > 0`) or on an Apache Beam runner (`beam_writer`, the same
`process_fn` and the same `RunTally`), writes the example of task i to shard
`i % num_shards` in task order, and writes beside the shards:
  <prefix>-vocabulary.json          the class list in index order;
  <prefix>-category_frequency.json  per class: images containing it;
  <prefix>-report.json              images written / skipped and why, objects
                                    dropped and why, pixel repairs;
  <prefix>-manifest.json            written last: the shards and their record
                                    counts (`official_dataseg.dataloaders.
                                    record_set`), the mark of a finished run.
Every file is first written as `*.tmp` and renamed only when the whole run
succeeded; the input pipeline reads only shards a manifest lists, so an
interrupted run never leaves shards that look complete. A run that writes no
image, skips more than `max_skip_fraction` of them, or writes no object at
all (every one dropped or voided), fails with a one-line summary of the
reasons and leaves nothing. A previous run's outputs are
never silently mixed with a new run's: they are refused unless `overwrite`,
which removes them first; leftover `*.tmp` files of a killed run are removed.
Nothing time-, machine- or runner-dependent goes into any output: the same
input and flags give byte-identical files, locally or on Beam.
"""

import collections
import dataclasses
import json
import multiprocessing
import os
import re
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg.dataloaders import record_set

# Issue kinds an ImageResult can carry. A skip drops the whole image, a drop
# removes one object, a repair changes the data (e.g. voids unknown pixels).
ISSUE_SKIP = 'skip'
ISSUE_DROP = 'drop'
ISSUE_REPAIR = 'repair'
_MAX_MESSAGES_PER_REASON = 10
_PROGRESS_INTERVAL_S = 5.0
# Default of --max_skip_fraction: a few broken files in a large dataset pass, a
# wrong --images_dir (every image missing) does not.
DEFAULT_MAX_SKIP_FRACTION = 0.01
# TensorFlow is imported (and may run threads) before the pool starts: forking
# it can deadlock a worker, so workers start as fresh interpreters.
_WORKER_START_METHOD = 'spawn'
# --runner values: this machine's process pool, or an Apache Beam runner.
LOCAL_RUNNER = 'local'
BEAM_RUNNERS = ('DirectRunner', 'DataflowRunner', 'FlinkRunner', 'SparkRunner')


class ConversionError(ValueError):
  """Bad input that cannot be skipped (or any issue under --strict)."""


class SkipImage(Exception):
  """Raised inside a process_fn to skip the current image with a reason."""

  def __init__(self, reason: str, message: str):
    super().__init__(message)
    self.reason = reason
    self.message = message


@dataclasses.dataclass
class Issue:
  kind: str      # ISSUE_SKIP | ISSUE_DROP | ISSUE_REPAIR.
  reason: str    # Short stable key, e.g. 'unknown_category_id'.
  message: str   # Human-readable, names the file and the field.
  count: int = 1


@dataclasses.dataclass
class ImageResult:
  """What a process_fn returns for one image.

  Attributes:
    serialized_example: the serialized tf.train.Example, None when skipped.
    class_indices: sorted unique vocabulary indices present in the image.
    num_objects: number of objects written.
    issues: skips, dropped objects and repairs met on the way.
    notes: informational counters (e.g. images re-encoded), never errors.
  """
  serialized_example: Optional[bytes] = None
  class_indices: Sequence[int] = ()
  num_objects: int = 0
  issues: List[Issue] = dataclasses.field(default_factory=list)
  notes: Dict[str, int] = dataclasses.field(default_factory=dict)


def guarded(process_fn: Callable[[Any], ImageResult], task: Any) -> ImageResult:
  """Runs `process_fn(task)`, turning a SkipImage into a skip ImageResult."""
  try:
    return process_fn(task)
  except SkipImage as skip:
    return ImageResult(issues=[Issue(ISSUE_SKIP, skip.reason, skip.message)])


class _GuardedFn:
  """Picklable wrapper of `guarded` for multiprocessing."""

  def __init__(self, process_fn):
    self._process_fn = process_fn

  def __call__(self, task):
    return guarded(self._process_fn, task)


def _stage_json(path: str, content: Any, pending: List[str]):
  """Writes `path.tmp`; `write_sharded` renames every staged file once the run succeeded."""
  with tf.io.gfile.GFile(path + '.tmp', 'w') as f:
    f.write(json.dumps(content, indent=1, sort_keys=True) + '\n')
  pending.append(path)


def category_frequency(vocabulary: Sequence[Dict[str, Any]],
                       image_counts: Sequence[int],
                       num_images: int) -> Dict[str, Any]:
  """The category-frequency file content (repeat-factor sampling input)."""
  return {
      'num_images': num_images,
      'classes': [{'index': c['index'], 'id': c['id'], 'name': c['name'],
                   'image_count': int(image_counts[c['index']]),
                   'image_fraction': (image_counts[c['index']] / num_images
                                      if num_images else 0.0)}
                  for c in vocabulary],
  }


def shard_of(index: int, num_shards: int) -> int:
  """The shard of the task at position `index` of the sorted task list.

  It depends only on the image's place in the input listing (not on which
  other images were skipped), so every runner assigns it alike.
  """
  return index % num_shards


class RunTally:
  """What a run adds up: the report's counts, class and shard frequencies.

  Both paths fill it from the same `ImageResult`s: the local path one image
  after the other, the Beam path per worker bundle, merged afterwards
  (`merge`). Everything kept is a sum, or the smallest task indices (the
  example messages, the first issue, the first fatal error), so the total
  does not depend on the order of additions and merges.
  """

  def __init__(self, num_classes: int, num_shards: int):
    self.images_seen = 0
    self.images_written = 0
    self.objects_written = 0
    self.counts = {kind: collections.Counter()
                   for kind in (ISSUE_SKIP, ISSUE_DROP, ISSUE_REPAIR)}
    # reason -> up to _MAX_MESSAGES_PER_REASON (task index, position among
    # the task's issues, message), sorted: the first ones in input order.
    self.messages = collections.defaultdict(list)
    self.notes = collections.Counter()
    self.image_counts = [0] * num_classes
    self.shard_counts = [0] * num_shards
    # (task index, error text) of the first issue (an error under --strict)
    # and of the first fatal ConversionError; None when there is none.
    self.first_issue: Optional[Tuple[int, str]] = None
    self.first_fatal: Optional[Tuple[int, str]] = None

  def add(self, index: int, result: ImageResult):
    """Counts the result of the task at position `index`."""
    self.images_seen += 1
    for position, issue in enumerate(result.issues):
      if self.first_issue is None or index < self.first_issue[0]:
        self.first_issue = (index, (
            f'{issue.message} [{issue.kind}: {issue.reason}; --strict turns '
            'every skip, dropped object and repair into an error]'))
      self.counts[issue.kind][issue.reason] += issue.count
      self._keep_messages(issue.reason, [(index, position, issue.message)])
    self.notes.update(result.notes)
    if result.serialized_example is not None:
      self.images_written += 1
      self.objects_written += result.num_objects
      self.shard_counts[shard_of(index, len(self.shard_counts))] += 1
      for class_index in result.class_indices:
        self.image_counts[class_index] += 1

  def add_fatal(self, index: int, message: str):
    """Records the text of a ConversionError raised by task `index`."""
    if self.first_fatal is None or index < self.first_fatal[0]:
      self.first_fatal = (index, message)

  def _keep_messages(self, reason: str,
                     messages: List[Tuple[int, int, str]]):
    kept = self.messages[reason]
    if len(kept) < _MAX_MESSAGES_PER_REASON or messages[0] < kept[-1]:
      kept.extend(messages)
      kept.sort()
      del kept[_MAX_MESSAGES_PER_REASON:]

  def merge(self, other: 'RunTally'):
    """Adds `other` (a tally of other tasks) into this one."""
    self.images_seen += other.images_seen
    self.images_written += other.images_written
    self.objects_written += other.objects_written
    for kind, counter in other.counts.items():
      self.counts[kind].update(counter)
    for reason, messages in other.messages.items():
      self._keep_messages(reason, messages)
    self.notes.update(other.notes)
    self.image_counts = [a + b for a, b in zip(self.image_counts,
                                               other.image_counts)]
    self.shard_counts = [a + b for a, b in zip(self.shard_counts,
                                               other.shard_counts)]
    for name in ('first_issue', 'first_fatal'):
      mine, theirs = getattr(self, name), getattr(other, name)
      if theirs is not None and (mine is None or theirs[0] < mine[0]):
        setattr(self, name, theirs)

  def raise_first_error(self, strict: bool):
    """Raises the error the local path stops at: the first fatal error, or
    under `strict` the first issue, whichever task comes first."""
    candidates = [self.first_fatal] + ([self.first_issue] if strict else [])
    candidates = [c for c in candidates if c is not None]
    if candidates:
      raise ConversionError(min(candidates)[1])

  def first_message(self, reason: str) -> str:
    return self.messages[reason][0][2]

  def by_count(self, counter: collections.Counter) -> List[Tuple[str, int]]:
    """(reason, count) by decreasing count, ties in input order (the first
    task with the reason first): independent of the order of additions and
    merges."""
    return sorted(counter.items(),
                  key=lambda item: (-item[1], self.messages[item[0]][0][0]))

  def to_json(self, converter: str, num_shards: int) -> Dict[str, Any]:
    return {
        'converter': converter,
        'num_shards': num_shards,
        'images_total': self.images_seen,
        'images_written': self.images_written,
        'images_skipped': sum(self.counts[ISSUE_SKIP].values()),
        'images_skipped_by_reason': dict(self.counts[ISSUE_SKIP]),
        'objects_written': self.objects_written,
        'objects_dropped': sum(self.counts[ISSUE_DROP].values()),
        'objects_dropped_by_reason': dict(self.counts[ISSUE_DROP]),
        'repairs_by_reason': dict(self.counts[ISSUE_REPAIR]),
        'notes': dict(self.notes),
        'example_messages': {reason: [m for _, _, m in messages]
                             for reason, messages in self.messages.items()},
    }


def _progress_line(name, report, num_tasks, start_time, final=False):
  elapsed = max(time.time() - start_time, 1e-6)
  line = (f'[{name}] {report.images_seen}/{num_tasks} images, '
          f'written {report.images_written}, '
          f'skipped {sum(report.counts[ISSUE_SKIP].values())}, '
          f'objects {report.objects_written}, '
          f'{report.images_seen / elapsed:.1f} images/s')
  print(line + (' (done)' if final else ''), file=sys.stderr, flush=True)


def _existing_outputs(output_prefix: str) -> Tuple[List[str], List[str]]:
  """(finished files, `*.tmp` files) a run with `output_prefix` writes, found on disk."""
  folder = os.path.dirname(output_prefix) or '.'
  if not tf.io.gfile.isdir(folder):
    return [], []
  base = re.escape(os.path.basename(output_prefix))
  suffixes = '|'.join(re.escape(s) for s in record_set.SIDE_FILE_SUFFIXES +
                      (record_set.MANIFEST_SUFFIX,))
  # Temporary names: `NAME.tmp` (staged here), `NAME.<8 hex>.tmp` (atomic_write).
  output_name = re.compile(
      rf'^{base}(-\d{{5}}-of-\d{{5}}\.tfrecord|{suffixes})((\.[0-9a-f]{{8}})?\.tmp)?$')
  finished, temporary = [], []
  for name in sorted(tf.io.gfile.listdir(folder)):
    match = output_name.match(name)
    if match:
      (temporary if match.group(2) else finished).append(os.path.join(folder, name))
  return finished, temporary


def _clear_previous_run(output_prefix: str, overwrite: bool, converter_name: str):
  """Removes a killed run's `*.tmp` files; refuses or (overwrite) removes a previous run.

  Raises:
    ConversionError: previous outputs exist and `overwrite` is False.
  """
  finished, temporary = _existing_outputs(output_prefix)
  if finished and not overwrite:
    manifest = output_prefix + record_set.MANIFEST_SUFFIX
    state = ('a finished run' if manifest in finished else
             'an unfinished run (no manifest)')
    names = ', '.join(os.path.basename(f) for f in finished[:3])
    raise ConversionError(
        f'{output_prefix}: {len(finished)} output file(s) of {state} exist '
        f'({names}{", ..." if len(finished) > 3 else ""}); pass --overwrite to '
        'remove them first, or choose another --output_prefix')
  # The manifest goes first: a removal cut short leaves no set that looks whole.
  finished.sort(key=lambda f: not f.endswith(record_set.MANIFEST_SUFFIX))
  for path in finished + temporary:
    tf.io.gfile.remove(path)
  if temporary:
    print(f'[{converter_name}] removed {len(temporary)} temporary file(s) of '
          f'an unfinished run ({os.path.basename(temporary[0])}, ...)',
          file=sys.stderr, flush=True)


def _check_skips(report: RunTally, max_skip_fraction: float,
                 converter_name: str):
  """Raises ConversionError when no image, too large a fraction of them, or
  no object at all was kept."""
  if report.images_written and not report.objects_written:
    issues = report.by_count(report.counts[ISSUE_DROP] +
                             report.counts[ISSUE_REPAIR])
    reasons = ', '.join(f'{r}: {n}' for r, n in issues)
    first = f'; first: {report.first_message(issues[0][0])}' if issues else ''
    raise ConversionError(
        f'{converter_name}: no object was written '
        f'({reasons or "the annotations list none"}); nothing written{first}')
  skipped = sum(report.counts[ISSUE_SKIP].values())
  if report.images_written > 0 and skipped <= max_skip_fraction * max(
      report.images_seen, 1):
    return
  skip_reasons = report.by_count(report.counts[ISSUE_SKIP])
  reasons = ', '.join(f'{reason}: {count}' for reason, count in skip_reasons)
  example = report.first_message(skip_reasons[0][0]) if skip_reasons else ''
  limit = ('no image was written' if report.images_written == 0 else
           f'more than --max_skip_fraction={max_skip_fraction:g}')
  raise ConversionError(
      f'{converter_name}: skipped {skipped} of {report.images_seen} images '
      f'({reasons or "no input images"}): {limit}; nothing written'
      + (f'; first: {example}' if example else '') +
      ' (check --images_dir / --annotations, or raise --max_skip_fraction)')


def _write_local(paths: Sequence[str], tasks: Sequence[Any],
                 process_fn: Callable[[Any], ImageResult], tally: RunTally,
                 num_workers: int, strict: bool, converter_name: str,
                 show_progress: bool):
  """The local path: writes `paths[i].tmp` from a pool of `num_workers`."""
  num_shards = len(paths)
  writers = [tf.io.TFRecordWriter(path + '.tmp') for path in paths]
  pool = None
  start_time = last_progress = time.time()
  try:
    if num_workers > 0:
      context = multiprocessing.get_context(_WORKER_START_METHOD)
      pool = context.Pool(num_workers)
      results = pool.imap(_GuardedFn(process_fn), tasks,
                          chunksize=max(1, min(16, len(tasks) //
                                                (4 * num_workers) or 1)))
    else:
      results = (guarded(process_fn, task) for task in tasks)
    for index, result in enumerate(results):
      tally.add(index, result)
      tally.raise_first_error(strict)
      if result.serialized_example is not None:
        writers[shard_of(index, num_shards)].write(result.serialized_example)
      if show_progress and time.time() - last_progress > _PROGRESS_INTERVAL_S:
        last_progress = time.time()
        _progress_line(converter_name, tally, len(tasks), start_time)
  finally:
    for writer in writers:
      writer.close()
    if pool is not None:
      pool.terminate()
      pool.join()


def write_sharded(
    output_prefix: str,
    tasks: Sequence[Any],
    process_fn: Callable[[Any], ImageResult],
    vocabulary: Sequence[Dict[str, Any]],
    num_shards: int = 1,
    num_workers: int = 0,
    strict: bool = False,
    converter_name: str = 'converter',
    vocabulary_metadata: Optional[Dict[str, Any]] = None,
    show_progress: bool = True,
    overwrite: bool = False,
    max_skip_fraction: float = DEFAULT_MAX_SKIP_FRACTION,
    runner: str = LOCAL_RUNNER,
    beam_options: Sequence[str] = (),
) -> Dict[str, Any]:
  """Converts `tasks` into sharded TFRecords plus the JSON side files.

  Args:
    output_prefix: path prefix (any `tf.io.gfile` path, e.g. gs://); its
      folder is created when missing.
    tasks: per-image picklable inputs of `process_fn`, in output order.
    process_fn: top-level (picklable) function task -> ImageResult; may raise
      SkipImage (counted skip) or ConversionError (fatal).
    vocabulary: class dicts with at least index, id, name, is_thing; index i
      at position i.
    num_shards: number of output shards (>= 1).
    num_workers: processes in the local pool (0 runs in this process); with a
      Beam runner, passed on as Beam's --num_workers (Dataflow's workers).
    strict: turn every skip / dropped object / repair into ConversionError.
    converter_name: recorded in the report and the progress line.
    vocabulary_metadata: extra top-level fields of the vocabulary file.
    show_progress: print a progress line to stderr every few seconds.
    overwrite: remove a previous run's outputs of `output_prefix` first
      (without it, their presence is an error).
    max_skip_fraction: fail when more than this fraction of the images is
      skipped (a run that writes no image always fails).
    runner: 'local' (this process or its pool) or an Apache Beam runner name
      (see `BEAM_RUNNERS`; needs the `beam` extra): same output either way.
    beam_options: further Beam pipeline options (`--flag=value` strings),
      only with a Beam runner.

  Returns:
    The report dict (also written to `<prefix>-report.json`).

  Raises:
    ConversionError: on fatal input errors, too many skips, previous outputs
      without `overwrite`, or any issue under `strict`.
  """
  if num_shards < 1:
    raise ConversionError(f'--num_shards must be >= 1, got {num_shards}')
  if num_workers < 0:
    raise ConversionError(f'--num_workers must be >= 0, got {num_workers}')
  if not 0.0 <= max_skip_fraction <= 1.0:
    raise ConversionError('--max_skip_fraction must be in [0, 1], got '
                          f'{max_skip_fraction}')
  if runner != LOCAL_RUNNER and runner not in BEAM_RUNNERS:
    raise ConversionError(f'--runner must be {LOCAL_RUNNER!r} or one of '
                          f'{", ".join(BEAM_RUNNERS)}; got {runner!r}')
  if runner == LOCAL_RUNNER and beam_options:
    raise ConversionError(
        f'Beam pipeline options {list(beam_options)[:3]} need a Beam '
        f'--runner ({", ".join(BEAM_RUNNERS)}); --runner is {LOCAL_RUNNER!r}')
  for position, entry in enumerate(vocabulary):
    if entry['index'] != position:
      raise ConversionError(
          f'vocabulary entry {position} has index {entry["index"]}; '
          'indices must be 0..C-1 in order')
  output_dir = os.path.dirname(output_prefix)
  if output_dir:
    tf.io.gfile.makedirs(output_dir)
  _clear_previous_run(output_prefix, overwrite, converter_name)

  paths = record_set.shard_paths(output_prefix, num_shards)
  side_paths = [output_prefix + s for s in record_set.SIDE_FILE_SUFFIXES]
  pending = []  # Final paths whose `.tmp` twin is complete.
  start_time = time.time()
  try:
    if runner == LOCAL_RUNNER:
      tally = RunTally(len(vocabulary), num_shards)
      _write_local(paths, tasks, process_fn, tally, num_workers, strict,
                   converter_name, show_progress)
    else:
      # Imported here: the local path runs without Apache Beam installed.
      try:
        from tfrecords_tools import beam_writer  # pylint: disable=g-import-not-at-top
      except ImportError as error:
        raise ConversionError(
            f'--runner={runner} needs Apache Beam, which is not installed '
            f"({error}): pip install -e '.[beam]', or use --runner="
            f'{LOCAL_RUNNER}') from None
      options = list(beam_options)
      if num_workers:
        options.append(f'--num_workers={num_workers}')
      tally = beam_writer.write_shards(
          output_prefix, paths, tasks, process_fn, len(vocabulary), runner, options)
      tally.raise_first_error(strict)
    _check_skips(tally, max_skip_fraction, converter_name)
    pending.extend(paths)

    # The format of official_dataseg/text/vocabularies/*.json, loadable by
    # official_dataseg.text.vocabulary.load_vocabulary.
    metadata = dict(vocabulary_metadata or {})
    metadata.setdefault('dataset', f'written by tfrecords_tools.{converter_name}')
    metadata.setdefault('cleaning', [])
    metadata['classes'] = [dict(c) for c in vocabulary]
    _stage_json(side_paths[0], metadata, pending)
    _stage_json(
        side_paths[1],
        category_frequency(vocabulary, tally.image_counts,
                           tally.images_written),
        pending)
    report_json = tally.to_json(converter_name, num_shards)
    report_json['shards'] = [os.path.basename(p) for p in paths]
    _stage_json(side_paths[2], report_json, pending)
  except BaseException:
    for path in paths + side_paths:
      if tf.io.gfile.exists(path + '.tmp'):
        tf.io.gfile.remove(path + '.tmp')
    raise
  for path in pending:
    tf.io.gfile.rename(path + '.tmp', path, overwrite=True)
  record_set.write_manifest(output_prefix, paths, tally.shard_counts,
                            converter_name, side_paths[0])
  if show_progress:
    _progress_line(converter_name, tally, len(tasks), start_time, final=True)
  return report_json
