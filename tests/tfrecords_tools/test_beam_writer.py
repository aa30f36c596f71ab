"""The Beam path (--runner=DirectRunner) against the local path.

For every converter, on the small inputs the converters' own tests write and
on the real two-image COCO sample: the same files byte for byte (shards, side
files, manifest), the same examples record by record, the same errors and
counted skips on bad input, and byte-identical re-runs. Most runs use the
DirectRunner in this process; one re-run uses two worker processes.
"""

import json
import os
import pathlib
import shutil

import numpy as np
import pytest
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from tests.tfrecords_tools import helpers
from tests.tfrecords_tools import test_ade20k_panoptic
from tests.tfrecords_tools import test_coco_panoptic
from tests.tfrecords_tools import test_pascal_context
from tests.tfrecords_tools import test_tfrecord_writer
from tfrecords_tools import ade20k
from tfrecords_tools import ade20k_panoptic
from tfrecords_tools import coco_detection
from tfrecords_tools import coco_instance
from tfrecords_tools import coco_panoptic
from tfrecords_tools import coco_semantic
from tfrecords_tools import objects365
from tfrecords_tools import pascal_context
from tfrecords_tools import synthetic_suite
from tfrecords_tools import tfrecord_writer
from tfrecords_tools import voc

pytest.importorskip(
    'apache_beam', reason='Apache Beam is not installed (the beam extra: '
    "pip install -e '.[beam]')")

_IN_PROCESS = ('--direct_running_mode=in_memory', '--direct_num_workers=1')
_TWO_PROCESSES = ('--direct_running_mode=multi_processing',
                  '--direct_num_workers=2')
_SAMPLE_DIR = test_coco_panoptic.SAMPLE_DIR
_NEEDS_SAMPLE = pytest.mark.skipif(
    not os.path.isdir(_SAMPLE_DIR),
    reason=f'real COCO panoptic sample not found at {_SAMPLE_DIR}')


def _convert(convert_fn, kwargs, prefix, beam_options=None, **flags):
  """Runs `convert_fn` locally (beam_options None) or on the DirectRunner."""
  if beam_options is not None:
    flags.update(runner='DirectRunner', beam_options=list(beam_options))
  return convert_fn(output_prefix=prefix, num_shards=2, show_progress=False,
                    **kwargs, **flags)


def _output_files(prefix):
  """{file name: bytes} of everything written under the prefix's folder."""
  folder = os.path.dirname(prefix)
  files = {}
  for name in sorted(os.listdir(folder)):
    with open(os.path.join(folder, name), 'rb') as f:
      files[name] = f.read()
  return files


def _records_by_shard(prefix):
  manifest = helpers.read_json(prefix + '-manifest.json')
  folder = os.path.dirname(prefix)
  return [[helpers.to_dict(tf.train.Example.FromString(record))
           for record in tf.data.TFRecordDataset(
               os.path.join(folder, shard['file'])).as_numpy_iterator()]
          for shard in manifest['shards']]


def _assert_same_output(local_prefix, beam_prefix):
  """Decoded records, shard counts and every file's bytes are equal."""
  local_records = _records_by_shard(local_prefix)
  beam_records = _records_by_shard(beam_prefix)
  assert [len(s) for s in beam_records] == [len(s) for s in local_records]
  assert sum(len(s) for s in local_records) > 0
  for local_shard, beam_shard in zip(local_records, beam_records):
    for local_example, beam_example in zip(local_shard, beam_shard):
      # Every feature, the image bytes among them.
      assert sorted(beam_example) == sorted(local_example)
      for key, value in local_example.items():
        assert beam_example[key] == value, key
  local_files, beam_files = (_output_files(p) for p in (local_prefix,
                                                        beam_prefix))
  assert sorted(beam_files) == sorted(local_files)
  for name, content in local_files.items():
    assert beam_files[name] == content, name
  manifest = helpers.read_json(local_prefix + '-manifest.json')
  assert [s['num_records'] for s in manifest['shards']] == [
      len(s) for s in local_records]


# --- The inputs: one per converter, as the converters' own tests write them.

def _synthetic_cases(root):
  paths = synthetic_suite.generate(os.path.join(root, 'raw'), seed=5,
                                   num_train=3, num_val=2)
  return {
      'ade20k': (ade20k.convert, paths['ade']['train']),
      'coco_panoptic': (coco_panoptic.convert, paths['coco']['train']),
      'coco_semantic': (coco_semantic.convert, paths['coco']['val']),
      'objects365': (objects365.convert, paths['o365']['train']),
      'coco_detection': (coco_detection.convert, paths['o365']['val']),
      'coco_instance': (coco_instance.convert, paths['o365']['val']),
      'voc': (voc.convert, paths['voc']['val']),
  }


def _ade20k_panoptic_case(root):
  images_dir, annotations, masks_dir, *_ = test_ade20k_panoptic._write_dataset(
      root)
  return ade20k_panoptic.convert, dict(images_dir=images_dir,
                                       annotations=annotations,
                                       panoptic_masks_dir=masks_dir)


