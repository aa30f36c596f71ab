"""Decodes a DaTaSeg tf.Example (schema in `common.TFRECORD_*`) into tensors.

The output keeps the full resolution and the dynamic number of objects K; the
parser turns it into static-shape targets. Optional features (segment map,
per-object masks, `is_ignored`, `is_crowd`) decode to empty or zero tensors so
that every dataset yields the same dict structure.
"""
from typing import Dict

import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official.vision.dataloaders import decoder
from official_dataseg import common

# Byte 24 of a PNG is the IHDR bit depth (8-byte signature, 4-byte length,
# 'IHDR', 4-byte width, 4-byte height): decode_png(dtype=uint16) would rescale
# an 8-bit map by 257, so the depth picks the decoder.
_PNG_BIT_DEPTH_BYTE = 24


def decode_segment_png(encoded: tf.Tensor) -> tf.Tensor:
  """Decodes a uint8 or uint16 single-channel PNG segment-index map.

  Args:
    encoded: string [] PNG bytes.

  Returns:
    int32 [H, W] with the stored values unchanged.
  """
  bit_depth = tf.io.decode_raw(
      tf.strings.substr(encoded, _PNG_BIT_DEPTH_BYTE, 1), tf.uint8)[0]
  segment_map = tf.cond(
      tf.equal(bit_depth, 16),
      lambda: tf.cast(tf.io.decode_png(encoded, 1, dtype=tf.uint16), tf.int32),
      lambda: tf.cast(tf.io.decode_png(encoded, 1, dtype=tf.uint8), tf.int32))
  return segment_map[:, :, 0]


