"""Synthetic suite: determinism, real formats, and conversion by the real tools."""

import os

import numpy as np
from PIL import Image
from pycocotools import mask as mask_api
import pytest

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
  for dataset, splits in prefixes.items():
    for split, prefix in splits.items():
      report = helpers.read_json(prefix + '-report.json')
      assert report['images_written'] == (3 if split == 'train' else 2)
      vocabulary = helpers.read_json(prefix + '-vocabulary.json')['classes']
      expected = helpers.read_json(
          synthetic_suite.vocabulary_path(dataset))['classes']
      assert [(c['id'], c['name']) for c in vocabulary] == [
          (c['id'], c['name']) for c in expected]
  o365_val = helpers.read_examples(prefixes['o365']['val'])
  assert all(common.TFRECORD_OBJECT_MASK in e for e in o365_val)
  coco_train = helpers.read_examples(prefixes['coco']['train'])
  assert all(len(e[common.TFRECORD_OBJECT_CLASS]) >= 2 for e in coco_train)
