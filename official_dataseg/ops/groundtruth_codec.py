"""The complete evaluation ground truth of one image as one string (TF encode, host decode).

Evaluation scores against every object of an image, however many: the static `max_instances`
of the training targets must not apply. The evaluation parser therefore packs the image's whole
ground truth, at its own resolution, into one string [] that batches with static shape and
travels beside the model inputs to the host evaluator:

  tf.io.serialize_tensor of string [6]:
    0 segmentation: PNG, uint16 [H, W] segment index (0 void, k -> object k - 1);
    1 classes: serialized int32 [K] vocabulary indices;
    2 is_crowd, 3 is_ignored: serialized bool [K];
    4 boxes: serialized float32 [K, 4] yxyx normalised to the image;
    5 instance masks: PNG of the K masks packed eight to a byte (`ops/mask_bits.py` layout),
      planes stacked along the rows: uint8 [max(1, ceil(K / 8)) * H, W]; one empty plane when
      the data has no per-object masks.
PNG keeps it small: a 640 x 480 Objects365 image with 300 objects is a few hundred kB here,
not the 92 MB of its dense masks.
"""
import dataclasses
import io

import numpy as np
from PIL import Image
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg.ops import mask_bits

_MAX_SEGMENTS = 65535  # uint16 PNG


def encode_groundtruth(segmentation: tf.Tensor, classes: tf.Tensor, is_crowd: tf.Tensor,
                       is_ignored: tf.Tensor, boxes: tf.Tensor,
                       instance_masks: tf.Tensor = None) -> tf.Tensor:
  """Packs one image's ground truth into a string [] (in-graph; see the module docstring).

  Args:
    segmentation: int32 [H, W], 0 void, k -> object k - 1 (k <= 65535).
    classes: int32 [K].
    is_crowd: bool [K].
    is_ignored: bool [K].
    boxes: float32 [K, 4] normalised yxyx.
    instance_masks: optional uint8 [K, H, W] 0/1 per-object masks.

  Returns:
    string [].
  """
  segmentation = tf.convert_to_tensor(segmentation, tf.int32)
  fits = tf.debugging.assert_less_equal(
      tf.reduce_max(segmentation), _MAX_SEGMENTS,
      message=f'evaluation ground truth: more than {_MAX_SEGMENTS} segments in one image')
  with tf.control_dependencies([fits]):
    segmentation_png = tf.io.encode_png(tf.cast(segmentation, tf.uint16)[..., None])
  if instance_masks is None:
    instance_masks = tf.zeros(tf.concat([[0], tf.shape(segmentation)], axis=0), tf.uint8)
  packed = mask_bits.pack_masks(tf.cast(instance_masks, tf.uint8))
  masks_png = tf.io.encode_png(tf.reshape(packed, [-1, tf.shape(packed)[2], 1]))
  parts = [segmentation_png,
           tf.io.serialize_tensor(tf.cast(classes, tf.int32)),
           tf.io.serialize_tensor(tf.cast(is_crowd, tf.bool)),
           tf.io.serialize_tensor(tf.cast(is_ignored, tf.bool)),
           tf.io.serialize_tensor(tf.cast(boxes, tf.float32)),
           masks_png]
  return tf.io.serialize_tensor(tf.stack(parts))


@dataclasses.dataclass
class Groundtruth:
  """One image's complete evaluation ground truth (NumPy, original resolution H x W).

  Attributes:
    segmentation: int64 [H, W], 0 void, k -> object k - 1.
    classes: int64 [K] vocabulary indices.
    is_crowd: bool [K].
    is_ignored: bool [K] (objects the raters skipped).
    boxes: float64 [K, 4] yxyx in pixels.
    instance_masks: uint8 [K, H, W] 0/1, or None unless decoded `with_instance_masks`.
  """
  segmentation: np.ndarray
  classes: np.ndarray
  is_crowd: np.ndarray
  is_ignored: np.ndarray
  boxes: np.ndarray
  instance_masks: np.ndarray


def _read_png(data: bytes) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(data)))


def decode_groundtruth(serialized: bytes, with_instance_masks: bool = False) -> Groundtruth:
  """Inverse of `encode_groundtruth`, on the host.

  Args:
    serialized: the bytes of one `encode_groundtruth` string.
    with_instance_masks: also unpack the per-object masks (instance data).

  Returns:
    The image's `Groundtruth`.
  """
  parts = tf.io.parse_tensor(serialized, tf.string).numpy()
  if parts.shape != (6,):
    raise ValueError(f'evaluation ground truth: expected 6 parts, got {parts.shape}')
  segmentation = _read_png(parts[0]).astype(np.int64)
  if segmentation.ndim == 3:
    segmentation = segmentation[..., 0]
  classes = tf.io.parse_tensor(parts[1], tf.int32).numpy().astype(np.int64)
  is_crowd = tf.io.parse_tensor(parts[2], tf.bool).numpy()
  is_ignored = tf.io.parse_tensor(parts[3], tf.bool).numpy()
  height, width = segmentation.shape
  boxes = tf.io.parse_tensor(parts[4], tf.float32).numpy().astype(np.float64).reshape(-1, 4)
  boxes *= np.array([height, width, height, width], np.float64)
  masks = None
  if with_instance_masks:
    packed = _read_png(parts[5]).astype(np.uint8)
    if packed.ndim == 3:
      packed = packed[..., 0]
    masks = mask_bits.unpack_masks(packed.reshape(-1, height, width), len(classes))
  return Groundtruth(segmentation, classes, is_crowd, is_ignored, boxes, masks)
