"""Objects365 / COCO-detection converter on a hand-made JSON."""

import json

import numpy as np
from PIL import Image
from pycocotools import mask as mask_api
import pytest

from official_dataseg import common
from tests.tfrecords_tools import helpers
from tfrecords_tools import objects365
from tfrecords_tools import tfrecord_writer

_H, _W = 20, 30


def _polygon_mask(polygon):
  rle = mask_api.merge(mask_api.frPyObjects([polygon], _H, _W))
  return mask_api.decode(rle)


def _dataset(tmp_path):
  """Two images in the O365 v2 path layout; annotations with known faults."""
  (tmp_path / 'val' / 'patch0').mkdir(parents=True)
  for image_id in (1, 2):
    Image.new('RGB', (_W, _H), (9, 9, 9)).save(
        tmp_path / 'val' / 'patch0' / f'o365_{image_id}.jpg')
  rle_mask = np.zeros((_H, _W), np.uint8)
  rle_mask[2:6, 3:9] = 1
  rle = mask_api.encode(np.asfortranarray(rle_mask))
  polygon = [10.0, 10.0, 20.0, 10.0, 20.0, 18.0, 10.0, 18.0]
  annotations = [
      {'image_id': 1, 'category_id': 5, 'bbox': [3, 2, 6, 4], 'area': 24,
       'segmentation': {'size': [_H, _W], 'counts': rle['counts'].decode()}},
      {'image_id': 1, 'category_id': 7, 'bbox': [10, 10, 10, 8],
       'iscrowd': 1, 'segmentation': [polygon]},
      {'image_id': 1, 'category_id': 5, 'bbox': [25, 15, 10, 10],
       'skipped': True},                                  # clipped, ignored
      {'image_id': 1, 'category_id': 5, 'bbox': [5, 5, 0, 3]},  # w = 0
      {'image_id': 1, 'category_id': 5, 'bbox': [40, 5, 3, 3]},  # outside
      {'image_id': 2, 'category_id': 99, 'bbox': [1, 1, 2, 2]},  # unknown
  ]
  content = {
      'images': [{'id': i, 'file_name': f'images/v2/patch0/o365_{i}.jpg',
                  'height': _H, 'width': _W} for i in (2, 1)],
      'annotations': annotations,
      'categories': [{'id': 7, 'name': 'Car'}, {'id': 5, 'name': 'Person'}]}
  path = tmp_path / 'zhiyuan_objv2_val.json'
  path.write_text(json.dumps(content))
  return str(tmp_path / 'val'), str(path), rle_mask, _polygon_mask(polygon)


def test_boxes_masks_and_documented_drops(tmp_path):
  images_dir, annotations, rle_mask, polygon_mask = _dataset(tmp_path)
  prefix = str(tmp_path / 'out' / 'o365')
  report = objects365.convert(images_dir, annotations, prefix,
                              include_masks=True, show_progress=False)
  assert report['objects_dropped_by_reason'] == {
      'non_positive_box': 1, 'box_outside_image': 1, 'unknown_category_id': 1}
  assert report['repairs_by_reason'] == {'box_clipped': 1}
  first, second = helpers.read_examples(prefix)  # Sorted by image id.
  assert first[common.TFRECORD_IMAGE_SOURCE_ID] == [b'1']
  assert second[common.TFRECORD_OBJECT_CLASS] == []
  # Vocabulary sorted by id: Person (5) -> 0, Car (7) -> 1.
  assert first[common.TFRECORD_OBJECT_CLASS] == [0, 1, 0]
  assert first[common.TFRECORD_OBJECT_ORIGINAL_ID] == [5, 7, 5]
  assert first[common.TFRECORD_OBJECT_IS_CROWD] == [0, 1, 0]
  assert first[common.TFRECORD_OBJECT_IS_IGNORED] == [0, 0, 1]
  np.testing.assert_allclose(helpers.boxes(first), [
      [2 / _H, 3 / _W, 6 / _H, 9 / _W],
      [10 / _H, 10 / _W, 18 / _H, 20 / _W],
      [15 / _H, 25 / _W, 1.0, 1.0]], atol=1e-6)
  np.testing.assert_allclose(first[common.TFRECORD_OBJECT_AREA],
                             [24, 80, 25])
  masks = [helpers.decode_png(m) for m in first[common.TFRECORD_OBJECT_MASK]]
  np.testing.assert_array_equal(masks[0], rle_mask)
  np.testing.assert_array_equal(masks[1], polygon_mask)
  assert masks[2].shape == (_H, _W) and not masks[2].any()
  assert common.TFRECORD_SEGMENTATION_ENCODED not in first


def test_box_only_by_default(tmp_path):
  images_dir, annotations, _, _ = _dataset(tmp_path)
  prefix = str(tmp_path / 'boxes')
  objects365.convert(images_dir, annotations, prefix, show_progress=False)
  first = helpers.read_examples(prefix)[0]
  assert common.TFRECORD_OBJECT_MASK not in first
  assert common.TFRECORD_OBJECT_IS_IGNORED not in first
  assert len(first[common.TFRECORD_OBJECT_CLASS]) == 3


@pytest.mark.parametrize('edit, message', [
    (lambda c: c['annotations'][0].pop('bbox'),
     r'annotations\[0\] has no required field "bbox"'),
    (lambda c: c['images'].append(dict(c['images'][0])),
     'image id 2 is duplicated'),
    (lambda c: c['annotations'][0].update(image_id=77),
     r'annotations\[0\].image_id 77 is not in "images"'),
    (lambda c: c.update(annotations=[]), '"annotations" is empty'),
    (lambda c: c['categories'][0].pop('name'),
     r'categories\[0\] has no "name"'),
])
def test_bad_json_is_a_clear_error(tmp_path, edit, message):
  images_dir, annotations, _, _ = _dataset(tmp_path)
  content = helpers.read_json(annotations)
  edit(content)
  with open(annotations, 'w') as f:
    json.dump(content, f)
  with pytest.raises(tfrecord_writer.ConversionError,
                     match='zhiyuan_objv2_val.json: ' + message):
    objects365.convert(images_dir, annotations, str(tmp_path / 'x'),
                       show_progress=False)


def test_strict_turns_drops_into_errors(tmp_path):
  images_dir, annotations, _, _ = _dataset(tmp_path)
  with pytest.raises(tfrecord_writer.ConversionError, match='clipped'):
    objects365.convert(images_dir, annotations, str(tmp_path / 'x'),
                       strict=True, show_progress=False)
