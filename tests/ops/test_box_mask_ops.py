"""boxes_to_masks on hand-drawn boxes."""
import numpy as np
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg.ops import box_mask_ops


def test_boxes_to_masks_pixel_centres():
  # 4 x 8 grid. Box rows [0.25, 0.75) * 4 = [1, 3) -> rows 1, 2;
  # columns [0.1, 0.5) * 8 = [0.8, 4) -> centres 0.5..3.5 -> columns 1..3.
  boxes = tf.constant([[[0.25, 0.1, 0.75, 0.5], [0.0, 0.0, 0.0, 0.0]]])
  masks = box_mask_ops.boxes_to_masks(boxes, 4, 8).numpy()
  expected = np.zeros((1, 2, 4, 8), np.uint8)
  expected[0, 0, 1:3, 1:4] = 1
  np.testing.assert_array_equal(masks, expected)
  assert masks.dtype == np.uint8
