"""PASCAL Context 59 / 459 converter on label files in the prepared formats."""

import json

import numpy as np
from PIL import Image
import pytest

from official_dataseg import common
from tests.tfrecords_tools import helpers
from tfrecords_tools import pascal_context
from tfrecords_tools import tfrecord_writer

# Full-list (459-class) ids of background (0) and the 59 classes, as listed
# in mmsegmentation's / PyTorch-Encoding's PASCAL Context preparation: a
# 59-class label value v is the v-th id of this list in sorted order.
_CONTEXT59_FULL_IDS = [
    0, 2, 259, 260, 415, 324, 9, 258, 144, 18, 19, 22, 23, 397, 25, 284, 158,
    159, 416, 33, 162, 420, 454, 295, 296, 427, 44, 45, 46, 308, 59, 440, 445,
    31, 232, 65, 354, 424, 68, 326, 72, 458, 34, 207, 80, 355, 85, 347, 220,
    349, 360, 98, 187, 104, 105, 366, 189, 368, 113, 115]


def _write(tmp_path, labels_by_name, extension='.png', dtype=np.uint8):
  images_dir = tmp_path / 'JPEGImages'
  labels_dir = tmp_path / 'labels'
  images_dir.mkdir(exist_ok=True)
  labels_dir.mkdir(exist_ok=True)
  for name, labels in labels_by_name.items():
    Image.fromarray(labels.astype(dtype)).save(labels_dir / (name + extension))
    Image.fromarray(np.full(labels.shape + (3,), 90, np.uint8)).save(
        images_dir / (name + '.jpg'))
  return str(images_dir), str(labels_dir)


def _convert(tmp_path, images_dir, labels_dir, **kwargs):
  prefix = str(tmp_path / 'out' / 'context')
  return prefix, pascal_context.convert(images_dir, labels_dir, prefix,
                                        show_progress=False, **kwargs)


def _check(example, labels, value_to_index, ignore):
  """Segment map and classes against a NumPy reference of the label image."""
  present = sorted({int(v) for v in np.unique(labels)} - {ignore},
                   key=value_to_index)
  assert example[common.TFRECORD_OBJECT_CLASS] == [value_to_index(v)
                                                   for v in present]
  expected = np.zeros(labels.shape, np.int64)
  for k, value in enumerate(present):
    expected[labels == value] = k + 1
  np.testing.assert_array_equal(helpers.segment_map(example), expected)
  assert example[common.TFRECORD_OBJECT_AREA] == [
      float((labels == v).sum()) for v in present]
  return present


def test_context59_mmseg_labels_map_to_vocabulary(tmp_path):
  labels = np.zeros((6, 7), np.int64)       # 0 = background, ignored.
  labels[:2] = 47                           # sky in mmseg's 0..59 labels.
  labels[3:, :3] = 1
  labels[3:, 4:] = 59
  images_dir, labels_dir = _write(tmp_path, {'2008_000002': labels})
  prefix, report = _convert(tmp_path, images_dir, labels_dir, strict=True)
  assert report['images_written'] == 1
  example = helpers.read_examples(prefix)[0]
  present = _check(example, labels, lambda v: v - 1, ignore=0)
  assert example[common.TFRECORD_OBJECT_ORIGINAL_ID] == present
  # The class of label value v is the v-th full-list id of mmseg's mapping.
  vocabulary = helpers.read_json(prefix + '-vocabulary.json')['classes']
  full = helpers.read_json(pascal_context.os.path.join(
      pascal_context.text_vocabulary.VOCABULARY_DIR,
      'pascal_context_459.json'))['classes']
  full_names = {c['id']: c['name'] for c in full}
  sorted_full_ids = sorted(_CONTEXT59_FULL_IDS)
  for index in example[common.TFRECORD_OBJECT_CLASS]:
    assert vocabulary[index]['name'] == full_names[sorted_full_ids[index + 1]]
  assert [vocabulary[i]['name'] for i in example[
      common.TFRECORD_OBJECT_CLASS]] == ['aeroplane', 'sky', 'wood']