def _cityscapes_case(root):
  # Imported here: its cityscapesScripts import may skip only this case.
  from tests.tfrecords_tools import test_cityscapes_panoptic  # pylint: disable=g-import-not-at-top
  from tfrecords_tools import cityscapes_panoptic  # pylint: disable=g-import-not-at-top
  images_dir, annotations, _ = test_cityscapes_panoptic._write_dataset(
      pathlib.Path(root))
  return cityscapes_panoptic.convert, dict(images_dir=images_dir,
                                           annotations=annotations)


def _pascal_context_case(root):
  labels = {}
  for k, name in enumerate(('2008_000002', '2008_000003', '2008_000007')):
    values = np.zeros((6, 7), np.int64)
    values[:2] = 47
    values[3:, :3] = 1 + k
    labels[name] = values
  images_dir, labels_dir = test_pascal_context._write(pathlib.Path(root),
                                                       labels)
  return pascal_context.convert, dict(images_dir=images_dir,
                                      annotations=labels_dir)


def _sample_cases():
  images_dir = os.path.join(_SAMPLE_DIR, 'input_images')
  panoptic = dict(images_dir=images_dir,
                  annotations=os.path.join(_SAMPLE_DIR,
                                           'panoptic_examples.json'),
                  panoptic_masks_dir=os.path.join(_SAMPLE_DIR,
                                                  'panoptic_examples'))
  detection = dict(images_dir=images_dir, annotations=os.path.join(
      _SAMPLE_DIR, 'panoptic_coco_detection_format.json'))
  return {'sample_coco_panoptic': (coco_panoptic.convert, panoptic),
          'sample_coco_semantic': (coco_semantic.convert, panoptic),
          'sample_coco_instance': (coco_instance.convert, detection)}


@pytest.fixture(scope='module')
def synthetic_cases(tmp_path_factory):
  return _synthetic_cases(str(tmp_path_factory.mktemp('synthetic')))


_OWN_INPUT_CASES = {'ade20k_panoptic': _ade20k_panoptic_case,
                    'cityscapes_panoptic': _cityscapes_case,
                    'pascal_context': _pascal_context_case}


@pytest.mark.parametrize('name', [
    'ade20k', 'coco_panoptic', 'coco_semantic', 'objects365',
    'coco_detection', 'coco_instance', 'voc', 'ade20k_panoptic',
    'cityscapes_panoptic', 'pascal_context',
    pytest.param('sample_coco_panoptic', marks=_NEEDS_SAMPLE),
    pytest.param('sample_coco_semantic', marks=_NEEDS_SAMPLE),
    pytest.param('sample_coco_instance', marks=_NEEDS_SAMPLE)])
def test_direct_runner_writes_what_local_writes(name, synthetic_cases,
                                                tmp_path):
  if name in synthetic_cases:
    convert_fn, kwargs = synthetic_cases[name]
  elif name in _OWN_INPUT_CASES:
    root = tmp_path / 'input'
    root.mkdir()
    convert_fn, kwargs = _OWN_INPUT_CASES[name](str(root))
  else:
    convert_fn, kwargs = _sample_cases()[name]
  local_prefix = str(tmp_path / 'local' / name)
  beam_prefix = str(tmp_path / 'beam' / name)
  local_report = _convert(convert_fn, kwargs, local_prefix)
  beam_report = _convert(convert_fn, kwargs, beam_prefix,
                         beam_options=_IN_PROCESS)
  assert beam_report == local_report
  assert local_report['images_written'] > 0
  _assert_same_output(local_prefix, beam_prefix)
  # The Beam run leaves no staging folder behind.
  assert not any(n.endswith('.tmp') for n in os.listdir(tmp_path / 'beam'))


@pytest.mark.slow  # Two Beam worker processes start (each imports TensorFlow).
@_NEEDS_SAMPLE
def test_reruns_are_byte_identical(tmp_path):
  """Local twice and Beam twice (in process, then 2 worker processes)."""
  convert_fn, kwargs = _sample_cases()['sample_coco_panoptic']
  runs = {'local_a': None, 'local_b': None, 'beam_a': _IN_PROCESS,
          'beam_b': _TWO_PROCESSES}
  files = {}
  for run, beam_options in runs.items():
    prefix = str(tmp_path / run / 'coco')
    _convert(convert_fn, kwargs, prefix, beam_options=beam_options)
    files[run] = _output_files(prefix)
  assert files['local_a'] == files['local_b']
  assert files['beam_a'] == files['beam_b']
  assert files['beam_a'] == files['local_a']


# --- Bad input: the same counted skip or the same error on both paths.

def _sample_with_bad_image(tmp_path, how):
  """The COCO sample with its second image corrupt ('corrupt') or gone."""
  images_dir = tmp_path / 'images'
  shutil.copytree(os.path.join(_SAMPLE_DIR, 'input_images'), images_dir)
  second = sorted(os.listdir(images_dir))[1]
  if how == 'corrupt':
    (images_dir / second).write_bytes(b'\xff\xd8\xff\xe0 not a JPEG')
  else:
    (images_dir / second).unlink()
  _, kwargs = _sample_cases()['sample_coco_panoptic']
  return dict(kwargs, images_dir=str(images_dir))


