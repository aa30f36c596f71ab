"""Box <-> mask tensor helpers shared by the parser and the losses."""
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official.vision.ops import box_ops


def boxes_to_masks(normalized_boxes: tf.Tensor, height: int, width: int,
                   dtype: tf.DType = tf.uint8) -> tf.Tensor:
  """Filled box masks on a [height, width] grid.

  A pixel belongs to a box when its centre (y + 0.5, x + 0.5), in pixels,
  lies in [ymin, ymax) x [xmin, xmax).

  Args:
    normalized_boxes: float [..., 4] yxyx boxes normalised to [0, 1] by the
      grid's (padded) size.
    height: grid height (static int), e.g. S_h / 4 for GT_MASKS.
    width: grid width (static int).
    dtype: output dtype.

  Returns:
    [..., height, width] tensor of 0/1 in `dtype`.
  """
  normalized_boxes = tf.convert_to_tensor(normalized_boxes, tf.float32)
  scale = tf.constant([height, width, height, width], tf.float32)
  # bbox2mask tests the pixel's corner index; shifting the box by half a
  # pixel tests the pixel centre instead.
  return box_ops.bbox2mask(normalized_boxes * scale - 0.5,
                           image_height=height, image_width=width,
                           dtype=dtype)