def test_context459_detectron2_tiff(tmp_path):
  labels = np.full((5, 6), 65535, np.int64)  # ignore.
  labels[:2] = 0                             # accordion (id 1).
  labels[2:, 3:] = 458                       # wool (id 459).
  labels[4, 0] = 300
  images_dir, labels_dir = _write(tmp_path, {'2008_000123': labels},
                                  extension='.tif', dtype=np.uint16)
  prefix, report = _convert(tmp_path, images_dir, labels_dir, num_classes=459,
                            strict=True)
  assert report['images_written'] == 1
  example = helpers.read_examples(prefix)[0]
  present = _check(example, labels, lambda v: v, ignore=65535)
  assert example[common.TFRECORD_OBJECT_ORIGINAL_ID] == [v + 1
                                                         for v in present]
  vocabulary = helpers.read_json(prefix + '-vocabulary.json')['classes']
  assert len(vocabulary) == 459
  classes = [vocabulary[i] for i in example[common.TFRECORD_OBJECT_CLASS]]
  assert [c['id'] for c in classes] == [1, 301, 459]
  assert (classes[0]['name'], classes[-1]['name']) == ('accordion', 'wool')


@pytest.mark.parametrize('num_classes,label_format,ignore,offset,dtype', [
    (59, 'zero_based', 255, 1, np.uint8),
    (459, 'one_based', 0, 0, np.uint16),
])
def test_other_conventions(tmp_path, num_classes, label_format, ignore,
                           offset, dtype):
  labels = np.full((4, 4), ignore, np.int64)
  labels[1:3, 1:3] = 5
  labels[3] = 20
  images_dir, labels_dir = _write(tmp_path, {'a': labels}, dtype=dtype)
  prefix, _ = _convert(tmp_path, images_dir, labels_dir,
                       num_classes=num_classes, label_format=label_format,
                       strict=True)
  example = helpers.read_examples(prefix)[0]
  present = _check(example, labels, lambda v: v + offset - 1, ignore=ignore)
  assert example[common.TFRECORD_OBJECT_ORIGINAL_ID] == [v + offset
                                                         for v in present]


def test_label_above_class_count_is_voided(tmp_path):
  labels = np.full((4, 4), 3, np.int64)
  labels[0, :2] = 60
  images_dir, labels_dir = _write(tmp_path, {'a': labels})
  prefix, report = _convert(tmp_path, images_dir, labels_dir)
  assert report['repairs_by_reason'] == {'unknown_label_value': 1}
  segment_map = helpers.segment_map(helpers.read_examples(prefix)[0])
  np.testing.assert_array_equal(segment_map, np.where(labels == 60, 0, 1))
  with pytest.raises(tfrecord_writer.ConversionError,
                     match=r'a\.png: label values \[60\]'):
    _convert(tmp_path, images_dir, labels_dir, strict=True, overwrite=True)


def test_image_set_with_missing_files(tmp_path, capsys):
  images_dir, labels_dir = _write(tmp_path, {'a': np.ones((3, 3)),
                                             'b': np.ones((3, 3)),
                                             'c': np.ones((3, 3))})
  (tmp_path / 'JPEGImages' / 'b.jpg').unlink()
  image_set = tmp_path / 'val.txt'
  image_set.write_text('a\nb\nd\n')
  prefix = str(tmp_path / 'cli')
  status = pascal_context.main([
      '--images_dir', images_dir, '--annotations', labels_dir,
      '--image_set', str(image_set), '--output_prefix', prefix, '--quiet',
      '--max_skip_fraction', '0.7'])
  assert status == 0
  assert json.loads(capsys.readouterr().out)['images_written'] == 1
  report = helpers.read_json(prefix + '-report.json')
  assert report['images_skipped_by_reason'] == {'missing_image': 2}
  assert [e[common.TFRECORD_IMAGE_SOURCE_ID] for e in helpers.read_examples(
      prefix)] == [[b'a']]


@pytest.mark.parametrize('kwargs,message', [
    ({'num_classes': 60}, '--num_classes must be 59 or 459, got 60'),
    ({'num_classes': 459, 'vocabulary': 'VOCAB'},
     'has 59 classes but --num_classes is 459'),
])
def test_bad_flags_are_clear_errors(tmp_path, kwargs, message):
  images_dir, labels_dir = _write(tmp_path, {'a': np.ones((3, 3))})
  if kwargs.get('vocabulary') == 'VOCAB':
    kwargs['vocabulary'] = pascal_context.os.path.join(
        pascal_context.text_vocabulary.VOCABULARY_DIR, 'pascal_context_59.json')
  with pytest.raises(tfrecord_writer.ConversionError, match=message):
    _convert(tmp_path, images_dir, labels_dir, **kwargs)
