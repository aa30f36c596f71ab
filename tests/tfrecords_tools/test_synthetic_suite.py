"""Synthetic suite: determinism, real formats, and conversion by the real tools."""

import hashlib
import os

import numpy as np
from PIL import Image
from pycocotools import mask as mask_api
import pytest

import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg import common
from tests.tfrecords_tools import helpers
from tfrecords_tools import synthetic_suite


def _tree(root):
  files = {}
  for folder, _, names in os.walk(root):
    for name in names:
      path = os.path.join(folder, name)
      with open(path, 'rb') as f:
        files[os.path.relpath(path, root)] = f.read()
  return files


@pytest.fixture(scope='module')
def suite(tmp_path_factory):
  root = tmp_path_factory.mktemp('synthetic')
  paths = synthetic_suite.generate(str(root / 'a'), seed=3, num_train=3,
                                   num_val=2)
  return root, paths


def test_deterministic_from_seed(suite):
  root, _ = suite
  synthetic_suite.generate(str(root / 'b'), seed=3, num_train=3, num_val=2)
  synthetic_suite.generate(str(root / 'c'), seed=4, num_train=3, num_val=2)
  first, again, other = (_tree(root / n) for n in 'abc')
  assert first == again
  assert sorted(first) == sorted(other) and first != other
  # 4 datasets x 5 images, each with an image file and (except O365) a PNG.
  assert sum(f.endswith('.jpg') for f in first) == 20


