"""A gallery of bad conversion runs, as a new user makes them: each exits as documented and the
input pipeline then reads exactly the examples of one complete run (counted)."""
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from official_dataseg import common
from official_dataseg.configs import data as data_cfg
from official_dataseg.dataloaders import input_builder
from official_dataseg.dataloaders import record_set
from tfrecords_tools import objects365

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_IDS = ('1', '2', '3', '4')


def _write_dataset(root, bbox=(1, 2, 4, 3)):
  """Four 8 x 10 images, one box each, in the COCO detection layout."""
  images_dir = os.path.join(root, 'images')
  os.makedirs(images_dir)
  images, annotations = [], []
  for position, image_id in enumerate(IMAGE_IDS):
    name = f'{image_id}.png'
    Image.fromarray(np.full([8, 10, 3], 40 * position, np.uint8)).save(
        os.path.join(images_dir, name))
    images.append({'id': int(image_id), 'file_name': name, 'height': 8, 'width': 10})
    annotations.append({'id': position, 'image_id': int(image_id), 'category_id': 1,
                        'bbox': list(bbox)})
  path = os.path.join(root, 'detection.json')
  with open(path, 'w') as f:
    json.dump({'images': images, 'annotations': annotations,
               'categories': [{'id': 1, 'name': 'cat'}, {'id': 2, 'name': 'dog'}]}, f)
  return images_dir, path


def _convert(capsys, images_dir, annotations, prefix, *flags):
  """Runs the command line; returns (exit status, stderr lines)."""
  capsys.readouterr()
  status = objects365.main(['--images_dir', images_dir, '--annotations', annotations,
                            '--output_prefix', prefix, '--quiet', *flags])
  return status, capsys.readouterr().err.strip().splitlines()


def _pipeline_source_ids(prefix):
  """Source ids of every example the input pipeline reads for `PREFIX-*-of-*`, sorted."""
  config = data_cfg.DatasetConfig(name='o365', task_type=common.TASK_INSTANCE,
                                  input_path=f'{prefix}-*-of-*')
  files = input_builder.select_input_files(config).split(',')
  ids = []
  for path in files:
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
      feature = tf.train.Example.FromString(record).features.feature
      ids.append(feature[common.TFRECORD_IMAGE_SOURCE_ID].bytes_list.value[0].decode())
  return sorted(ids)


def test_wrong_images_dir_fails_and_writes_nothing(tmp_path, capsys):
  _, annotations = _write_dataset(str(tmp_path))
  wrong = tmp_path / 'val2017'  # Exists, but holds none of the images.
  wrong.mkdir()
  prefix = str(tmp_path / 'out' / 'o365')
  status, err = _convert(capsys, str(wrong), annotations, prefix)
  assert status == 1 and len(err) == 1
  assert 'skipped 4 of 4 images (missing_image: 4): no image was written' in err[0]
  assert os.listdir(tmp_path / 'out') == []
  with pytest.raises(record_set.RecordSetError, match="'o365': no file matches"):
    _pipeline_source_ids(prefix)


def test_all_annotations_invalid_fails(tmp_path, capsys):
  images_dir, annotations = _write_dataset(str(tmp_path), bbox=(1, 2, 0, 3))
  prefix = str(tmp_path / 'out' / 'o365')
  status, err = _convert(capsys, images_dir, annotations, prefix)
  assert status == 1 and len(err) == 1
  assert 'no object was written (non_positive_box: 4); nothing written' in err[0]
  assert os.listdir(tmp_path / 'out') == []


def test_skip_fraction_over_the_limit(tmp_path, capsys):
  images_dir, annotations = _write_dataset(str(tmp_path))
  os.remove(os.path.join(images_dir, '3.png'))
  prefix = str(tmp_path / 'out' / 'o365')
  status, err = _convert(capsys, images_dir, annotations, prefix)
  assert status == 1 and len(err) == 1
  assert ('skipped 1 of 4 images (missing_image: 1): more than --max_skip_fraction=0.01'
          in err[0]) and '3.png: image file not found' in err[0]
  assert os.listdir(tmp_path / 'out') == []
  assert _convert(capsys, images_dir, annotations, prefix, '--max_skip_fraction', '0.25')[0] == 0
  assert _pipeline_source_ids(prefix) == ['1', '2', '4']


