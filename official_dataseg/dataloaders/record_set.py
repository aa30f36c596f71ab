"""Record sets: the TFRecord shards of one finished conversion, recognisable as a whole.

A converter run with `--output_prefix PREFIX` writes
  PREFIX-00000-of-0000N.tfrecord ...   the shards;
  PREFIX-vocabulary.json               the class list the labels index;
  PREFIX-category_frequency.json       per-class image counts;
  PREFIX-report.json                   what was written, skipped, dropped, repaired;
  PREFIX-manifest.json                 written last, after every other file is in place:
      {"format": "dataseg_record_set", "version": 1, "converter": str,
       "num_records": int, "vocabulary_file": "PREFIX-vocabulary.json" (base name) | null,
       "shards": [{"file": base name, "num_records": int, "num_bytes": int}, ...]}
A prefix without a manifest is an unfinished (killed) or foreign run. The input pipeline reads
only shards that a manifest lists, with the listed size: `*.tmp` files, shards of an earlier run
with another shard count and truncated shards are never read. Before the first step it compares
the record set's vocabulary with `DatasetConfig.vocabulary`, so labels cannot silently index
another class list than the text embeddings.
"""
import dataclasses
import json
import os
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from absl import logging
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg.text import vocabulary as vocabulary_lib
from official_dataseg.utils import atomic_write

MANIFEST_FORMAT = 'dataseg_record_set'
MANIFEST_VERSION = 1
MANIFEST_SUFFIX = '-manifest.json'
VOCABULARY_SUFFIX = '-vocabulary.json'
CATEGORY_FREQUENCY_SUFFIX = '-category_frequency.json'
REPORT_SUFFIX = '-report.json'
SIDE_FILE_SUFFIXES = (VOCABULARY_SUFFIX, CATEGORY_FREQUENCY_SUFFIX, REPORT_SUFFIX)
# PREFIX-iiiii-of-nnnnn.tfrecord; group 1 is PREFIX.
_SHARD_NAME = re.compile(r'^(.*)-(\d{5})-of-(\d{5})\.tfrecord$')


class RecordSetError(ValueError):
  """Input records that are incomplete, foreign or of another vocabulary (one-line message)."""


def shard_paths(prefix: str, num_shards: int) -> List[str]:
  """`PREFIX-0000i-of-0000N.tfrecord` for i in range(num_shards)."""
  return ['%s-%05d-of-%05d.tfrecord' % (prefix, i, num_shards) for i in range(num_shards)]


def prefix_of_shard(path: str) -> Optional[str]:
  """PREFIX of a shard path, or None when `path` is not named like a shard."""
  match = _SHARD_NAME.match(path)
  return match.group(1) if match else None


def write_manifest(prefix: str, shards: Sequence[str], num_records: Sequence[int],
                   converter: str, vocabulary_file: Optional[str]) -> str:
  """Writes `PREFIX-manifest.json` (atomically) for finished shards.

  Args:
    prefix: the record set's path prefix.
    shards: the shard paths, complete and in place.
    num_records: records written to each shard.
    converter: name of the tool that wrote the shards.
    vocabulary_file: path of the class list the labels index, or None.

  Returns:
    The manifest path.
  """
  entries = []
  for path, count in zip(shards, num_records):
    entries.append({'file': os.path.basename(path), 'num_records': int(count),
                    'num_bytes': int(tf.io.gfile.stat(path).length)})
  manifest = {
      'format': MANIFEST_FORMAT, 'version': MANIFEST_VERSION, 'converter': converter,
      'num_records': sum(e['num_records'] for e in entries),
      'vocabulary_file': os.path.basename(vocabulary_file) if vocabulary_file else None,
      'shards': entries,
  }
  path = prefix + MANIFEST_SUFFIX
  with atomic_write.atomic_write(path) as f:
    f.write(json.dumps(manifest, indent=1, sort_keys=True) + '\n')
  return path


@dataclasses.dataclass(frozen=True)
class RecordSet:
  """One finished conversion, as its manifest describes it."""
  prefix: str
  shards: Tuple[str, ...]          # Full paths, shard order.
  num_records: Tuple[int, ...]     # Per shard.
  vocabulary_file: Optional[str]   # Full path, or None.


def read_manifest(prefix: str) -> RecordSet:
  """Reads and checks `PREFIX-manifest.json` against the files on disk.

  Raises:
    RecordSetError: no manifest (unfinished or foreign run), an unreadable one, or a listed
      shard that is missing or has another size than when it was written.
  """
  path = prefix + MANIFEST_SUFFIX
  if not tf.io.gfile.exists(path):
    raise RecordSetError(
        f'{path} does not exist: the shards {prefix}-*-of-* are not a finished conversion '
        '(killed run, or written by another tool); re-run the converter with --overwrite')
  try:
    with tf.io.gfile.GFile(path) as f:
      manifest = json.load(f)
    if manifest.get('format') != MANIFEST_FORMAT:
      raise ValueError(f'"format" is {manifest.get("format")!r}, expected {MANIFEST_FORMAT!r}')
    entries = manifest['shards']
    folder = os.path.dirname(prefix)
    shards = tuple(os.path.join(folder, e['file']) for e in entries)
    counts = tuple(int(e['num_records']) for e in entries)
    sizes = [int(e['num_bytes']) for e in entries]
    vocabulary = manifest.get('vocabulary_file')
  except (ValueError, KeyError, TypeError) as e:
    raise RecordSetError(f'{path}: not a record-set manifest ({e})') from None
  for shard, size in zip(shards, sizes):
    if not tf.io.gfile.exists(shard):
      raise RecordSetError(f'{shard}: listed in {path} but missing; re-run the converter '
                           'with --overwrite')
    actual = tf.io.gfile.stat(shard).length
    if actual != size:
      raise RecordSetError(f'{shard}: {actual} bytes, but {path} lists {size}: the shard was '
                           'changed after its conversion; re-run the converter with --overwrite')
  return RecordSet(prefix, shards, counts,
                   os.path.join(folder, vocabulary) if vocabulary else None)