def test_raw_formats_match_the_vocabularies(suite):
  root, paths = suite
  vocab = {n: helpers.read_json(synthetic_suite.vocabulary_path(n))['classes']
           for n in synthetic_suite.DATASETS}
  ade_ids = {c['id'] for c in vocab['ade']} | {0}
  for name in os.listdir(paths['ade']['train']['annotations']):
    labels = np.asarray(Image.open(os.path.join(
        paths['ade']['train']['annotations'], name)))
    assert set(np.unique(labels)) <= ade_ids
  coco = helpers.read_json(paths['coco']['val']['annotations'])
  assert [c['id'] for c in coco['categories']] == [c['id'] for c in vocab['coco']]
  for annotation in coco['annotations']:
    rgb = np.asarray(Image.open(os.path.join(
        paths['coco']['val']['annotations'][:-5], annotation['file_name'])),
                     np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    for segment in annotation['segments_info']:
      assert (ids == segment['id']).sum() == segment['area']
    assert set(np.unique(ids)) - {0} == {
        s['id'] for s in annotation['segments_info']}
  o365 = helpers.read_json(paths['o365']['val']['annotations'])
  for annotation in o365['annotations']:
    if annotation.get('skipped'):
      continue
    mask = mask_api.decode(annotation['segmentation'])
    x, y, w, h = annotation['bbox']
    assert mask.sum() > 0 and mask[y:y + h, x:x + w].sum() == mask.sum()
  voc_png = Image.open(os.path.join(
      paths['voc']['val']['annotations'],
      sorted(os.listdir(paths['voc']['val']['annotations']))[0]))
  assert voc_png.mode == 'P'
  values = set(np.unique(np.asarray(voc_png)))
  assert 0 in values and 255 in values and values <= set(range(9)) | {255}


def test_convert_all_in_strict_mode(suite, tmp_path):
  _, paths = suite
  prefixes = synthetic_suite.convert_all(paths, str(tmp_path), num_shards=2)
  assert set(prefixes) == set(synthetic_suite.DATASETS) | {'ade_panoptic'}
  assert list(prefixes['ade_panoptic']) == ['val']
  for dataset, splits in prefixes.items():
    for split, prefix in splits.items():
      report = helpers.read_json(prefix + '-report.json')
      assert report['images_written'] == (3 if split == 'train' else 2)
      vocabulary = helpers.read_json(prefix + '-vocabulary.json')['classes']
      expected = helpers.read_json(synthetic_suite.vocabulary_path(
          dataset.replace('_panoptic', '')))['classes']
      assert [(c['id'], c['name']) for c in vocabulary] == [
          (c['id'], c['name']) for c in expected]
  o365_val = helpers.read_examples(prefixes['o365']['val'])
  assert all(common.TFRECORD_OBJECT_MASK in e for e in o365_val)
  coco_train = helpers.read_examples(prefixes['coco']['train'])
  assert all(len(e[common.TFRECORD_OBJECT_CLASS]) >= 2 for e in coco_train)
  # The ADE panoptic val set, read back with tf.data: one panoptic example per ADE val image.
  ade_panoptic = prefixes['ade_panoptic']['val']
  assert os.path.basename(ade_panoptic) == 'synthetic_ade_panoptic_val'
  files = tf.io.gfile.glob(ade_panoptic + '-*-of-*.tfrecord')
  records = list(tf.data.TFRecordDataset(files).as_numpy_iterator())
  assert len(records) == 2
  features = tf.io.parse_single_example(records[0], {
      common.TFRECORD_OBJECT_CLASS: tf.io.VarLenFeature(tf.int64),
      common.TFRECORD_OBJECT_IS_CROWD: tf.io.VarLenFeature(tf.int64)})
  classes = tf.sparse.to_dense(features[common.TFRECORD_OBJECT_CLASS]).numpy()
  crowd = tf.sparse.to_dense(features[common.TFRECORD_OBJECT_IS_CROWD]).numpy()
  assert len(classes) >= 2 and not crowd.any()
  report = helpers.read_json(ade_panoptic + '-report.json')
  assert report['converter'] == 'ade20k_panoptic'


def _hashes(root, relative_paths):
  digests = {}
  for relative in relative_paths:
    with open(os.path.join(root, relative), 'rb') as f:
      digests[relative] = hashlib.sha256(f.read()).hexdigest()
  return digests


def _counted_files(root):
  return sorted(os.path.relpath(os.path.join(folder, name), root)
                for folder, _, names in os.walk(root) for name in names)


def test_per_dataset_counts(tmp_path):
  as_int = str(tmp_path / 'int')
  synthetic_suite.generate(as_int, seed=1, num_train=4, num_val=2)
  as_dict = str(tmp_path / 'dict')
  synthetic_suite.generate(as_dict, seed=1,
                           num_train={'ade': 4, 'coco': 4, 'o365': 4, 'voc': 4},
                           num_val=2)
  files = _counted_files(as_int)
  assert files == _counted_files(as_dict)
  assert _hashes(as_int, files) == _hashes(as_dict, files)
  # More O365 training images: O365's first 4 unchanged, the other datasets untouched.
  more = str(tmp_path / 'more')
  paths = synthetic_suite.generate(more, seed=1,
                                   num_train={'ade': 4, 'coco': 4, 'o365': 6, 'voc': 4},
                                   num_val={'ade': 2, 'coco': 2, 'o365': 2, 'voc': 2})
  o365_train = [f'o365/images/train/patch0/objects365_v2_{i:08d}.jpg' for i in range(1, 5)]
  assert _hashes(more, o365_train) == _hashes(as_int, o365_train)
  assert len(os.listdir(os.path.join(paths['o365']['train']['images_dir'], 'patch0'))) == 6
  others = [f for f in files if not f.startswith('o365/')]
  assert _hashes(more, others) == _hashes(as_int, others)
  o365 = helpers.read_json(paths['o365']['train']['annotations'])
  assert [image['id'] for image in o365['images']] == list(range(1, 7))
  o365_val = helpers.read_json(paths['o365']['val']['annotations'])
  assert [image['id'] for image in o365_val['images']] == [7, 8]


@pytest.mark.parametrize('counts, message', [
    ({'ade': 1, 'coco': 1, 'o365': 1, 'voc': 1, 'cityscapes': 1}, 'cityscapes'),
    ({'ade': 1, 'coco': 1, 'o365': 1}, 'voc'),
    ({'ade': 1, 'coco': -1, 'o365': 1, 'voc': 1}, 'coco'),
])
def test_bad_counts_raise(tmp_path, counts, message):
  with pytest.raises(ValueError, match=message):
    synthetic_suite.generate(str(tmp_path), num_train=counts)
  assert not os.listdir(tmp_path)


def test_cli_counts(capsys):
  parse = synthetic_suite._counts_arg  # pylint: disable=protected-access
  assert parse('64') == 64
  assert parse('ade=24,coco=64,o365=128,voc=64') == {
      'ade': 24, 'coco': 64, 'o365': 128, 'voc': 64}
  for bad in ('x', '-1', 'ade=1,coco=2', 'ade=1,coco=2,o365=3,voc=x',
              'ade=1,coco=2,o365=3,voc=4,kitti=5', 'ade=1,ade=1,coco=2,o365=3,voc=4'):
    with pytest.raises(SystemExit):
      synthetic_suite.main(['--output_dir', '/nonexistent', '--num_train', bad])
    assert '--num_train' in capsys.readouterr().err


def test_ade_panoptic_val_matches_ade_val(suite):
  _, paths = suite
  panoptic, ade = paths['ade_panoptic'], paths['ade']
  assert list(panoptic) == ['val']
  panoptic = panoptic['val']
  assert panoptic['images_dir'] == ade['val']['images_dir']
  assert panoptic['annotations'].endswith(
      os.path.join('ade', 'ADEChallengeData2016', 'ade20k_panoptic_val.json'))
  content = helpers.read_json(panoptic['annotations'])
  vocab = helpers.read_json(synthetic_suite.vocabulary_path('ade'))['classes']
  assert [(c['id'], c['name'], c['isthing']) for c in content['categories']] == [
      (c['id'], c['name'], int(c['is_thing'])) for c in vocab]
  is_thing = {c['id']: c['isthing'] for c in content['categories']}
  ade_images = sorted(os.listdir(ade['val']['images_dir']))
  assert [image['file_name'] for image in content['images']] == ade_images
  # The scenes regenerated for the panoptic split are ADE val's: the same JPEG bytes.
  jpeg_dir = os.path.join(os.path.dirname(panoptic['images_dir']), 'regenerated')
  # pylint: disable=protected-access
  classes = synthetic_suite._load_classes('ade')
  scenes = []
  for i, scene in synthetic_suite._scenes(3, 'ade', 'val', len(ade_images), classes):
    synthetic_suite._save_jpeg(os.path.join(jpeg_dir, ade_images[i]), scene.image)
    scenes.append(scene)
  # pylint: enable=protected-access
  assert _hashes(jpeg_dir, ade_images) == _hashes(ade['val']['images_dir'], ade_images)
  for image, annotation, scene in zip(content['images'], content['annotations'], scenes):
    assert annotation['image_id'] == image['id'] == image['file_name'][:-4]
    rgb = np.asarray(Image.open(os.path.join(panoptic['panoptic_masks_dir'],
                                             annotation['file_name'])), np.int64)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    semantic = np.asarray(Image.open(os.path.join(
        ade['val']['annotations'], image['file_name'][:-4] + '.png'))).astype(np.int64)
    assert ids.shape == semantic.shape == (image['height'], image['width'])
    segments = annotation['segments_info']
    assert set(np.unique(ids)) - {0} == {s['id'] for s in segments}
    category = np.zeros_like(ids)
    for segment in segments:
      mask = ids == segment['id']
      assert segment['iscrowd'] == 0 and mask.sum() == segment['area']
      category[mask] = segment['category_id']
    # Void exactly where the semantic label is 0; elsewhere the same class.
    np.testing.assert_array_equal(ids == 0, semantic == 0)
    np.testing.assert_array_equal(category, semantic)
    # Every thing instance is its own segment, and every thing segment one instance.
    thing_segments = {s['id'] for s in segments if is_thing[s['category_id']]}
    instance_ids = []
    for mask in scene.instance_masks:
      (segment_id,) = np.unique(ids[mask])
      np.testing.assert_array_equal(ids == segment_id, mask)
      instance_ids.append(int(segment_id))
    assert len(set(instance_ids)) == len(instance_ids)
    assert set(instance_ids) == thing_segments
