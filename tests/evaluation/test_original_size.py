"""Mapping outputs back through Model Garden's resize-and-pad to the original size."""

import numpy as np
import tensorflow as tf
from official.vision.ops import preprocess_ops

from official_dataseg.evaluation import original_size

_INPUT_SIZE = 32
_STRIDE = 4


def _eval_image_info(height, width, input_size=_INPUT_SIZE):
  """image_info of the evaluation resize (aspect kept, top-left, padded)."""
  _, image_info = preprocess_ops.resize_and_crop_image(
      tf.zeros([height, width, 3]), [input_size, input_size],
      [input_size, input_size])
  return image_info.numpy()


def _numpy_bilinear_back(grid_map, image_info, stride):
  """Reference: bilinear sample at f(i) = ((i + .5) s - o) / stride - .5."""
  height, width = np.round(image_info[0]).astype(int)
  scale, offset = image_info[2], image_info[3]
  grid_h, grid_w = grid_map.shape[:2]

  def axis_weights(n_out, n_in, s, o):
    coords = ((np.arange(n_out) + 0.5) * s - o) / stride - 0.5
    coords = np.clip(coords, 0, n_in - 1)
    low = np.floor(coords).astype(int)
    high = np.minimum(low + 1, n_in - 1)
    return low, high, coords - low

  y0, y1, wy = axis_weights(height, grid_h, scale[0], offset[0])
  x0, x1, wx = axis_weights(width, grid_w, scale[1], offset[1])
  top = (grid_map[y0][:, x0] * (1 - wx)[None, :, None] +
         grid_map[y0][:, x1] * wx[None, :, None])
  bottom = (grid_map[y1][:, x0] * (1 - wx)[None, :, None] +
            grid_map[y1][:, x1] * wx[None, :, None])
  return top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]


def test_bilinear_matches_numpy_sampling_through_padding():
  image_info = _eval_image_info(45, 30)  # 45x30 -> 32x21, padded to 32x32
  # Row 1 holds the desired (padded) size, not the scaled size; row 2 the
  # exact scale scaled / original.
  np.testing.assert_allclose(image_info[0] * image_info[2], [32, 21])
  grid = _INPUT_SIZE // _STRIDE
  grid_map = np.random.default_rng(0).normal(size=(grid, grid, 3))
  resized = original_size.resize_to_original(
      grid_map.astype(np.float32), image_info, stride=_STRIDE).numpy()
  assert resized.shape == (45, 30, 3)
  np.testing.assert_allclose(
      resized, _numpy_bilinear_back(grid_map, image_info, _STRIDE), atol=1e-4)


def test_label_map_round_trip_through_resize_and_padding():
  # Original 60x40 label map of 10x10 blocks; push it through the model's
  # geometry (Model Garden resize + pad, then stride-4 subsampling) and back.
  height, width = 60, 40
  labels = (np.arange(height)[:, None] // 10 * 4 +
            np.arange(width)[None, :] // 10).astype(np.int32)
  input_size = 64  # 10 original px -> 10.7 input px -> 2.7 grid cells
  image_info = _eval_image_info(height, width, input_size)
  padded = preprocess_ops.resize_and_crop_masks(
      tf.constant(labels[None, :, :, None], tf.float32), image_info[2],
      [input_size, input_size], image_info[3])[0, :, :, 0].numpy()
  # Grid cells wholly in the padding must not leak back: give them a label
  # that never occurs (a cell straddling the border may be sampled).
  grid_labels = padded[::_STRIDE, ::_STRIDE]
  scaled_h, scaled_w = np.round(image_info[0] * image_info[2]).astype(int)
  grid_labels[-(-scaled_h // _STRIDE):, :] = 99
  grid_labels[:, -(-scaled_w // _STRIDE):] = 99
  restored = original_size.label_map_to_original(
      tf.constant(grid_labels.astype(np.int32)), image_info).numpy()
  assert restored.shape == (height, width) and restored.dtype == np.int32
  assert not (restored == 99).any()
  # Block interiors (the central 2 px of each 10 px block) agree.
  interior = ((np.arange(height) % 10 >= 4) & (np.arange(height) % 10 < 6))
  interior = interior[:, None] & (
      (np.arange(width) % 10 >= 4) & (np.arange(width) % 10 < 6))[None, :]
  np.testing.assert_array_equal(restored[interior], labels[interior])
  assert (restored == labels).mean() > 0.7


def test_in_graph_with_dynamic_original_size():
  mapped = tf.function(
      original_size.mask_logits_to_original,
      input_signature=[tf.TensorSpec([2, None, None], tf.float32),
                       tf.TensorSpec([4, 2], tf.float32)])
  image_info = _eval_image_info(20, 36)  # 20x36 -> 18x32
  grid_logits = np.random.default_rng(1).normal(size=(2, 8, 8))
  resized = mapped(tf.constant(grid_logits, tf.float32),
                   tf.constant(image_info)).numpy()
  assert resized.shape == (2, 20, 36)
  expected = _numpy_bilinear_back(
      np.transpose(grid_logits, (1, 2, 0)), image_info, _STRIDE)
  np.testing.assert_allclose(resized, np.transpose(expected, (2, 0, 1)),
                             atol=1e-4)
