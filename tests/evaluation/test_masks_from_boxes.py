"""`DatasetConfig.instance_masks_from_boxes`: each predicted instance mask is scored as its filled
tight box (the box-only baseline), checked on a hand-drawn L-shaped mask."""
import numpy as np
import pytest
import tensorflow as tf

from official_dataseg import common
from official_dataseg.configs import data as data_config
from official_dataseg.evaluation import dataset_evaluator
from official_dataseg.ops import box_mask_ops
from official_dataseg.ops import groundtruth_codec

STRIDE = 4
SIZE = 64  # Image and input size; the stride-4 grid is 16 x 16.
# The box, in grid cells: rows 1..6, columns 2..9 (inclusive).
TOP, BOTTOM, LEFT, RIGHT = 1, 6, 2, 9


def _l_shape(height, width, top, bottom, left, right):
  """bool [height, width]: the left column and the bottom row of a box (inclusive bounds)."""
  mask = np.zeros((height, width), bool)
  mask[top:bottom + 1, left] = True
  mask[bottom, left:right + 1] = True
  return mask


def test_fill_mask_boxes_fills_the_tight_box_and_keeps_empty_masks_empty():
  l_shape = _l_shape(8, 12, 2, 6, 3, 10)
  diagonal = np.eye(5, 7, k=1, dtype=bool)  # Pixels (0, 1) .. (4, 5).
  masks = np.zeros((3, 8, 12), bool)
  masks[0] = l_shape
  masks[1, :5, :7] = diagonal
  filled = box_mask_ops.fill_mask_boxes(tf.constant(masks[None])).numpy()[0]
  expected = np.zeros_like(masks)
  expected[0, 2:7, 3:11] = True
  expected[1, 0:5, 1:6] = True
  np.testing.assert_array_equal(filled, expected)
  assert filled.dtype == bool


def _evaluate(masks_from_boxes):
  """mask AP and the scored masks of one L-shaped prediction whose box is the only GT object."""
  gt_mask = np.zeros((SIZE, SIZE), np.uint8)
  gt_mask[TOP * STRIDE:(BOTTOM + 1) * STRIDE, LEFT * STRIDE:(RIGHT + 1) * STRIDE] = 1
  box = np.array([[TOP, LEFT, BOTTOM + 1, RIGHT + 1]], np.float32) * STRIDE / SIZE
  groundtruth = groundtruth_codec.encode_groundtruth(
      gt_mask.astype(np.int32), np.array([0], np.int32), np.zeros(1, bool), np.zeros(1, bool),
      box, instance_masks=gt_mask[None])
  grid = SIZE // STRIDE
  mask_logits = np.where(_l_shape(grid, grid, TOP, BOTTOM, LEFT, RIGHT), 8.0, -8.0)
  class_logits = np.array([[6.0, -4.0, -4.0]], np.float32)  # Class 0, then c1, background.
  config = data_config.DatasetConfig(
      name='boxes', task_type=common.TASK_INSTANCE, max_detections=2,
      instance_masks_from_boxes=masks_from_boxes)
  evaluator = dataset_evaluator.DatasetEvaluator(config, ['c0', 'c1'], [True, True],
                                                 keep_examples=1)
  evaluator.update({
      dataset_evaluator.PREDICTED_MASK_LOGITS: mask_logits[None, None].astype(np.float32),
      dataset_evaluator.PREDICTED_CLASS_LOGITS: class_logits[None],
      common.IMAGE_INFO: np.array([[[SIZE, SIZE], [SIZE, SIZE], [1, 1], [0, 0]]], np.float32),
      common.EVAL_GROUNDTRUTH: np.array([groundtruth.numpy()]),
  })
  masks = evaluator.examples[0]['prediction']['masks']
  return evaluator.result()['mask_AP'], masks[0], gt_mask.astype(bool)


def test_config_flag_scores_the_filled_box():
  ap_masks, l_mask, gt_mask = _evaluate(masks_from_boxes=False)
  ap_boxes, box_mask, _ = _evaluate(masks_from_boxes=True)
  # The L covers 13 of the box's 48 cells: IoU ~0.27, a miss at every threshold.
  assert ap_masks == pytest.approx(0.0)
  rows, columns = np.nonzero(l_mask)
  expected = np.zeros_like(l_mask)
  expected[rows.min():rows.max() + 1, columns.min():columns.max() + 1] = True
  np.testing.assert_array_equal(box_mask, expected)
  # The L's box is the GT object's: a hit at every IoU threshold.
  assert (box_mask & gt_mask).sum() / (box_mask | gt_mask).sum() > 0.95
  assert ap_boxes == pytest.approx(100.0)
