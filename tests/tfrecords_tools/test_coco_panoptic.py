"""COCO panoptic converter: round trip on the real 2-image COCO sample."""

import json
import os
import shutil

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg import common
from tests.tfrecords_tools import helpers
from tfrecords_tools import coco_panoptic
from tfrecords_tools import tfrecord_writer

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
SAMPLE_DIR = os.path.join(_REPO_ROOT, '..', 'shared', 'data',
                          'coco_panoptic_sample')
pytestmark = pytest.mark.skipif(
    not os.path.isdir(SAMPLE_DIR),
    reason=f'real COCO panoptic sample not found at {SAMPLE_DIR}')


def _rgb_to_id(path):
  rgb = np.asarray(Image.open(path).convert('RGB')).astype(np.int64)
  return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def _convert(tmp_path, annotations, masks_dir=None, images_dir=None,
             **kwargs):
  prefix = str(tmp_path / 'out' / 'coco')
  report = coco_panoptic.convert(
      images_dir or os.path.join(SAMPLE_DIR, 'input_images'), annotations,
      prefix, panoptic_masks_dir=masks_dir or os.path.join(
          SAMPLE_DIR, 'panoptic_examples'), show_progress=False, **kwargs)
  return prefix, report


def _modified_sample(tmp_path, edit):
  """Writes a copy of the sample JSON changed by `edit(content)`."""
  content = helpers.read_json(os.path.join(SAMPLE_DIR, 'panoptic_examples.json'))
  edit(content)
  path = tmp_path / 'panoptic.json'
  path.write_text(json.dumps(content))
  return str(path)


def test_real_sample_round_trip(tmp_path):
  annotations = os.path.join(SAMPLE_DIR, 'panoptic_examples.json')
  prefix, report = _convert(tmp_path, annotations, num_shards=2)
  content = helpers.read_json(annotations)
  category_ids = sorted(c['id'] for c in content['categories'])
  examples = helpers.read_examples(prefix)
  assert report['images_written'] == 2 and report['images_skipped'] == 0
  assert len(examples) == 2
  by_source = {e[common.TFRECORD_IMAGE_SOURCE_ID][0].decode(): e
               for e in examples}
  for image, annotation in zip(content['images'], content['annotations']):
    example = by_source[str(image['id'])]
    with open(os.path.join(SAMPLE_DIR, 'input_images', image['file_name']),
              'rb') as f:
      assert example[common.TFRECORD_IMAGE_ENCODED][0] == f.read()
    assert example[common.TFRECORD_IMAGE_FORMAT] == [b'jpeg']
    assert example[common.TFRECORD_IMAGE_HEIGHT] == [image['height']]
    assert example[common.TFRECORD_IMAGE_WIDTH] == [image['width']]
    ids = _rgb_to_id(os.path.join(SAMPLE_DIR, 'panoptic_examples',
                                  annotation['file_name']))
    segment_map = helpers.segment_map(example)
    assert segment_map.dtype == np.uint8
    segments = annotation['segments_info']
    assert len(example[common.TFRECORD_OBJECT_CLASS]) == len(segments)
    box_array = helpers.boxes(example)
    for k, segment in enumerate(segments):
      np.testing.assert_array_equal(segment_map == k + 1, ids == segment['id'])
      assert example[common.TFRECORD_OBJECT_CLASS][k] == category_ids.index(
          segment['category_id'])
      assert example[common.TFRECORD_OBJECT_ORIGINAL_ID][k] == (
          segment['category_id'])
      assert example[common.TFRECORD_OBJECT_IS_CROWD][k] == segment['iscrowd']
      assert example[common.TFRECORD_OBJECT_AREA][k] == segment['area']
      x, y, w, h = segment['bbox']
      np.testing.assert_allclose(
          box_array[k], [y / image['height'], x / image['width'],
                         (y + h) / image['height'], (x + w) / image['width']],
          atol=1e-6)
    assert np.array_equal(segment_map == 0, ids == 0)
  vocabulary = helpers.read_json(prefix + '-vocabulary.json')['classes']
  assert len(vocabulary) == 133
  assert sum(c['is_thing'] for c in vocabulary) == 80
  frequency = helpers.read_json(prefix + '-category_frequency.json')
  person = frequency['classes'][0]
  assert (person['name'], person['image_count'], frequency['num_images']) == (
      'person', 2, 2)


