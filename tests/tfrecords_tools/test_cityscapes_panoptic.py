"""Cityscapes panoptic converter on files written by cityscapesScripts itself.

The test paints `*_gtFine_instanceIds.png` maps, runs cityscapesScripts'
`createPanopticImgs.convert2panoptic` to write the panoptic JSON + PNGs (the
real input format) and checks the TFRecords against the instance-id maps and
cityscapesScripts' label table.
"""

import contextlib
import io
import json
import os

import numpy as np
from PIL import Image
import pytest

from official_dataseg import common
from tests.tfrecords_tools import helpers
from tfrecords_tools import cityscapes_panoptic
from tfrecords_tools import tfrecord_writer

create_panoptic = pytest.importorskip(
    'cityscapesscripts.preparation.createPanopticImgs')
cityscapes_labels = pytest.importorskip('cityscapesscripts.helpers.labels')

_HEIGHT, _WIDTH = 12, 16


def _instance_ids_frankfurt():
  """Label ids (stuff), label id * 1000 + k (things), 26 = crowd car."""
  ids = np.full((_HEIGHT, _WIDTH), 7, np.int32)       # road.
  ids[:4] = 23                                       # sky.
  ids[4:8, 0:5] = 24 * 1000 + 0                      # person #0.
  ids[4:8, 5:9] = 24 * 1000 + 1                      # person #1.
  ids[8:11, 10:16] = 26                              # crowd of cars.
  ids[11, :3] = 4                                    # static: ignored in eval.
  ids[0, 15] = 0                                     # unlabeled.
  return ids


def _instance_ids_lindau():
  ids = np.full((_HEIGHT, _WIDTH), 11, np.int32)      # building.
  ids[6:, 2:7] = 33 * 1000 + 3                       # bicycle #3.
  return ids