def resolve(input_path: str, dataset_name: str) -> List[RecordSet]:
  """The record sets of the shards that `input_path` (comma-separated patterns) matches.

  Matched files that no manifest lists (`*.tmp`, shards of an earlier run with another shard
  count, side files) are not read; they are counted in a warning.

  Returns:
    The record sets, each narrowed to its shards that `input_path` matches, sorted by prefix.

  Raises:
    RecordSetError: nothing matches, or a matched shard's record set is unfinished or damaged.
  """
  matched = sorted({f for pattern in input_path.split(',') if pattern.strip()
                    for f in tf.io.gfile.glob(pattern.strip())})
  if not matched:
    raise RecordSetError(f'dataset {dataset_name!r}: no file matches input_path {input_path!r}')
  by_prefix: Dict[str, List[str]] = {}
  for path in matched:
    prefix = prefix_of_shard(path)
    if prefix is not None:
      by_prefix.setdefault(prefix, []).append(path)
  record_sets, read = [], set()
  for prefix in sorted(by_prefix):
    record_set = read_manifest(prefix)
    wanted = set(by_prefix[prefix])
    listed = [i for i, shard in enumerate(record_set.shards) if shard in wanted]
    if not listed:
      continue
    record_sets.append(dataclasses.replace(
        record_set, shards=tuple(record_set.shards[i] for i in listed),
        num_records=tuple(record_set.num_records[i] for i in listed)))
    read.update(record_sets[-1].shards)
  ignored = [f for f in matched if f not in read]
  if ignored:
    logging.warning('dataset %r: input_path %r also matches %d file(s) that no manifest lists '
                    '(temporary or stale shards, side files), not read: %s', dataset_name,
                    input_path, len(ignored), ', '.join(os.path.basename(f) for f in ignored[:5]))
  if not record_sets:
    raise RecordSetError(
        f'dataset {dataset_name!r}: input_path {input_path!r} matches no shard of a finished '
        f'conversion (matched: {", ".join(os.path.basename(f) for f in matched[:5])})')
  return record_sets


def _class_keys(vocabulary_name_or_path: str, dataset_name: str) -> List[Tuple[int, str]]:
  """[(id, name)] of a vocabulary's classes in index order (read by the one vocabulary loader)."""
  try:
    vocabulary = vocabulary_lib.load_vocabulary(vocabulary_name_or_path)
  except (OSError, ValueError) as e:
    raise RecordSetError(f'dataset {dataset_name!r}: {e}'.replace('\n', ' ')) from None
  return [(c.id, c.name) for c in vocabulary.classes]


def check_vocabulary(record_set: RecordSet, dataset_name: str, vocabulary_name: str) -> None:
  """Raises RecordSetError unless the records were converted with the configured class list.

  Classes are compared by (id, name) at every index, and by count.

  Args:
    record_set: the records.
    dataset_name: the DatasetConfig's name (for the message).
    vocabulary_name: `DatasetConfig.vocabulary`: a built-in name or a JSON path.
  """
  if record_set.vocabulary_file is None:
    raise RecordSetError(
        f'dataset {dataset_name!r}: {record_set.prefix}{MANIFEST_SUFFIX} names no vocabulary '
        f'file, so its labels cannot be checked against vocabulary {vocabulary_name!r}')
  records = _class_keys(record_set.vocabulary_file, dataset_name)
  configured = _class_keys(vocabulary_name, dataset_name)
  if records == configured:
    return
  mismatch = next((i for i, (a, b) in enumerate(zip(records, configured)) if a != b),
                  min(len(records), len(configured)))

  def describe(keys):
    return f'(id {keys[mismatch][0]}, {keys[mismatch][1]!r})' if mismatch < len(keys) else 'none'

  raise RecordSetError(
      f'dataset {dataset_name!r}: records {record_set.prefix}-*-of-* were converted with '
      f'{record_set.vocabulary_file} ({len(records)} classes) but DatasetConfig.vocabulary is '
      f'{vocabulary_name!r} ({vocabulary_lib.vocabulary_path(vocabulary_name)}, '
      f'{len(configured)} classes); first mismatch at class index {mismatch}: records '
      f'{describe(records)}, config {describe(configured)}. Convert with the configured '
      'vocabulary or point DatasetConfig.vocabulary at the records\' vocabulary file')
