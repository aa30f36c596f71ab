"""Binary masks packed eight to a byte, for full-resolution evaluation ground truth.

Instance ground truth can overlap, so it cannot be one segment map: it is K binary masks at the
image size. Dense uint8 that is K * H * W bytes per image; packed along the object axis it is
ceil(K / 8) * H * W, and compresses well as a PNG (`ops/groundtruth_codec.py`).

Layout: bit b (value 2**b) of packed plane j is the mask of object 8 * j + b.
"""
from typing import Optional

import numpy as np
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

BITS_PER_PLANE = 8


def num_planes(num_masks: int) -> int:
  """Packed planes for `num_masks` masks: ceil(num_masks / 8)."""
  return -(-num_masks // BITS_PER_PLANE)


def pack_masks(masks: tf.Tensor, num_masks: Optional[int] = None) -> tf.Tensor:
  """Packs binary masks into bit planes (TF; dynamic H, W).

  Args:
    masks: uint8 [K, H, W] of 0/1.
    num_masks: static M >= K, the slots to pack (missing masks are empty); None packs the K
      masks (dynamic K) into max(1, ceil(K / 8)) planes.

  Returns:
    uint8 [ceil(M / 8), H, W], or [max(1, ceil(K / 8)), H, W] when `num_masks` is None.
  """
  masks = tf.convert_to_tensor(masks, tf.uint8)
  if num_masks is None:
    planes = tf.maximum(-(-tf.shape(masks)[0] // BITS_PER_PLANE), 1)
  else:
    planes = num_planes(num_masks)
  masks = tf.pad(masks, [[0, planes * BITS_PER_PLANE - tf.shape(masks)[0]], [0, 0], [0, 0]])
  masks = tf.reshape(masks, tf.concat([[planes, BITS_PER_PLANE], tf.shape(masks)[1:]], axis=0))
  # Bits are disjoint, so uint8 sums never carry; no wider transient copy of the masks.
  packed = masks[:, 0]
  for bit in range(1, BITS_PER_PLANE):
    packed += masks[:, bit] * tf.constant(1 << bit, tf.uint8)
  return packed


def unpack_masks(packed: np.ndarray, num_masks: int) -> np.ndarray:
  """Inverse of `pack_masks` (NumPy, on the host).

  Args:
    packed: uint8 [P, H, W] bit planes.
    num_masks: how many masks to return (<= 8 * P).

  Returns:
    uint8 [num_masks, H, W] of 0/1.
  """
  packed = np.asarray(packed, np.uint8)
  if num_masks > packed.shape[0] * BITS_PER_PLANE:
    raise ValueError(f'{packed.shape[0]} bit planes hold at most '
                     f'{packed.shape[0] * BITS_PER_PLANE} masks, asked for {num_masks}.')
  bits = np.unpackbits(packed[:, np.newaxis], axis=1, bitorder='little')  # [P, 8, H, W]
  return bits.reshape((-1,) + packed.shape[1:])[:num_masks]
