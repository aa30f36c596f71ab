"""Sharded, deterministic, atomic tf.Example writing shared by every converter.

A converter turns its raw layout into a sorted list of picklable per-image
tasks and a top-level `process_fn(task) -> ImageResult`. `write_sharded` maps
`process_fn` over the tasks (in a process pool when `num_workers > 0`), keeps
the input order, writes example i to shard `i % num_shards`, and writes beside
the shards:
  <prefix>-vocabulary.json          the class list in index order;
  <prefix>-category_frequency.json  per class: images containing it;
  <prefix>-report.json              images written / skipped and why, objects
                                    dropped and why, pixel repairs.
Every file is first written as `*.tmp` and renamed only when the whole run
succeeded, so an interrupted run never leaves a half-written shard behind.
Nothing time- or machine-dependent goes into any output: the same input and
flags give byte-identical files.
"""

import collections
import dataclasses
import json
import multiprocessing
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import tensorflow as tf, tf_keras  # pylint: disable=unused-import

# Issue kinds an ImageResult can carry. A skip drops the whole image, a drop
# removes one object, a repair changes the data (e.g. voids unknown pixels).
ISSUE_SKIP = 'skip'
ISSUE_DROP = 'drop'
ISSUE_REPAIR = 'repair'
_MAX_MESSAGES_PER_REASON = 10
_PROGRESS_INTERVAL_S = 5.0


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


def shard_paths(output_prefix: str, num_shards: int) -> List[str]:
  """Returns `<prefix>-0000i-of-0000n.tfrecord` for i in range(num_shards)."""
  return ['%s-%05d-of-%05d.tfrecord' % (output_prefix, i, num_shards)
          for i in range(num_shards)]


def _write_json_atomic(path: str, content: Any, pending: List[str]):
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
) -> Dict[str, Any]:
  """Converts `tasks` into sharded TFRecords plus the three JSON side files.

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

  Returns:
    The report dict (also written to `<prefix>-report.json`).

  Raises:
    ConversionError: on fatal input errors, or any issue under `strict`.
  """
  if num_shards < 1:
    raise ConversionError(f'--num_shards must be >= 1, got {num_shards}')
  if num_workers < 0:
    raise ConversionError(f'--num_workers must be >= 0, got {num_workers}')
  for position, entry in enumerate(vocabulary):
    if entry['index'] != position:
      raise ConversionError(
          f'vocabulary entry {position} has index {entry["index"]}; '
          'indices must be 0..C-1 in order')
  output_dir = os.path.dirname(output_prefix)
  if output_dir:
    tf.io.gfile.makedirs(output_dir)

  paths = shard_paths(output_prefix, num_shards)
  pending = []  # Final paths whose `.tmp` twin is complete.
  report = _Report(strict)
  image_counts = [0] * len(vocabulary)
  writers = [tf.io.TFRecordWriter(path + '.tmp') for path in paths]
  pool = None
  start_time = last_progress = time.time()
  try:
    if num_workers > 0:
      # fork keeps start-up cheap (no re-import of TensorFlow per worker); the
      # workers only use NumPy, PIL, pycocotools and protobuf.
      context = multiprocessing.get_context(
          'fork' if 'fork' in multiprocessing.get_all_start_methods()
          else None)
      pool = context.Pool(num_workers)
      results = pool.imap(_GuardedFn(process_fn), tasks,
                          chunksize=max(1, min(16, len(tasks) //
                                                (4 * num_workers) or 1)))
    else:
      results = (guarded(process_fn, task) for task in tasks)
    for result in results:
      report.add(result)
      if result.serialized_example is not None:
        writers[(report.images_written - 1) % num_shards].write(
            result.serialized_example)
        for index in result.class_indices:
          image_counts[index] += 1
      if show_progress and time.time() - last_progress > _PROGRESS_INTERVAL_S:
        last_progress = time.time()
        _progress_line(converter_name, report, len(tasks), start_time)
    for writer in writers:
      writer.close()
    pending.extend(paths)

    # The format of official_dataseg/text/vocabularies/*.json, loadable by
    # official_dataseg.text.vocabulary.load_vocabulary.
    metadata = dict(vocabulary_metadata or {})
    metadata.setdefault('dataset', f'written by tfrecords_tools.{converter_name}')
    metadata.setdefault('cleaning', [])
    metadata['classes'] = [dict(c) for c in vocabulary]
    _write_json_atomic(output_prefix + '-vocabulary.json', metadata, pending)
    _write_json_atomic(
        output_prefix + '-category_frequency.json',
        category_frequency(vocabulary, image_counts, report.images_written),
        pending)
    report_json = report.to_json(converter_name, num_shards)
    report_json['shards'] = [os.path.basename(p) for p in paths]
    _write_json_atomic(output_prefix + '-report.json', report_json, pending)
  except BaseException:
    for writer in writers:
      writer.close()
    for path in paths + [output_prefix + suffix for suffix in (
        '-vocabulary.json', '-category_frequency.json', '-report.json')]:
      if tf.io.gfile.exists(path + '.tmp'):
        tf.io.gfile.remove(path + '.tmp')
    raise
  finally:
    if pool is not None:
      pool.terminate()
      pool.join()
  for path in pending:
    tf.io.gfile.rename(path + '.tmp', path, overwrite=True)
  if show_progress:
    _progress_line(converter_name, report, len(tasks), start_time, final=True)
  return report_json