def test_tf_decodes_segment_map(tmp_path):
  prefix, _ = _convert(tmp_path, os.path.join(SAMPLE_DIR,
                                              'panoptic_examples.json'))
  example = helpers.read_examples(prefix)[0]
  decoded = tf.io.decode_png(example[common.TFRECORD_SEGMENTATION_ENCODED][0])
  np.testing.assert_array_equal(decoded.numpy()[..., 0],
                                helpers.segment_map(example))


def test_json_segment_absent_from_png_and_unknown_category(tmp_path):
  def edit(content):
    segments = content['annotations'][0]['segments_info']
    segments.append({'id': 12345, 'category_id': 1, 'iscrowd': 0,
                     'bbox': [0, 0, 1, 1], 'area': 1})
    segments[0]['category_id'] = 9999
  annotations = _modified_sample(tmp_path, edit)
  prefix, report = _convert(tmp_path, annotations)
  assert report['objects_dropped_by_reason'] == {
      'segment_absent_from_png': 1, 'unknown_category_id': 1}
  content = helpers.read_json(annotations)
  first = content['annotations'][0]
  example = [e for e in helpers.read_examples(prefix) if
             e[common.TFRECORD_IMAGE_SOURCE_ID][0] == str(first['image_id']).encode()][0]
  ids = _rgb_to_id(os.path.join(SAMPLE_DIR, 'panoptic_examples',
                                first['file_name']))
  segment_map = helpers.segment_map(example)
  # The unknown-category segment became void; the others shifted down by one.
  assert np.all(segment_map[ids == first['segments_info'][0]['id']] == 0)
  np.testing.assert_array_equal(segment_map == 1,
                                ids == first['segments_info'][1]['id'])
  with pytest.raises(tfrecord_writer.ConversionError, match='9999'):
    _convert(tmp_path, annotations, strict=True, overwrite=True)
  assert not os.listdir(tmp_path / 'out') or all(
      not f.endswith('.tmp') for f in os.listdir(tmp_path / 'out'))


def test_png_segment_absent_from_json(tmp_path):
  removed = {}
  def edit(content):
    removed['segment'] = content['annotations'][1]['segments_info'].pop(0)
  prefix, report = _convert(tmp_path, _modified_sample(tmp_path, edit))
  assert report['repairs_by_reason'] == {'png_segment_not_in_json': 1}
  example = helpers.read_examples(prefix)[1]
  content = helpers.read_json(os.path.join(SAMPLE_DIR, 'panoptic_examples.json'))
  ids = _rgb_to_id(os.path.join(SAMPLE_DIR, 'panoptic_examples',
                                content['annotations'][1]['file_name']))
  assert np.all(helpers.segment_map(example)[ids == removed['segment']['id']]
                == 0)


@pytest.mark.parametrize('edit, message', [
    (lambda c: c['annotations'][0]['segments_info'][0].pop('category_id'),
     'segments_info\\[0\\] has no required field "category_id"'),
    (lambda c: c['images'].append(dict(c['images'][0])),
     'image id 142238 is duplicated'),
    (lambda c: c.pop('categories'), 'missing required list "categories"'),
    (lambda c: c.update(annotations=[]), '"annotations" is empty'),
])
def test_bad_json_is_a_clear_error(tmp_path, edit, message):
  annotations = _modified_sample(tmp_path, edit)
  with pytest.raises(tfrecord_writer.ConversionError, match=message):
    _convert(tmp_path, annotations)


def test_missing_and_truncated_images_are_skipped(tmp_path):
  images_dir = tmp_path / 'images'
  images_dir.mkdir()
  content = helpers.read_json(os.path.join(SAMPLE_DIR, 'panoptic_examples.json'))
  first = content['images'][0]['file_name']
  with open(os.path.join(SAMPLE_DIR, 'input_images', first), 'rb') as f:
    (images_dir / first).write_bytes(f.read()[:5000])  # Truncated JPEG.
  # Every image skipped: never a set of empty shards that looks complete.
  with pytest.raises(tfrecord_writer.ConversionError,
                     match=r'skipped 2 of 2 images \(unreadable_image: 1, '
                     r'missing_image: 1\): no image was written'):
    _convert(tmp_path, os.path.join(SAMPLE_DIR, 'panoptic_examples.json'),
             images_dir=str(images_dir))
  assert os.listdir(tmp_path / 'out') == []
  with pytest.raises(tfrecord_writer.ConversionError, match=first):
    _convert(tmp_path, os.path.join(SAMPLE_DIR, 'panoptic_examples.json'),
             images_dir=str(images_dir), strict=True)


