"""Annotation edge cases on hand-made files, against hand-computed masks, counts and names."""
import json
import os

import numpy as np
from PIL import Image
import pytest

from official_dataseg import common
from tests.tfrecords_tools import helpers
from tfrecords_tools import coco_panoptic
from tfrecords_tools import image_io
from tfrecords_tools import objects365
from tfrecords_tools import tfrecord_writer
from tfrecords_tools import vocabulary


def test_invalid_polygons_are_left_out_and_reported(tmp_path):
  (tmp_path / 'images').mkdir()
  Image.fromarray(np.zeros([10, 12, 3], np.uint8)).save(tmp_path / 'images' / 'a.png')
  rectangle = [2, 2, 8, 2, 8, 6, 2, 6]   # x in [2, 8), y in [2, 6).
  square = [0, 0, 3, 0, 3, 3, 0, 3]      # x, y in [0, 3).
  segmentations = [
      [[1, 1, 5, 1], rectangle],          # First polygon of 4 numbers (2 points).
      [rectangle + [5], square],          # Odd count of numbers.
      [[1, 2, 3], [1, 1, 2, 2]],          # No valid polygon: the object is dropped.
  ]
  annotations = [{'id': i, 'image_id': 1, 'category_id': 1, 'bbox': [0, 0, 8, 6],
                  'segmentation': s} for i, s in enumerate(segmentations)]
  path = tmp_path / 'instances.json'
  path.write_text(json.dumps({
      'images': [{'id': 1, 'file_name': 'a.png', 'height': 10, 'width': 12}],
      'annotations': annotations, 'categories': [{'id': 1, 'name': 'cat'}]}))
  prefix = str(tmp_path / 'out' / 'coco')
  report = objects365.convert(str(tmp_path / 'images'), str(path), prefix,
                              include_masks=True, show_progress=False)
  assert report['repairs_by_reason'] == {'invalid_polygon': 2}
  assert report['objects_dropped_by_reason'] == {'unreadable_segmentation': 1}
  assert 'annotations[2].segmentation cannot be decoded (no valid polygon' in (
      report['example_messages']['unreadable_segmentation'][0])
  masks = [helpers.decode_png(m) for m in
           helpers.read_examples(prefix)[0][common.TFRECORD_OBJECT_MASK]]
  expected_rectangle = np.zeros([10, 12], np.uint8)
  expected_rectangle[2:6, 2:8] = 1
  expected_square = np.zeros([10, 12], np.uint8)
  expected_square[0:3, 0:3] = 1
  np.testing.assert_array_equal(masks[0], expected_rectangle)
  np.testing.assert_array_equal(masks[1], expected_square)
  assert len(masks) == 2


def test_panoptic_image_without_annotation_entry_is_counted(tmp_path):
  for folder in ('images', 'panoptic'):
    (tmp_path / folder).mkdir()
  for name in ('a', 'b'):
    Image.fromarray(np.zeros([4, 6, 3], np.uint8)).save(tmp_path / 'images' / f'{name}.png')
  segment_rgb = np.zeros([4, 6, 3], np.uint8)
  segment_rgb[..., 0] = 5  # Every pixel is segment id 5.
  Image.fromarray(segment_rgb).save(tmp_path / 'panoptic' / 'a.png')
  path = tmp_path / 'panoptic.json'
  path.write_text(json.dumps({
      'images': [{'id': 1, 'file_name': 'a.png', 'height': 4, 'width': 6},
                 {'id': 2, 'file_name': 'b.png', 'height': 4, 'width': 6}],
      'annotations': [{'image_id': 1, 'file_name': 'a.png',
                       'segments_info': [{'id': 5, 'category_id': 1}]}],
      'categories': [{'id': 1, 'name': 'sky', 'isthing': 0}]}))

  def convert(**kwargs):
    return coco_panoptic.convert(str(tmp_path / 'images'), str(path),
                                 str(tmp_path / 'out' / 'coco'),
                                 panoptic_masks_dir=str(tmp_path / 'panoptic'),
                                 show_progress=False, **kwargs)

  with pytest.raises(tfrecord_writer.ConversionError,
                     match=r'skipped 1 of 2 images \(no_annotation_entry: 1\)'):
    convert()
  report = convert(max_skip_fraction=0.5)
  assert report['images_total'] == 2 and report['images_written'] == 1
  assert report['images_skipped_by_reason'] == {'no_annotation_entry': 1}
  assert 'images[id=2] (b.png) has no entry in "annotations"' in (
      report['example_messages']['no_annotation_entry'][0])


@pytest.mark.parametrize('values,expected', [
    # A dark image (maximum <= 255) is still 16-bit data: divided by 257, rounded.
    ([[0, 128, 129], [200, 255, 254]], [[0, 0, 1], [1, 1, 1]]),
    ([[65535, 32896, 257], [0, 514, 65278]], [[255, 128, 1], [0, 2, 254]]),
])
def test_16bit_images_use_a_fixed_scale(tmp_path, values, expected):
  path = tmp_path / 'gray16.png'
  Image.fromarray(np.array(values, np.uint16)).save(path)
  image = image_io.load_image(str(path))
  assert image.reencoded_from == 'PNG:I;16/16-bit'
  rgb = helpers.decode_png(image.encoded)
  np.testing.assert_array_equal(rgb, np.repeat(np.array(expected, np.uint8)[..., None], 3, -1))


def test_ade_object_info_synonyms_with_either_separator(tmp_path):
  path = tmp_path / 'objectInfo150.txt'
  # objectInfo150.txt separates synonyms with ', '; objectInfo150.csv-style cells with ';'.
  path.write_text('Idx\tRatio\tTrain\tVal\tName\n'
                  '2\t0.1\t1\t1\tbuilding, edifice\n'
                  '1\t0.1\t1\t1\twall\n'
                  '4\t0.1\t1\t1\tfloor;flooring\n'
                  '3\t0.1\t1\t1\tpool table, billiard table, snooker table\n')
  entries = vocabulary.load_ade_object_info(str(path))
  assert [(e['index'], e['id'], e['name'], e['display_name'], e['synonyms'])
          for e in entries] == [
              (0, 1, 'wall', 'wall', []),
              (1, 2, 'building, edifice', 'building', ['edifice']),
              (2, 3, 'pool table, billiard table, snooker table', 'pool table',
               ['billiard table', 'snooker table']),
              (3, 4, 'floor, flooring', 'floor', ['flooring'])]