@_NEEDS_SAMPLE
def test_corrupt_image_is_the_same_counted_skip(tmp_path):
  kwargs = _sample_with_bad_image(tmp_path, 'corrupt')
  reports = [_convert(coco_panoptic.convert, kwargs,
                      str(tmp_path / run / 'coco'), beam_options=options,
                      max_skip_fraction=0.5)
             for run, options in (('local', None), ('beam', _IN_PROCESS))]
  assert reports[0] == reports[1]
  assert reports[0]['images_skipped_by_reason'] == {'unreadable_image': 1}
  _assert_same_output(str(tmp_path / 'local' / 'coco'),
                      str(tmp_path / 'beam' / 'coco'))


@_NEEDS_SAMPLE
@pytest.mark.parametrize('how, flags, expected', [
    ('missing', {'strict': True}, 'missing_image; --strict'),
    ('corrupt', {}, r'skipped 1 of 2 images \(unreadable_image: 1\): more '
     r'than --max_skip_fraction=0.01'),
])
def test_bad_image_is_the_same_error(tmp_path, how, flags, expected):
  kwargs = _sample_with_bad_image(tmp_path, how)
  errors = []
  for run, options in (('local', None), ('beam', _IN_PROCESS)):
    prefix = str(tmp_path / run / 'coco')
    with pytest.raises(tfrecord_writer.ConversionError, match=expected) as info:
      _convert(coco_panoptic.convert, kwargs, prefix, beam_options=options,
               **flags)
    errors.append(str(info.value))
    assert os.listdir(os.path.dirname(prefix)) == []  # Nothing left behind.
  assert errors[0] == errors[1]


def test_fatal_error_in_process_fn_is_the_same(tmp_path):
  """A ConversionError raised for one image (task 6) stops both paths alike."""
  errors = []
  for run, runner in (('local', 'local'), ('beam', 'DirectRunner')):
    with pytest.raises(tfrecord_writer.ConversionError) as info:
      tfrecord_writer.write_sharded(
          str(tmp_path / run / 'toy'), list(range(10)),
          test_tfrecord_writer._failing_process,
          test_tfrecord_writer._VOCABULARY, num_shards=3,
          show_progress=False, max_skip_fraction=0.5, runner=runner,
          beam_options=_IN_PROCESS if runner != 'local' else ())
    errors.append(str(info.value))
  assert errors[0] == errors[1] == 'broken annotation for image 6'


def test_toy_tasks_with_skips_and_drops(tmp_path):
  """Skips shift no other image's shard; report, messages and counts match."""
  reports = [tfrecord_writer.write_sharded(
      str(tmp_path / run / 'toy'), list(range(40)),
      test_tfrecord_writer._toy_process, test_tfrecord_writer._VOCABULARY,
      num_shards=3, show_progress=False, max_skip_fraction=0.3,
      runner=runner, beam_options=_IN_PROCESS if runner != 'local' else ())
             for run, runner in (('local', 'local'), ('beam', 'DirectRunner'))]
  assert reports[0] == reports[1]
  assert reports[0]['images_skipped_by_reason'] == {'missing_image': 8}
  assert reports[0]['example_messages']['missing_image'] == [
      f'image {t}: not found' for t in range(4, 40, 5)]
  local_files = _output_files(str(tmp_path / 'local' / 'toy'))
  assert _output_files(str(tmp_path / 'beam' / 'toy')) == local_files
  manifest = json.loads(local_files['toy-manifest.json'])
  assert [s['num_records'] for s in manifest['shards']] == [
      sum(1 for t in range(40) if t % 5 != 4 and t % 3 == s) for s in range(3)]


def test_cli_passes_beam_options_through(tmp_path, capsys):
  _, kwargs = _synthetic_cases(str(tmp_path))['voc']
  argv = ['--images_dir', kwargs['images_dir'], '--annotations',
          kwargs['annotations'], '--split', kwargs['split'], '--quiet',
          '--vocabulary', kwargs['vocabulary']]
  assert voc.main(argv + ['--output_prefix', str(tmp_path / 'local' / 'voc')]
                  ) == 0
  assert voc.main(argv + ['--output_prefix', str(tmp_path / 'beam' / 'voc'),
                          '--runner', 'DirectRunner', *_IN_PROCESS]) == 0
  assert (_output_files(str(tmp_path / 'beam' / 'voc')) ==
          _output_files(str(tmp_path / 'local' / 'voc')))
  # Beam options without a Beam runner are an error, named.
  with pytest.raises(SystemExit):
    voc.main(argv + ['--output_prefix', str(tmp_path / 'x' / 'voc'),
                     '--direct_num_workers=2'])
  assert 'need a Beam --runner' in capsys.readouterr().err
  # So is a flag that Beam does not know either (a mistyped converter flag).
  assert voc.main(argv + ['--output_prefix', str(tmp_path / 'y' / 'voc'),
                          '--runner', 'DirectRunner', '--num_shard=3']) == 1
  assert 'neither the converter nor Beam knows the flag(s) --num_shard' in (
      capsys.readouterr().err)