def test_leftover_tmp_files_of_a_killed_run(tmp_path, capsys):
  images_dir, annotations = _write_dataset(str(tmp_path))
  prefix = str(tmp_path / 'out' / 'o365')
  os.makedirs(tmp_path / 'out')
  # What a run killed while converting leaves: temporary shards and side files only.
  for path in record_set.shard_paths(prefix, 2) + [prefix + '-report.json']:
    with open(path + '.tmp', 'wb') as f:
      f.write(b'partial')
  with pytest.raises(record_set.RecordSetError, match='matches no shard of a finished'):
    _pipeline_source_ids(prefix)
  status, err = _convert(capsys, images_dir, annotations, prefix, '--num_shards', '2')
  assert status == 0 and 'removed 3 temporary file(s) of an unfinished run' in err[0]
  assert not [f for f in os.listdir(tmp_path / 'out') if f.endswith('.tmp')]
  assert _pipeline_source_ids(prefix) == list(IMAGE_IDS)


_KILL_AFTER_FIRST_RENAME = '''
import os, signal, sys
import tensorflow as tf
from tfrecords_tools import objects365
rename = tf.io.gfile.rename
def rename_then_die(source, target, overwrite=False):
  rename(source, target, overwrite=overwrite)
  os.kill(os.getpid(), signal.SIGKILL)
tf.io.gfile.rename = rename_then_die
objects365.main(sys.argv[1:])
'''


@pytest.mark.slow
def test_killed_between_renames_then_rerun(tmp_path, capsys):
  images_dir, annotations = _write_dataset(str(tmp_path))
  prefix = str(tmp_path / 'out' / 'o365')
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', TF_USE_LEGACY_KERAS='1')
  killed = subprocess.run(
      [sys.executable, '-c', _KILL_AFTER_FIRST_RENAME, '--images_dir', images_dir,
       '--annotations', annotations, '--output_prefix', prefix, '--num_shards', '2', '--quiet'],
      cwd=REPO, env=env, capture_output=True, timeout=120)
  assert killed.returncode == -signal.SIGKILL
  # One shard in place (it looks complete), the rest temporary, no manifest.
  assert sorted(os.listdir(tmp_path / 'out')) == [
      'o365-00000-of-00002.tfrecord', 'o365-00001-of-00002.tfrecord.tmp',
      'o365-category_frequency.json.tmp', 'o365-report.json.tmp', 'o365-vocabulary.json.tmp']
  with pytest.raises(record_set.RecordSetError, match='o365-manifest.json does not exist'):
    _pipeline_source_ids(prefix)
  status, err = _convert(capsys, images_dir, annotations, prefix, '--num_shards', '2')
  assert status == 1 and len(err) == 1
  assert 'output file(s) of an unfinished run (no manifest) exist' in err[0]
  assert '--overwrite' in err[0]
  assert _convert(capsys, images_dir, annotations, prefix, '--num_shards', '2',
                  '--overwrite')[0] == 0
  assert _pipeline_source_ids(prefix) == list(IMAGE_IDS)


def test_rerun_with_another_shard_count(tmp_path, capsys):
  images_dir, annotations = _write_dataset(str(tmp_path))
  prefix = str(tmp_path / 'out' / 'o365')
  assert _convert(capsys, images_dir, annotations, prefix, '--num_shards', '2')[0] == 0
  stale = str(tmp_path / 'stale-shard')
  shutil.copy(prefix + '-00000-of-00002.tfrecord', stale)
  status, err = _convert(capsys, images_dir, annotations, prefix, '--num_shards', '3')
  assert status == 1 and len(err) == 1
  assert '6 output file(s) of a finished run exist' in err[0] and '--overwrite' in err[0]
  assert _pipeline_source_ids(prefix) == list(IMAGE_IDS)  # The first run, untouched.
  assert _convert(capsys, images_dir, annotations, prefix, '--num_shards', '3',
                  '--overwrite')[0] == 0
  assert sorted(f for f in os.listdir(tmp_path / 'out') if f.endswith('.tfrecord')) == [
      f'o365-0000{i}-of-00003.tfrecord' for i in range(3)]
  assert _pipeline_source_ids(prefix) == list(IMAGE_IDS)
  # A shard of another run put back beside the new ones is not read: still 4 examples, not 6.
  shutil.copy(stale, prefix + '-00000-of-00002.tfrecord')
  assert _pipeline_source_ids(prefix) == list(IMAGE_IDS)
