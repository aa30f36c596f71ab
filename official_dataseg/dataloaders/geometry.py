"""Geometric transforms of the input pipeline: flip, large-scale jitter, crop / pad.

One convention for the image, the segment-index map and the boxes:
  1. (training) optional horizontal flip of the full-resolution inputs;
  2. jitter: a target size `round(jitter_scale * output_size)`, the image scaled
     (aspect kept) to fit in it: `scaled_size = round([H, W] * scale)` with
     `scale = min(target / [H, W])` (Model Garden's large-scale jitter);
  3. crop at `offset = floor(max(scaled_size - output_size, 0) * crop_fraction)`
     and pad bottom / right to `output_size`.
Targets at stride s (4) sample the full-resolution map directly: target pixel
(i, j) takes the source pixel that contains its centre, the output-image point
(s * i + s / 2, s * j + s / 2). This never builds the scaled full map (up to 2x
the output size per side) and keeps ids exact (nearest neighbour).
"""
from typing import NamedTuple, Sequence, Tuple

import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official.vision.ops import box_ops


class Augmentation(NamedTuple):
  """The random draws of one training example (fixed values make it exact).

  Attributes:
    flip: bool []: flip horizontally.
    jitter_scale: float32 []: target size / output size (1.0: long side fits).
    crop_fraction: float32 [2]: where the crop window sits in [0, 1) of the
      available slack (y, x).
  """
  flip: tf.Tensor
  jitter_scale: tf.Tensor
  crop_fraction: tf.Tensor


def no_augmentation() -> Augmentation:
  """The identity: no flip, long side fits the output, top-left crop."""
  return Augmentation(flip=tf.constant(False), jitter_scale=tf.constant(1.0),
                      crop_fraction=tf.zeros([2], tf.float32))


def sample_augmentation(seed: tf.Tensor, rand_hflip: bool, scale_min: float,
                        scale_max: float) -> Augmentation:
  """Stateless draws: the same seed gives the same augmentation.

  Args:
    seed: int32/int64 [2] stateless seed.
    rand_hflip: whether to flip with probability 0.5.
    scale_min: lower bound of the jitter scale.
    scale_max: upper bound of the jitter scale.

  Returns:
    The Augmentation.
  """
  flip_seed, scale_seed, crop_seed = tf.unstack(
      tf.random.experimental.stateless_split(seed, num=3))
  flip = tf.less(tf.random.stateless_uniform([], flip_seed), 0.5)
  if not rand_hflip:
    flip = tf.constant(False)
  jitter_scale = tf.random.stateless_uniform(
      [], scale_seed, minval=scale_min, maxval=scale_max)
  if scale_min == scale_max:
    jitter_scale = tf.constant(scale_min, tf.float32)
  crop_fraction = tf.random.stateless_uniform([2], crop_seed)
  return Augmentation(flip, jitter_scale, crop_fraction)


def scale_and_offset(image_size: tf.Tensor, output_size: Sequence[int],
                     jitter_scale: tf.Tensor, crop_fraction: tf.Tensor
                     ) -> Tuple[tf.Tensor, tf.Tensor]:
  """Scaled image size and crop offset (steps 2 and 3 of the module docstring).

  Args:
    image_size: int32 [2] original (H, W).
    output_size: (S_h, S_w).
    jitter_scale: float32 [].
    crop_fraction: float32 [2] in [0, 1).

  Returns:
    scaled_size: float32 [2] integral (h, w) of the scaled image.
    offset: float32 [2] integral (y, x) of the crop in the scaled image.
  """
  image_size = tf.cast(image_size, tf.float32)
  output = tf.constant(output_size, tf.float32)
  target = tf.round(jitter_scale * output)
  scale = tf.reduce_min(target / image_size)
  scaled_size = tf.maximum(tf.round(image_size * scale), 1.0)
  max_offset = tf.maximum(scaled_size - output, 0.0)
  offset = tf.floor(max_offset * crop_fraction)
  return scaled_size, offset


