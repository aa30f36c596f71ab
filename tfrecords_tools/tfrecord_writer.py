"""Sharded, deterministic, atomic tf.Example writing shared by every converter.

A converter turns its raw layout into a sorted list of picklable per-image
tasks and a top-level `process_fn(task) -> ImageResult`. `write_sharded` maps
`process_fn` over the tasks (in a pool of spawned processes when
`num_workers > 0`), keeps the input order, writes example i to shard
`i % num_shards`, and writes beside the shards:
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
Nothing time- or machine-dependent goes into any output: the same input and
flags give byte-identical files.
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


class _Report:
  """Accumulates counts for the report file; raises under --strict."""

  def __init__(self, strict: bool):
    self.strict = strict
    self.images_seen = 0
    self.images_written = 0
    self.objects_written = 0
    self.counts = {kind: collections.Counter()
                   for kind in (ISSUE_SKIP, ISSUE_DROP, ISSUE_REPAIR)}
    self.messages = collections.defaultdict(list)
    self.notes = collections.Counter()

  def add(self, result: ImageResult):
    self.images_seen += 1
    for issue in result.issues:
      if self.strict:
        raise ConversionError(
            f'{issue.message} [{issue.kind}: {issue.reason}; --strict turns '
            'every skip, dropped object and repair into an error]')
      self.counts[issue.kind][issue.reason] += issue.count
      messages = self.messages[issue.reason]
      if len(messages) < _MAX_MESSAGES_PER_REASON:
        messages.append(issue.message)
    self.notes.update(result.notes)
    if result.serialized_example is not None:
      self.images_written += 1
      self.objects_written += result.num_objects

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
        'example_messages': dict(self.messages),
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


def _check_skips(report: '_Report', max_skip_fraction: float,
                 converter_name: str):
  """Raises ConversionError when no image, too large a fraction of them, or
  no object at all was kept."""
  if report.images_written and not report.objects_written:
    issues = report.counts[ISSUE_DROP] + report.counts[ISSUE_REPAIR]
    reasons = ', '.join(f'{r}: {n}' for r, n in issues.most_common())
    first = (f'; first: {report.messages[issues.most_common(1)[0][0]][0]}'
             if issues else '')
    raise ConversionError(
        f'{converter_name}: no object was written '
        f'({reasons or "the annotations list none"}); nothing written{first}')
  skipped = sum(report.counts[ISSUE_SKIP].values())
  if report.images_written > 0 and skipped <= max_skip_fraction * max(
      report.images_seen, 1):
    return
  reasons = ', '.join(f'{reason}: {count}' for reason, count in
                      report.counts[ISSUE_SKIP].most_common())
  top_reason = report.counts[ISSUE_SKIP].most_common(1)
  example = report.messages[top_reason[0][0]][0] if top_reason else ''
  limit = ('no image was written' if report.images_written == 0 else
           f'more than --max_skip_fraction={max_skip_fraction:g}')
  raise ConversionError(
      f'{converter_name}: skipped {skipped} of {report.images_seen} images '
      f'({reasons or "no input images"}): {limit}; nothing written'
      + (f'; first: {example}' if example else '') +
      ' (check --images_dir / --annotations, or raise --max_skip_fraction)')


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
) -> Dict[str, Any]:
  """Converts `tasks` into sharded TFRecords plus the JSON side files.

  Args:
    output_prefix: path prefix; its folder is created when missing.
    tasks: per-image picklable inputs of `process_fn`, in output order.
    process_fn: top-level (picklable) function task -> ImageResult; may raise
      SkipImage (counted skip) or ConversionError (fatal).
    vocabulary: class dicts with at least index, id, name, is_thing; index i
      at position i.
    num_shards: number of output shards (>= 1).
    num_workers: processes in the pool; 0 runs in this process.
    strict: turn every skip / dropped object / repair into ConversionError.
    converter_name: recorded in the report and the progress line.
    vocabulary_metadata: extra top-level fields of the vocabulary file.
    show_progress: print a progress line to stderr every few seconds.
    overwrite: remove a previous run's outputs of `output_prefix` first
      (without it, their presence is an error).
    max_skip_fraction: fail when more than this fraction of the images is
      skipped (a run that writes no image always fails).

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
  report = _Report(strict)
  image_counts = [0] * len(vocabulary)
  shard_counts = [0] * num_shards
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
    for result in results:
      report.add(result)
      if result.serialized_example is not None:
        shard = (report.images_written - 1) % num_shards
        writers[shard].write(result.serialized_example)
        shard_counts[shard] += 1
        for index in result.class_indices:
          image_counts[index] += 1
      if show_progress and time.time() - last_progress > _PROGRESS_INTERVAL_S:
        last_progress = time.time()
        _progress_line(converter_name, report, len(tasks), start_time)
    for writer in writers:
      writer.close()
    _check_skips(report, max_skip_fraction, converter_name)
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
        category_frequency(vocabulary, image_counts, report.images_written),
        pending)
    report_json = report.to_json(converter_name, num_shards)
    report_json['shards'] = [os.path.basename(p) for p in paths]
    _stage_json(side_paths[2], report_json, pending)
  except BaseException:
    for writer in writers:
      writer.close()
    for path in paths + side_paths:
      if tf.io.gfile.exists(path + '.tmp'):
        tf.io.gfile.remove(path + '.tmp')
    raise
  finally:
    if pool is not None:
      pool.terminate()
      pool.join()
  for path in pending:
    tf.io.gfile.rename(path + '.tmp', path, overwrite=True)
  record_set.write_manifest(output_prefix, paths, shard_counts, converter_name,
                            side_paths[0])
  if show_progress:
    _progress_line(converter_name, report, len(tasks), start_time, final=True)
  return report_json
