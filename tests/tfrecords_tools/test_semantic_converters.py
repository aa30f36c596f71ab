"""ADE20K and VOC converters on hand-made files in their real layouts."""

import io
import os

import numpy as np
from PIL import Image
import pytest

from official_dataseg import common
from tests.tfrecords_tools import helpers
from tfrecords_tools import ade20k
from tfrecords_tools import semantic_labels
from tfrecords_tools import tfrecord_writer
from tfrecords_tools import voc


def _ade_layout(tmp_path, labels_by_name):
  """ADEChallengeData2016 with a 3-class objectInfo150.txt (ids 1..3)."""
  root = tmp_path / 'ADEChallengeData2016'
  (root / 'images' / 'validation').mkdir(parents=True)
  (root / 'annotations' / 'validation').mkdir(parents=True)
  (root / 'objectInfo150.txt').write_text(
      'Idx\tRatio\tTrain\tVal\tName\n1\t0.1\t1\t1\twall\n'
      '2\t0.1\t1\t1\tbuilding;edifice\n3\t0.1\t1\t1\tsky\n')
  for name, labels in labels_by_name.items():
    Image.fromarray(labels.astype(np.uint8)).save(
        root / 'annotations' / 'validation' / f'{name}.png')
    Image.fromarray(np.full(labels.shape + (3,), 128, np.uint8)).save(
        root / 'images' / 'validation' / f'{name}.jpg')
  return (str(root / 'images' / 'validation'),
          str(root / 'annotations' / 'validation'))


def _convert_ade(tmp_path, images_dir, labels_dir, **kwargs):
  prefix = str(tmp_path / 'out' / 'ade')
  return prefix, ade20k.convert(images_dir, labels_dir, prefix,
                                show_progress=False, **kwargs)


def test_ade_segment_map_against_numpy(tmp_path):
  labels = np.zeros((6, 8), np.int32)
  labels[:2] = 3   # sky
  labels[2:, :3] = 1  # wall
  labels[4:, 5:] = 0  # ignore
  images_dir, labels_dir = _ade_layout(tmp_path, {'ADE_val_00000001': labels})
  prefix, report = _convert_ade(tmp_path, images_dir, labels_dir)
  assert report['images_written'] == 1 and report['repairs_by_reason'] == {}
  example = helpers.read_examples(prefix)[0]
  # Present classes in vocabulary order: wall (index 0) then sky (index 2).
  assert example[common.TFRECORD_OBJECT_CLASS] == [0, 2]
  assert example[common.TFRECORD_OBJECT_ORIGINAL_ID] == [1, 3]
  expected = np.select([labels == 1, labels == 3], [1, 2], 0)
  np.testing.assert_array_equal(helpers.segment_map(example), expected)
  assert example[common.TFRECORD_OBJECT_AREA] == [12.0, 16.0]
  np.testing.assert_allclose(helpers.boxes(example),
                             [[2 / 6, 0, 1, 3 / 8], [0, 0, 2 / 6, 1]])
  vocabulary = helpers.read_json(prefix + '-vocabulary.json')['classes']
  assert [(c['name'], c['display_name'], c['synonyms']) for c in vocabulary] == [
      ('wall', 'wall', []), ('building, edifice', 'building', ['edifice']),
      ('sky', 'sky', [])]


def test_ade_label_above_class_count(tmp_path):
  labels = np.full((4, 4), 2, np.int32)
  labels[0, 0] = 151
  images_dir, labels_dir = _ade_layout(tmp_path, {'a': labels})
  prefix, report = _convert_ade(tmp_path, images_dir, labels_dir)
  assert report['repairs_by_reason'] == {'unknown_label_value': 1}
  segment_map = helpers.segment_map(helpers.read_examples(prefix)[0])
  assert segment_map[0, 0] == 0 and np.all(segment_map.ravel()[1:] == 1)
  with pytest.raises(tfrecord_writer.ConversionError,
                     match=r'a\.png: label values \[151\]'):
    _convert_ade(tmp_path, images_dir, labels_dir, strict=True, overwrite=True)


def _image_bytes(pil_image, image_format):
  buffer = io.BytesIO()
  pil_image.save(buffer, format=image_format)
  return buffer.getvalue()