def resize_crop_pad_image(image: tf.Tensor, scaled_size: tf.Tensor,
                          offset: tf.Tensor, output_size: Sequence[int]
                          ) -> tf.Tensor:
  """Bilinear resize to `scaled_size`, crop at `offset`, zero-pad to output.

  Args:
    image: float32 [H, W, C].
    scaled_size: float32 [2] integral.
    offset: float32 [2] integral.
    output_size: (S_h, S_w).

  Returns:
    float32 [S_h, S_w, C].
  """
  scaled = tf.image.resize(image, tf.cast(scaled_size, tf.int32))
  offset = tf.cast(offset, tf.int32)
  cropped = scaled[offset[0]:offset[0] + output_size[0],
                   offset[1]:offset[1] + output_size[1], :]
  padded = tf.image.pad_to_bounding_box(cropped, 0, 0, output_size[0],
                                        output_size[1])
  return tf.ensure_shape(padded, [output_size[0], output_size[1], None])


def _target_centres(output_length: int, stride: int) -> tf.Tensor:
  """float32 [output_length // stride]: output-image coordinates of target centres."""
  return (tf.range(output_length // stride, dtype=tf.float32) * stride +
          stride / 2.0)


def inside_image_mask(scaled_size: tf.Tensor, offset: tf.Tensor,
                      output_size: Sequence[int], stride: int) -> tf.Tensor:
  """bool [S_h / s, S_w / s]: target pixels whose centre lies on the image (not padding)."""
  rows = _target_centres(output_size[0], stride) + offset[0] < scaled_size[0]
  cols = _target_centres(output_size[1], stride) + offset[1] < scaled_size[1]
  return rows[:, None] & cols[None, :]


def sample_index_map(index_map: tf.Tensor, scaled_size: tf.Tensor,
                     offset: tf.Tensor, output_size: Sequence[int],
                     stride: int) -> tf.Tensor:
  """Samples a full-resolution index map at the stride-s target pixels.

  Args:
    index_map: int32 [H, W].
    scaled_size: float32 [2] integral scaled (h, w).
    offset: float32 [2] integral crop offset (y, x).
    output_size: (S_h, S_w), multiples of `stride`.
    stride: target stride s.

  Returns:
    int32 [S_h / s, S_w / s]; 0 where the centre falls on the padding.
  """
  source_size = tf.shape(index_map)
  source_size_f = tf.cast(source_size, tf.float32)

  def source_indices(axis):
    centres = _target_centres(output_size[axis], stride) + offset[axis]
    indices = tf.floor(centres * source_size_f[axis] / scaled_size[axis])
    return tf.clip_by_value(tf.cast(indices, tf.int32), 0,
                            source_size[axis] - 1)

  sampled = tf.gather(tf.gather(index_map, source_indices(0), axis=0),
                      source_indices(1), axis=1)
  inside = inside_image_mask(scaled_size, offset, output_size, stride)
  return tf.where(inside, sampled, tf.zeros_like(sampled))


def flip_left_right(image: tf.Tensor, index_map: tf.Tensor,
                    normalized_boxes: tf.Tensor, flip: tf.Tensor):
  """Flips image [H, W, C], map [H, W] and normalised boxes [K, 4] together when `flip`."""
  return tf.cond(
      flip,
      lambda: (image[:, ::-1, :], index_map[:, ::-1],
               box_ops.horizontal_flip_boxes(normalized_boxes)),
      lambda: (image, index_map, normalized_boxes))


def box_masks(boxes: tf.Tensor, output_size: Sequence[int],
              stride: int) -> tf.Tensor:
  """Filled box masks at stride s: every target pixel the box overlaps.

  Args:
    boxes: float32 [K, 4] absolute yxyx in output-image pixels.
    output_size: (S_h, S_w).
    stride: target stride s.

  Returns:
    bool [K, S_h / s, S_w / s]; a box of positive area covers >= 1 pixel.
  """
  cells = tf.concat([tf.floor(boxes[:, :2] / stride),
                     tf.math.ceil(boxes[:, 2:] / stride)], axis=-1)
  return box_ops.bbox2mask(cells, image_height=output_size[0] // stride,
                           image_width=output_size[1] // stride)
