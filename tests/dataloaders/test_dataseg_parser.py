"""DataSegParser with fixed augmentation draws against hand-computed targets.

Target pixel (i, j) at stride 4 samples the source pixel containing the
output-image point (4i + 2, 4j + 2) (see `geometry`).
"""
import numpy as np
import pytest
import tensorflow as tf

from official_dataseg import common
from official_dataseg.dataloaders import dataseg_parser
from official_dataseg.dataloaders import geometry
from official_dataseg.dataloaders import tf_example_decoder
from official_dataseg.ops import groundtruth_codec
from tests.dataloaders import tfexample_helpers

MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


def _augmentation(flip=False, scale=1.0, crop=(0.0, 0.0)):
  return geometry.Augmentation(tf.constant(flip), tf.constant(scale),
                               tf.constant(crop, tf.float32))


def _decoded(serialized, masks=False):
  return tf_example_decoder.DataSegDecoder(masks).decode(tf.constant(serialized))


def _train(task, serialized, output_size, max_instances, augmentation):
  parser = dataseg_parser.DataSegParser(task, 2, output_size, max_instances,
                                        [64, 64])
  out = parser.parse_train_with_augmentation(_decoded(serialized), augmentation)
  return {k: v.numpy() for k, v in out.items()}


def test_panoptic_targets_resize_pad_and_crowd():
  # 8x12 image into 16x16: scale = min(16/8, 16/12) = 4/3, scaled 11x16.
  # Rows: centres 2, 6, 10 (< 11) sample source rows floor(c * 8 / 11) =
  # 1, 4, 7; centre 14 is padding. Columns: floor(c * 12 / 16) = 1, 4, 7, 10.
  image = np.full((8, 12, 3), 100, np.uint8)
  segment_map = np.zeros((8, 12), np.int32)
  segment_map[0:4, 0:6] = 1
  segment_map[4:8, 6:12] = 2
  segment_map[0:2, 8:12] = 3  # crowd
  boxes = [[0, 0, .5, .5], [.5, .5, 1, 1], [0, 8 / 12, .25, 1]]
  out = _train(common.TASK_PANOPTIC, tfexample_helpers.make_example(
      image, [5, 7, 9], boxes, segment_map, is_crowd=[0, 0, 1]),
               [16, 16], 4, _augmentation())
  expected_masks = np.zeros((4, 4, 4), np.uint8)
  expected_masks[0, 1:3, 2:4] = 1  # object 2 (4 target pixels) first
  expected_masks[1, 0, 0:2] = 1    # object 1 (2 target pixels)
  np.testing.assert_array_equal(out[common.GT_MASKS], expected_masks)
  np.testing.assert_array_equal(out[common.GT_CLASSES], [7, 5, 0, 0])
  np.testing.assert_array_equal(out[common.GT_VALID], [1, 1, 0, 0])
  # Object 2 box [4, 6, 8, 12] * (11/8, 16/12) / 16.
  np.testing.assert_allclose(out[common.GT_BOXES],
                             [[5.5 / 16, .5, 11 / 16, 1], [0, 0, 5.5 / 16, .5],
                              [0] * 4, [0] * 4], atol=1e-6)
  np.testing.assert_array_equal(out[common.IGNORE_MASK],
                                [[0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0],
                                 [1, 1, 1, 1]])
  assert out[common.NUM_TRUNCATED] == 0
  assert out[common.DATASET_ID] == 2
  np.testing.assert_allclose(out[common.IMAGE_INFO],
                             [[8, 12], [11, 16], [11 / 8, 16 / 12], [0, 0]],
                             rtol=1e-6)
  np.testing.assert_allclose(out[common.IMAGE][0, 0], (100 / 255 - MEAN) / STD,
                             rtol=1e-5)
  np.testing.assert_array_equal(out[common.IMAGE][11:], 0.0)


def test_crop_drops_objects_outside_window():
  # 8x8 into 8x8 at jitter 2: scaled 16x16, offset floor(8 * (.5, .25)) =
  # (4, 2). Centres 2, 6 -> scaled 6, 10 (rows), 4, 8 (cols) -> source
  # rows 3, 5 and cols 2, 4.
  segment_map = np.zeros((8, 8), np.int32)
  segment_map[0:3, :] = 1  # not sampled: lost by the crop
  segment_map[3:8, 0:4] = 2
  out = _train(common.TASK_SEMANTIC, tfexample_helpers.make_example(
      np.zeros((8, 8, 3), np.uint8), [1, 3],
      [[0, 0, 3 / 8, 1], [3 / 8, 0, 1, .5]], segment_map),
               [8, 8], 2, _augmentation(scale=2.0, crop=(.5, .25)))
  np.testing.assert_array_equal(out[common.GT_MASKS],
                                [[[1, 0], [1, 0]], [[0, 0], [0, 0]]])
  np.testing.assert_array_equal(out[common.GT_CLASSES], [3, 0])
  np.testing.assert_array_equal(out[common.GT_VALID], [1, 0])
  # [3, 0, 8, 4] * 2 - (4, 2) = [2, -2, 12, 6], clipped to [2, 0, 8, 6].
  np.testing.assert_allclose(out[common.GT_BOXES][0], [.25, 0, 1, .75])
  np.testing.assert_array_equal(out[common.IGNORE_MASK], [[0, 1], [0, 1]])
  np.testing.assert_allclose(out[common.IMAGE_INFO][3], [4, 2])