def _write_dataset(root, use_train_id=False):
  """gtFine/val/<city>/*_instanceIds.png, images, and the panoptic files."""
  maps = {'frankfurt_000000_000294': _instance_ids_frankfurt(),
          'lindau_000001_000019': _instance_ids_lindau()}
  for image_id, ids in maps.items():
    city = image_id.split('_')[0]
    gt_dir = root / 'gtFine' / 'val' / city
    image_dir = root / 'leftImg8bit' / 'val' / city
    gt_dir.mkdir(parents=True, exist_ok=True)
    image_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(ids.astype(np.uint16)).save(
        gt_dir / f'{image_id}_gtFine_instanceIds.png')
    rgb = np.random.default_rng(len(image_id)).integers(
        0, 255, (_HEIGHT, _WIDTH, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(image_dir / f'{image_id}_leftImg8bit.png')
  with contextlib.redirect_stdout(io.StringIO()):
    create_panoptic.convert2panoptic(str(root / 'gtFine'), str(root / 'gtFine'),
                                     useTrainId=use_train_id,
                                     setNames=['val'])
  suffix = '_trainId' if use_train_id else ''
  return (str(root / 'leftImg8bit' / 'val'),
          str(root / 'gtFine' / f'cityscapes_panoptic_val{suffix}.json'), maps)


def _convert(tmp_path, images_dir, annotations, **kwargs):
  prefix = str(tmp_path / 'out' / 'cityscapes')
  report = cityscapes_panoptic.convert(images_dir, annotations, prefix,
                                       show_progress=False, **kwargs)
  return prefix, report


@pytest.mark.parametrize('use_train_id', [False, True])
def test_round_trip_against_instance_ids(tmp_path, use_train_id):
  images_dir, annotations, maps = _write_dataset(tmp_path, use_train_id)
  prefix, report = _convert(tmp_path, images_dir, annotations, strict=True)
  assert report['images_written'] == 2 and report['objects_dropped'] == 0
  examples = helpers.read_examples(prefix)
  # Sorted by image id: frankfurt before lindau.
  assert [e[common.TFRECORD_IMAGE_SOURCE_ID][0].decode() for e in examples] == (
      sorted(maps))
  id2label = cityscapes_labels.id2label
  for example, image_id in zip(examples, sorted(maps)):
    ids = maps[image_id]
    city = image_id.split('_')[0]
    image_file = os.path.join(images_dir, city, image_id + '_leftImg8bit.png')
    with open(image_file, 'rb') as f:
      assert example[common.TFRECORD_IMAGE_ENCODED][0] == f.read()
    assert example[common.TFRECORD_IMAGE_FILENAME][0].decode() == os.path.join(
        city, image_id + '_leftImg8bit.png')
    segment_map = helpers.segment_map(example)
    # Reference: every id whose label counts in evaluation is one segment.
    kept = [v for v in np.unique(ids)
            if not id2label[v if v < 1000 else v // 1000].ignoreInEval]
    labels_of = [id2label[v if v < 1000 else v // 1000] for v in kept]
    assert example[common.TFRECORD_OBJECT_CLASS] == [l.trainId for l in labels_of]
    assert example[common.TFRECORD_OBJECT_ORIGINAL_ID] == [l.id for l in labels_of]
    assert example[common.TFRECORD_OBJECT_IS_CROWD] == [
        int(v < 1000 and l.hasInstances) for v, l in zip(kept, labels_of)]
    expected_map = np.zeros_like(ids)
    for k, value in enumerate(kept):
      expected_map[ids == value] = k + 1
    np.testing.assert_array_equal(segment_map, expected_map)
    assert example[common.TFRECORD_OBJECT_AREA] == [
        float((ids == v).sum()) for v in kept]
    np.testing.assert_allclose(
        helpers.boxes(example),
        [helpers.reference_box(ids == v) / [_HEIGHT, _WIDTH, _HEIGHT, _WIDTH]
         for v in kept], atol=1e-6)
  vocabulary = helpers.read_json(prefix + '-vocabulary.json')['classes']
  assert [(c['id'], c['name']) for c in vocabulary] == sorted(
      [(l.id, l.name) for l in cityscapes_labels.labels if not l.ignoreInEval],
      key=lambda pair: cityscapes_labels.id2label[pair[0]].trainId)


def test_categories_not_from_cityscapes_are_an_error(tmp_path):
  images_dir, annotations, _ = _write_dataset(tmp_path)
  with open(annotations) as f:
    content = json.load(f)
  content['categories'][0]['name'] = 'street'  # id 7 is "road".
  with open(annotations, 'w') as f:
    json.dump(content, f)
  with pytest.raises(tfrecord_writer.ConversionError,
                     match=r"cityscapes_panoptic_val\.json: categories "
                     r"\[\(7, 'street'\)\]"):
    _convert(tmp_path, images_dir, annotations)


def test_missing_image_is_skipped(tmp_path, capsys):
  images_dir, annotations, _ = _write_dataset(tmp_path)
  os.remove(os.path.join(images_dir, 'lindau',
                         'lindau_000001_000019_leftImg8bit.png'))
  prefix = str(tmp_path / 'cli')
  # 1 of 2 images skipped: above the default --max_skip_fraction, allowed at 0.5.
  status = cityscapes_panoptic.main([
      '--images_dir', images_dir, '--annotations', annotations,
      '--output_prefix', prefix, '--quiet', '--max_skip_fraction', '0.5'])
  assert status == 0
  assert json.loads(capsys.readouterr().out)['images_skipped'] == 1
  report = helpers.read_json(prefix + '-report.json')
  assert report['images_skipped_by_reason'] == {'missing_image': 1}
  assert cityscapes_panoptic.main([
      '--images_dir', images_dir, '--annotations', annotations,
      '--output_prefix', prefix, '--quiet', '--strict', '--overwrite']) == 1
  assert 'lindau_000001_000019_leftImg8bit.png: image file not found' in (
      capsys.readouterr().err)