class DataSegDecoder(decoder.Decoder):
  """tf.Example -> dict of `common.DECODED_*` tensors (dynamic shapes).

  Output (K objects, H x W image):
    DECODED_IMAGE uint8 [H, W, 3]; DECODED_SOURCE_ID string [];
    DECODED_HEIGHT, DECODED_WIDTH int32 [];
    DECODED_SEGMENTATION int32 [H, W] (all 0 when the example has no map);
    DECODED_CLASSES int32 [K]; DECODED_BOXES float32 [K, 4] normalised yxyx;
    DECODED_IS_CROWD, DECODED_IS_IGNORED bool [K] (False when absent);
    DECODED_AREAS float32 [K];
    DECODED_INSTANCE_MASKS uint8 [K, H, W] only when `include_instance_masks`
      (all 0 for an example without `image/object/mask`).
  """

  def __init__(self, include_instance_masks: bool = False):
    """Initialises the decoder.

    Args:
      include_instance_masks: decode `image/object/mask` (instance evaluation).
    """
    self._include_instance_masks = include_instance_masks
    self._features = {
        common.TFRECORD_IMAGE_ENCODED: tf.io.FixedLenFeature((), tf.string),
        common.TFRECORD_IMAGE_SOURCE_ID: tf.io.FixedLenFeature(
            (), tf.string, default_value=''),
        common.TFRECORD_IMAGE_HEIGHT: tf.io.FixedLenFeature(
            (), tf.int64, default_value=-1),
        common.TFRECORD_IMAGE_WIDTH: tf.io.FixedLenFeature(
            (), tf.int64, default_value=-1),
        common.TFRECORD_SEGMENTATION_ENCODED: tf.io.FixedLenFeature(
            (), tf.string, default_value=''),
        common.TFRECORD_OBJECT_CLASS: tf.io.VarLenFeature(tf.int64),
        common.TFRECORD_OBJECT_YMIN: tf.io.VarLenFeature(tf.float32),
        common.TFRECORD_OBJECT_XMIN: tf.io.VarLenFeature(tf.float32),
        common.TFRECORD_OBJECT_YMAX: tf.io.VarLenFeature(tf.float32),
        common.TFRECORD_OBJECT_XMAX: tf.io.VarLenFeature(tf.float32),
        common.TFRECORD_OBJECT_IS_CROWD: tf.io.VarLenFeature(tf.int64),
        common.TFRECORD_OBJECT_IS_IGNORED: tf.io.VarLenFeature(tf.int64),
        common.TFRECORD_OBJECT_AREA: tf.io.VarLenFeature(tf.float32),
    }
    if include_instance_masks:
      self._features[common.TFRECORD_OBJECT_MASK] = tf.io.VarLenFeature(
          tf.string)

  def _optional_flags(self, parsed, key: str, num_objects) -> tf.Tensor:
    """bool [K]: the int64 list at `key`, or all False when it is absent."""
    values = parsed[key]
    return tf.cond(
        tf.equal(tf.size(values), 0),
        lambda: tf.zeros([num_objects], tf.bool),
        lambda: tf.not_equal(values, 0))

  def _decode_instance_masks(self, encoded_masks, num_objects, height, width):
    """uint8 [K, H, W] 0/1 from per-object PNGs (zeros when absent)."""
    def decode_one(encoded):
      mask = tf.io.decode_png(encoded, channels=1, dtype=tf.uint8)[:, :, 0]
      return tf.cast(tf.greater(mask, 0), tf.uint8)

    return tf.cond(
        tf.equal(tf.size(encoded_masks), 0),
        lambda: tf.zeros([num_objects, height, width], tf.uint8),
        lambda: tf.map_fn(decode_one, encoded_masks,
                          fn_output_signature=tf.TensorSpec([None, None],
                                                            tf.uint8)))

  def decode(self, serialized_example: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Decodes one serialized tf.Example.

    Args:
      serialized_example: string [].

    Returns:
      The dict described in the class docstring.
    """
    parsed = tf.io.parse_single_example(serialized_example, self._features)
    for key, value in parsed.items():
      if isinstance(value, tf.SparseTensor):
        default = '' if value.dtype == tf.string else 0
        parsed[key] = tf.sparse.to_dense(value, default_value=default)

    image = tf.io.decode_image(parsed[common.TFRECORD_IMAGE_ENCODED],
                               channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    height = tf.shape(image)[0]
    width = tf.shape(image)[1]

    classes = tf.cast(parsed[common.TFRECORD_OBJECT_CLASS], tf.int32)
    num_objects = tf.shape(classes)[0]
    boxes = tf.stack([parsed[common.TFRECORD_OBJECT_YMIN],
                      parsed[common.TFRECORD_OBJECT_XMIN],
                      parsed[common.TFRECORD_OBJECT_YMAX],
                      parsed[common.TFRECORD_OBJECT_XMAX]], axis=-1)
    areas = parsed[common.TFRECORD_OBJECT_AREA]
    areas = tf.cond(tf.equal(tf.size(areas), 0),
                    lambda: tf.zeros([num_objects], tf.float32),
                    lambda: areas)

    encoded_segmentation = parsed[common.TFRECORD_SEGMENTATION_ENCODED]
    segmentation = tf.cond(
        tf.equal(tf.strings.length(encoded_segmentation), 0),
        lambda: tf.zeros([height, width], tf.int32),
        lambda: decode_segment_png(encoded_segmentation))
    source_id = parsed[common.TFRECORD_IMAGE_SOURCE_ID]
    with tf.control_dependencies([tf.debugging.Assert(
        tf.reduce_all(tf.equal(tf.shape(segmentation), tf.shape(image)[:2])),
        ['image/segmentation/encoded must have the image size; '
         'source_id, map [H, W], image [H, W]:', source_id,
         tf.shape(segmentation), tf.shape(image)[:2]])]):
      segmentation = tf.identity(segmentation)

    decoded = {
        common.DECODED_IMAGE: image,
        common.DECODED_SOURCE_ID: source_id,
        common.DECODED_HEIGHT: height,
        common.DECODED_WIDTH: width,
        common.DECODED_SEGMENTATION: segmentation,
        common.DECODED_CLASSES: classes,
        common.DECODED_BOXES: boxes,
        common.DECODED_IS_CROWD: self._optional_flags(
            parsed, common.TFRECORD_OBJECT_IS_CROWD, num_objects),
        common.DECODED_IS_IGNORED: self._optional_flags(
            parsed, common.TFRECORD_OBJECT_IS_IGNORED, num_objects),
        common.DECODED_AREAS: areas,
    }
    if self._include_instance_masks:
      decoded[common.DECODED_INSTANCE_MASKS] = self._decode_instance_masks(
          parsed[common.TFRECORD_OBJECT_MASK], num_objects, height, width)
    return decoded
