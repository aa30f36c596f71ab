"""Shared writer: sharding, determinism across worker counts, atomicity."""

import json
import os
import sys

import numpy as np
import pytest
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg.dataloaders import record_set
import tfrecords_tools
from tfrecords_tools import tfrecord_writer
from tfrecords_tools.tfrecord_writer import Issue, ImageResult, SkipImage

_VOCABULARY = [{'index': i, 'id': 10 + i, 'name': f'c{i}', 'is_thing': True}
               for i in range(3)]


def _toy_process(task):
  if task % 5 == 4:
    raise SkipImage('missing_image', f'image {task}: not found')
  issues = [Issue('drop', 'unknown_category_id', f'image {task}: cat 99')] if (
      task % 7 == 3) else []
  return ImageResult(f'example-{task}'.encode(), [task % 3], 1, issues)


def _failing_process(task):
  if task == 6:
    raise tfrecord_writer.ConversionError('broken annotation for image 6')
  return _toy_process(task)


def _records(path):
  return [r.decode() for r in tf.data.TFRecordDataset(path).as_numpy_iterator()]


def test_round_robin_report_and_frequency(tmp_path):
  prefix = str(tmp_path / 'toy')
  report = tfrecord_writer.write_sharded(prefix, list(range(10)), _toy_process,
                                         _VOCABULARY, num_shards=3,
                                         show_progress=False,
                                         max_skip_fraction=0.2)
  written = [t for t in range(10) if t % 5 != 4]  # 0 1 2 3 5 6 7 8
  paths = record_set.shard_paths(prefix, 3)
  assert paths[1].endswith('toy-00001-of-00003.tfrecord')
  # Task t goes to shard t % 3 (whether or not the tasks before it were skipped).
  for shard, path in enumerate(paths):
    assert _records(path) == [f'example-{t}' for t in written if t % 3 == shard]
  assert report['images_written'] == 8
  assert report['images_skipped_by_reason'] == {'missing_image': 2}
  assert report['objects_dropped_by_reason'] == {'unknown_category_id': 1}
  frequency = json.loads((tmp_path / 'toy-category_frequency.json').read_text())
  expected = [sum(1 for t in written if t % 3 == c) for c in range(3)]
  assert [c['image_count'] for c in frequency['classes']] == expected
  assert frequency['num_images'] == 8
  vocabulary = json.loads((tmp_path / 'toy-vocabulary.json').read_text())
  assert [c['id'] for c in vocabulary['classes']] == [10, 11, 12]


def test_byte_identical_across_runs_and_worker_counts(tmp_path):
  contents = []
  for run, workers in enumerate((0, 2, 0)):
    prefix = str(tmp_path / f'run{run}' / 'toy')
    tfrecord_writer.write_sharded(prefix, list(range(40)), _toy_process,
                                  _VOCABULARY, num_shards=2,
                                  num_workers=workers, show_progress=False,
                                  max_skip_fraction=0.2)
    folder = tmp_path / f'run{run}'
    contents.append({f: (folder / f).read_bytes()
                     for f in sorted(os.listdir(folder))})
  assert len(contents[0]) == 6  # 2 shards, 3 side files, the manifest.
  assert contents[0] == contents[1] == contents[2]


@pytest.mark.parametrize('process_fn, strict, message', [
    (_failing_process, False, 'broken annotation for image 6'),
    (_toy_process, True, 'image 3: cat 99'),
])
def test_failure_leaves_no_output(tmp_path, process_fn, strict, message):
  with pytest.raises(tfrecord_writer.ConversionError, match=message):
    tfrecord_writer.write_sharded(str(tmp_path / 'toy'), list(range(10)),
                                  process_fn, _VOCABULARY, num_shards=2,
                                  strict=strict, show_progress=False)
  assert os.listdir(tmp_path) == []


def test_bad_arguments(tmp_path):
  with pytest.raises(tfrecord_writer.ConversionError, match='num_shards'):
    tfrecord_writer.write_sharded(str(tmp_path / 't'), [1], _toy_process,
                                  _VOCABULARY, num_shards=0)


_CHANGED_IN_PARENT = []


def _parent_changes_seen(task):
  return ImageResult(f'{task}:{len(_CHANGED_IN_PARENT)}'.encode(), [0], 1)


def test_workers_start_fresh_not_forked(tmp_path):
  # A forked worker copies the parent's memory, TensorFlow's running threads included (they can
  # deadlock it); a spawned one starts a new interpreter and imports this module anew.
  _CHANGED_IN_PARENT.append('after import')
  try:
    tfrecord_writer.write_sharded(str(tmp_path / 'toy'), [0, 1], _parent_changes_seen,
                                  _VOCABULARY, num_workers=1, show_progress=False)
  finally:
    _CHANGED_IN_PARENT.clear()
  assert _records(str(tmp_path / 'toy-00000-of-00001.tfrecord')) == ['0:0', '1:0']


def _tally_state(tally):
  return (tally.images_seen, tally.images_written, tally.objects_written,
          tally.counts, dict(tally.messages), tally.notes, tally.image_counts,
          tally.shard_counts, tally.first_issue, tally.first_fatal)


def test_tally_merges_in_any_order_to_the_sequential_total():
  """What the Beam path relies on: partial tallies merged in any order equal
  one tally filled in task order (messages: the first 10 by task)."""
  def issues(task):
    return [Issue('drop', 'unknown_category_id', f'image {task}: cat {k}')
            for k in range(task % 3)]
  results = [(t, ImageResult(None if t % 4 == 0 else b'x', [t % 3], 1,
                             issues(t), {'note': 1})) for t in range(60)]
  sequential = tfrecord_writer.RunTally(3, 2)
  for index, result in results:
    sequential.add(index, result)
  sequential.add_fatal(50, 'fatal 50')
  rng = np.random.default_rng(0)
  for _ in range(3):
    parts = [tfrecord_writer.RunTally(3, 2) for _ in range(4)]
    for index, result in [results[i] for i in rng.permutation(len(results))]:
      parts[rng.integers(4)].add(index, result)
    parts[rng.integers(4)].add_fatal(50, 'fatal 50')
    merged = parts[0]
    for part in parts[1:]:
      merged.merge(part)
    assert _tally_state(merged) == _tally_state(sequential)
  assert sequential.messages['unknown_category_id'][:3] == [
      (1, 0, 'image 1: cat 0'), (2, 0, 'image 2: cat 0'), (2, 1, 'image 2: cat 1')]
  with pytest.raises(tfrecord_writer.ConversionError, match='image 1: cat 0'):
    sequential.raise_first_error(strict=True)
  with pytest.raises(tfrecord_writer.ConversionError, match='fatal 50'):
    sequential.raise_first_error(strict=False)


def test_beam_runner_without_beam_is_a_clear_error(tmp_path, monkeypatch):
  # As if Apache Beam were not installed (None in sys.modules fails the import).
  monkeypatch.setitem(sys.modules, 'apache_beam', None)
  monkeypatch.delitem(sys.modules, 'tfrecords_tools.beam_writer', raising=False)
  # `from tfrecords_tools import beam_writer` finds an imported module as the package's attribute.
  monkeypatch.delattr(tfrecords_tools, 'beam_writer', raising=False)
  with pytest.raises(tfrecord_writer.ConversionError,
                     match=r"--runner=DirectRunner needs Apache Beam.*\.\[beam\]"):
    tfrecord_writer.write_sharded(str(tmp_path / 'toy'), [0, 1], _toy_process,
                                  _VOCABULARY, show_progress=False,
                                  runner='DirectRunner')
  assert os.listdir(tmp_path) == []