def test_truncation_keeps_largest_and_counts():
  # 16x16 at scale 1: target pixel (i, j) samples block (i, j) of np.kron.
  blocks = np.array([[5, 5, 5, 5],
                     [5, 2, 2, 2],
                     [4, 4, 3, 3],
                     [4, 4, 1, 6]])
  segment_map = np.kron(blocks, np.ones((4, 4), np.int32))
  out = _train(common.TASK_PANOPTIC, tfexample_helpers.make_example(
      np.zeros((16, 16, 3), np.uint8), [10, 20, 30, 40, 50, 60],
      [[0, 0, 1, 1]] * 6, segment_map, is_crowd=[0, 0, 0, 1, 0, 0]),
               [16, 16], 4, _augmentation())
  # Areas: 1:1, 2:3, 3:2, 4:4 (crowd, excluded), 5:5, 6:1. Ties keep order.
  np.testing.assert_array_equal(out[common.GT_CLASSES], [50, 20, 30, 10])
  for slot, value in enumerate([5, 2, 3, 1]):
    np.testing.assert_array_equal(out[common.GT_MASKS][slot], blocks == value)
  assert out[common.NUM_TRUNCATED] == 1
  np.testing.assert_array_equal(out[common.IGNORE_MASK], blocks == 4)


def test_flip_moves_masks_and_boxes_together():
  segment_map = np.zeros((16, 16), np.int32)
  segment_map[0:8, 0:4] = 1
  serialized = tfexample_helpers.make_example(
      np.zeros((16, 16, 3), np.uint8), [4], [[0, 0, .5, .25]], segment_map)
  out = _train(common.TASK_SEMANTIC, serialized, [16, 16], 2,
               _augmentation(flip=True))
  expected = np.zeros((4, 4), np.uint8)
  expected[0:2, 3] = 1
  np.testing.assert_array_equal(out[common.GT_MASKS][0], expected)
  np.testing.assert_allclose(out[common.GT_BOXES][0], [0, .75, .5, 1])
  np.testing.assert_array_equal(out[common.IGNORE_MASK], 1 - expected)


def test_box_targets_fill_overlapped_cells():
  # Boxes (pixels): a [1, 2, 6, 9] -> cells rows [0, 2), cols [0, 3);
  # crowd [8, 8, 16, 16] -> ignored cells rows 2-3, cols 2-3;
  # b [12, 0, 13, 1]: area 1, covers cell (3, 0).
  boxes = np.array([[1, 2, 6, 9], [8, 8, 16, 16], [12, 0, 13, 1]]) / 16
  out = _train(common.TASK_INSTANCE, tfexample_helpers.make_example(
      np.zeros((16, 16, 3), np.uint8), [1, 2, 3], boxes, is_crowd=[0, 1, 0]),
               [16, 16], 3, _augmentation())
  expected = np.zeros((3, 4, 4), np.uint8)
  expected[0, 0:2, 0:3] = 1
  expected[1, 3, 0] = 1
  np.testing.assert_array_equal(out[common.GT_MASKS], expected)
  np.testing.assert_array_equal(out[common.GT_CLASSES], [1, 3, 0])
  np.testing.assert_allclose(out[common.GT_BOXES][:2], boxes[[0, 2]], atol=1e-6)
  ignore = np.zeros((4, 4), np.uint8)
  ignore[2:, 2:] = 1
  np.testing.assert_array_equal(out[common.IGNORE_MASK], ignore)


def test_eval_groundtruth_is_complete_beyond_max_instances():
  masks = np.zeros((3, 6, 8), np.uint8)
  masks[0, 0:4, 0:4] = 1
  masks[1, 2:6, 2:6] = 1  # overlaps object 0
  masks[2, 5, 7] = 1
  boxes = [[0, 0, 0.5, 0.25], [0.1, 0.2, 1, 1], [0.5, 0.5, 0.75, 1]]
  serialized = tfexample_helpers.make_example(
      np.zeros((6, 8, 3), np.uint8), [3, 4, 5], boxes,
      instance_masks=masks, is_crowd=[0, 1, 0], is_ignored=[0, 0, 1],
      source_id='img7')
  # M = 2 < 3 objects: evaluation keeps all three, at the image's own 6 x 8 size.
  parser = dataseg_parser.DataSegParser(common.TASK_INSTANCE, 0, [16, 16], 2,
                                        [8, 10])
  out = {k: v.numpy() for k, v in
         parser.parse_fn(False)(_decoded(serialized, masks=True)).items()}
  assert common.NUM_TRUNCATED not in out
  groundtruth = groundtruth_codec.decode_groundtruth(out[common.EVAL_GROUNDTRUTH],
                                                     with_instance_masks=True)
  np.testing.assert_array_equal(groundtruth.instance_masks, masks)
  np.testing.assert_array_equal(groundtruth.classes, [3, 4, 5])
  np.testing.assert_array_equal(groundtruth.is_crowd, [False, True, False])
  np.testing.assert_array_equal(groundtruth.is_ignored, [False, False, True])
  np.testing.assert_allclose(groundtruth.boxes, np.array(boxes) * [6, 8, 6, 8], atol=1e-5)
  assert groundtruth.segmentation.shape == (6, 8)
  assert out[common.SOURCE_ID] == b'img7'
  # Long side 8 -> 16: scale 2, no offset.
  np.testing.assert_allclose(out[common.IMAGE_INFO],
                             [[6, 8], [12, 16], [2, 2], [0, 0]])



def test_bad_config_raises():
  with pytest.raises(ValueError, match='output_size'):
    dataseg_parser.DataSegParser(common.TASK_SEMANTIC, 0, [30, 32], 4, [32, 32])
  with pytest.raises(ValueError, match='task_type'):
    dataseg_parser.DataSegParser('depth', 0, [32, 32], 4, [32, 32])
