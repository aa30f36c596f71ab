"""Box <-> mask tensor helpers shared by the parser, losses and evaluation."""
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


def fill_mask_boxes(masks: tf.Tensor) -> tf.Tensor:
  """Replaces each binary mask by its filled tight bounding box.

  The box spans the first to the last row and column that hold a mask pixel
  (inclusive); an empty mask stays empty.

  Args:
    masks: bool [..., H, W] binary masks.

  Returns:
    bool [..., H, W] filled boxes.
  """
  masks = tf.convert_to_tensor(masks, tf.bool)

  def inside_extent(any_pixel):
    # A line lies inside the box when mask pixels lie at or before it and
    # at or after it.
    counts = tf.cast(any_pixel, tf.int32)
    return ((tf.math.cumsum(counts, axis=-1) > 0)
            & (tf.math.cumsum(counts, axis=-1, reverse=True) > 0))

  rows = inside_extent(tf.reduce_any(masks, axis=-1))   # [..., H]
  columns = inside_extent(tf.reduce_any(masks, axis=-2))  # [..., W]
  return rows[..., :, tf.newaxis] & columns[..., tf.newaxis, :]