def test_non_rgb_images_are_converted_and_bad_ones_skipped(tmp_path):
  labels = np.ones((4, 5), np.int32)
  names = ['gray', 'cmyk', 'sixteen', 'rgba', 'truncated', 'missing', 'nolabel']
  images_dir, labels_dir = _ade_layout(
      tmp_path, {n: labels for n in names if n != 'nolabel'})
  gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
  files = {
      'gray': _image_bytes(Image.fromarray(gray), 'JPEG'),
      'cmyk': _image_bytes(Image.new('CMYK', (5, 4), (0, 255, 0, 0)), 'JPEG'),
      'sixteen': _image_bytes(Image.fromarray(
          (gray.astype(np.uint16) * 257)), 'PNG'),
      'rgba': _image_bytes(Image.new('RGBA', (5, 4), (10, 20, 30, 40)), 'PNG'),
      'truncated': _image_bytes(Image.fromarray(
          np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)),
                                'JPEG')[:300],
      'nolabel': _image_bytes(Image.new('RGB', (5, 4)), 'JPEG'),
  }
  for name, data in files.items():
    with open(os.path.join(images_dir, name + '.jpg'), 'wb') as f:
      f.write(data)
  os.remove(os.path.join(images_dir, 'missing.jpg'))
  prefix, report = _convert_ade(tmp_path, images_dir, labels_dir,
                                max_skip_fraction=0.5)
  assert report['images_skipped_by_reason'] == {
      'unreadable_image': 1, 'missing_label_png': 1}
  assert report['notes'] == {'images_reencoded': 4}
  examples = {e[common.TFRECORD_IMAGE_SOURCE_ID][0].decode(): e
              for e in helpers.read_examples(prefix)}
  assert sorted(examples) == ['cmyk', 'gray', 'rgba', 'sixteen']
  decoded = {n: helpers.decode_png(e[common.TFRECORD_IMAGE_ENCODED][0])
             for n, e in examples.items()}
  for name in examples:
    assert examples[name][common.TFRECORD_IMAGE_FORMAT] == [b'png']
    assert decoded[name].shape == (4, 5, 3) and decoded[name].dtype == np.uint8
  np.testing.assert_array_equal(decoded['sixteen'][..., 1], gray)
  np.testing.assert_array_equal(decoded['rgba'][0, 0], [10, 20, 30])
  # JPEG is lossy: the grey ramp and CMYK green survive approximately.
  assert np.abs(decoded['gray'][..., 0].astype(int) - gray).max() <= 8
  assert decoded['cmyk'][0, 0, 1] < 60 and decoded['cmyk'][0, 0, 0] > 200


def test_missing_objectinfo_is_a_clear_error(tmp_path):
  images_dir, labels_dir = _ade_layout(tmp_path, {'a': np.ones((2, 2))})
  os.remove(tmp_path / 'ADEChallengeData2016' / 'objectInfo150.txt')
  with pytest.raises(tfrecord_writer.ConversionError,
                     match='objectInfo150.txt: ADE class table not found'):
    _convert_ade(tmp_path, images_dir, labels_dir)


def test_voc_palette_background_and_border(tmp_path):
  root = tmp_path / 'VOC2012'
  for folder in ('JPEGImages', 'SegmentationClass',
                 'ImageSets/Segmentation'):
    (root / folder).mkdir(parents=True)
  labels = np.zeros((5, 6), np.uint8)
  labels[1:4, 1:4] = 255
  labels[2, 2] = 15  # person
  labels[4, 5] = 21  # above the 21 classes (0..20)
  png = Image.fromarray(labels)
  png.putpalette([v for i in range(256) for v in (i, 255 - i, 7)])
  png.save(root / 'SegmentationClass' / '2007_000001.png')
  Image.new('RGB', (6, 5)).save(root / 'JPEGImages' / '2007_000001.jpg')
  (root / 'ImageSets/Segmentation/val.txt').write_text('2007_000001\n')
  prefix = str(tmp_path / 'voc')
  report = voc.convert(str(root / 'JPEGImages'),
                       str(root / 'SegmentationClass'), prefix,
                       show_progress=False)
  assert report['repairs_by_reason'] == {'unknown_label_value': 1}
  example = helpers.read_examples(prefix)[0]
  assert example[common.TFRECORD_OBJECT_CLASS] == [0, 15]
  expected = np.where(labels == 0, 1, np.where(labels == 15, 2, 0))
  np.testing.assert_array_equal(helpers.segment_map(example), expected)
  assert example[common.TFRECORD_OBJECT_AREA] == [float((labels == 0).sum()),
                                                  1.0]
  vocabulary = helpers.read_json(prefix + '-vocabulary.json')['classes']
  assert len(vocabulary) == 21 and vocabulary[15]['name'] == 'person'


def test_voc_duplicated_image_set_entry(tmp_path):
  (tmp_path / 'val.txt').write_text('a\nb\na\n')
  with pytest.raises(tfrecord_writer.ConversionError,
                     match=r"val.txt: image names \['a'\]"):
    semantic_labels.read_image_set(str(tmp_path / 'val.txt'))