def test_command_line(tmp_path, capsys):
  prefix = str(tmp_path / 'cli')
  status = coco_panoptic.main([
      '--images_dir', os.path.join(SAMPLE_DIR, 'input_images'),
      '--annotations', os.path.join(SAMPLE_DIR, 'panoptic_examples.json'),
      '--output_prefix', prefix, '--num_shards', '3', '--quiet'])
  assert status == 0
  assert json.loads(capsys.readouterr().out)['images_written'] == 2
  assert sorted(os.listdir(tmp_path)) == sorted(
      [f'cli-0000{i}-of-00003.tfrecord' for i in range(3)]
      + ['cli-vocabulary.json', 'cli-category_frequency.json',
         'cli-report.json', 'cli-manifest.json'])


def test_coco_semantic_merges_segments_by_class(tmp_path):
  from tfrecords_tools import coco_semantic  # pylint: disable=g-import-not-at-top
  annotations = os.path.join(SAMPLE_DIR, 'panoptic_examples.json')
  prefix = str(tmp_path / 'semantic')
  coco_semantic.convert(os.path.join(SAMPLE_DIR, 'input_images'), annotations,
                        prefix, show_progress=False)
  content = helpers.read_json(annotations)
  example = helpers.read_examples(prefix)[0]
  annotation = content['annotations'][0]
  ids = _rgb_to_id(os.path.join(SAMPLE_DIR, 'panoptic_examples',
                                annotation['file_name']))
  category_of = {s['id']: s['category_id'] for s in annotation['segments_info']}
  categories = np.vectorize(lambda i: category_of.get(i, 0))(ids)
  present = sorted(set(category_of.values()))
  assert example[common.TFRECORD_OBJECT_ORIGINAL_ID] == present
  segment_map = helpers.segment_map(example)
  for k, category_id in enumerate(present):
    np.testing.assert_array_equal(segment_map == k + 1,
                                  categories == category_id)


def test_coco_instance_masks_match_pycocotools(tmp_path):
  from pycocotools import coco as coco_api  # pylint: disable=g-import-not-at-top
  from tfrecords_tools import coco_instance  # pylint: disable=g-import-not-at-top
  annotations = os.path.join(SAMPLE_DIR, 'panoptic_coco_detection_format.json')
  prefix = str(tmp_path / 'instance')
  report = coco_instance.convert(os.path.join(SAMPLE_DIR, 'input_images'),
                                 annotations, prefix, show_progress=False)
  assert report['objects_dropped'] == 0
  reference = coco_api.COCO(annotations)
  for example in helpers.read_examples(prefix):
    image_id = int(example[common.TFRECORD_IMAGE_SOURCE_ID][0])
    expected = reference.loadAnns(reference.getAnnIds(imgIds=[image_id]))
    masks = example[common.TFRECORD_OBJECT_MASK]
    assert len(masks) == len(expected)
    for encoded, annotation in zip(masks, expected):
      np.testing.assert_array_equal(helpers.decode_png(encoded),
                                    reference.annToMask(annotation))
    assert example[common.TFRECORD_OBJECT_IS_CROWD] == [
        a['iscrowd'] for a in expected]


def test_detection_json_of_sample_converts_as_objects365_boxes(tmp_path):
  from tfrecords_tools import objects365  # pylint: disable=g-import-not-at-top
  annotations = os.path.join(SAMPLE_DIR, 'panoptic_coco_detection_format.json')
  prefix = str(tmp_path / 'boxes')
  objects365.convert(os.path.join(SAMPLE_DIR, 'input_images'), annotations, prefix,
                     show_progress=False)
  content = helpers.read_json(annotations)
  index_of = {c['id']: i for i, c in enumerate(sorted(content['categories'],
                                                      key=lambda c: c['id']))}
  sizes = {i['id']: (i['height'], i['width']) for i in content['images']}
  examples = helpers.read_examples(prefix)
  assert len(examples) == 2
  for example in examples:
    image_id = int(example[common.TFRECORD_IMAGE_SOURCE_ID][0])
    expected = [a for a in content['annotations'] if a['image_id'] == image_id]
    assert common.TFRECORD_OBJECT_MASK not in example  # Segmentations dropped.
    assert common.TFRECORD_SEGMENTATION_ENCODED not in example
    assert example[common.TFRECORD_OBJECT_CLASS] == [index_of[a['category_id']]
                                                     for a in expected]
    height, width = sizes[image_id]
    boxes = np.array([[a['bbox'][1] / height, a['bbox'][0] / width,
                       (a['bbox'][1] + a['bbox'][3]) / height,
                       (a['bbox'][0] + a['bbox'][2]) / width] for a in expected])
    np.testing.assert_allclose(helpers.boxes(example), np.clip(boxes, 0, 1), atol=1e-6)
