"""ViTDet attention against NumPy references: windows, padding, rel-pos bias."""
import numpy as np
from scipy import special
import tensorflow as tf

from official_dataseg.modeling.backbones import vitdet
from official_dataseg.modeling.layers import window_attention


def _np_layer_norm(x, gamma, beta, eps):
  mean = x.mean(-1, keepdims=True)
  var = x.var(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _np_attention(grid, qkv_w, qkv_b, proj_w, proj_b, num_heads,
                  rel_h=None, rel_w=None):
  """Reference ViTDet attention on one [H, W, C] map, explicit loops."""
  height, width, channels = grid.shape
  head_dim = channels // num_heads
  tokens = grid.reshape(-1, channels)
  qkv = tokens @ qkv_w + qkv_b
  q, k, v = np.split(qkv, 3, axis=-1)
  out = np.zeros_like(tokens)
  for h in range(num_heads):
    sl = slice(h * head_dim, (h + 1) * head_dim)
    qh, kh, vh = q[:, sl], k[:, sl], v[:, sl]
    logits = (qh / np.sqrt(head_dim)) @ kh.T
    if rel_h is not None:
      for qi in range(height * width):
        qy, qx = divmod(qi, width)
        for ki in range(height * width):
          ky, kx = divmod(ki, width)
          logits[qi, ki] += qh[qi] @ rel_h[qy - ky + height - 1]
          logits[qi, ki] += qh[qi] @ rel_w[qx - kx + width - 1]
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out[:, sl] = weights @ vh
  return (out @ proj_w + proj_b).reshape(height, width, channels)


def test_window_partition_pads_and_round_trips():
  features = np.random.RandomState(0).randn(2, 5, 7, 3).astype(np.float32)
  windows, padded_hw = window_attention.window_partition(
      tf.constant(features), 4)
  assert padded_hw == (8, 8)
  assert windows.shape == (2 * 2 * 2, 4, 4, 3)
  padded = np.zeros((2, 8, 8, 3), np.float32)
  padded[:, :5, :7] = features
  # Window order: image, window row, window column.
  np.testing.assert_array_equal(windows[3], padded[0, 4:8, 4:8])
  np.testing.assert_array_equal(windows[5], padded[1, 0:4, 4:8])
  restored = window_attention.window_unpartition(windows, 4, padded_hw, (5, 7))
  np.testing.assert_array_equal(restored, features)


def test_relative_position_embeddings_lookup_and_resize():
  table = np.random.RandomState(1).randn(7, 2).astype(np.float32)
  looked_up = window_attention.relative_position_embeddings(
      tf.constant(table), 4, 4).numpy()
  for q in range(4):
    for k in range(4):
      np.testing.assert_array_equal(looked_up[q, k], table[q - k + 3])
  # A table stored for a 4-grid (7 rows) used on a 3-grid (5 rows):
  # linear resize with half-pixel centres, as torch's align_corners=False.
  resized = window_attention.relative_position_embeddings(
      tf.constant(table), 3, 3).numpy()
  src = np.clip((np.arange(5) + 0.5) * 7 / 5 - 0.5, 0, 6)
  expected_table = np.stack(
      [np.interp(src, np.arange(7), table[:, c]) for c in range(2)], -1)
  np.testing.assert_allclose(resized[2, 0], expected_table[2 - 0 + 2],
                             rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(resized[0, 2], expected_table[0], atol=1e-6)


def _randomise_rel_pos(layer, seed):
  rng = np.random.RandomState(seed)
  layer.rel_pos_h.assign(rng.randn(*layer.rel_pos_h.shape) * 0.5)
  layer.rel_pos_w.assign(rng.randn(*layer.rel_pos_w.shape) * 0.5)


def test_relative_position_attention_matches_numpy():
  layer = window_attention.RelativePositionAttention(
      8, 2, use_rel_pos=True, rel_pos_table_size=4)
  grid = np.random.RandomState(2).randn(1, 4, 4, 8).astype(np.float32)
  layer(tf.constant(grid))
  _randomise_rel_pos(layer, 3)
  out = layer(tf.constant(grid)).numpy()
  expected = _np_attention(
      grid[0], layer.qkv.kernel.numpy(), layer.qkv.bias.numpy(),
      layer.proj.kernel.numpy(), layer.proj.bias.numpy(), 2,
      layer.rel_pos_h.numpy(), layer.rel_pos_w.numpy())
  np.testing.assert_allclose(out[0], expected, rtol=1e-4, atol=1e-5)


def _make_block(window_size, rel_pos_grid_size):
  return vitdet.ViTBlock(
      hidden_size=8, num_heads=2, mlp_ratio=2.0, window_size=window_size,
      use_rel_pos=True, rel_pos_grid_size=rel_pos_grid_size,
      drop_path_rate=0.0, layer_norm_epsilon=1e-6)


def test_window_covering_map_equals_global_attention():
  features = tf.constant(
      np.random.RandomState(4).randn(2, 6, 6, 8).astype(np.float32))
  windowed, global_block = _make_block(6, 64), _make_block(0, 6)
  windowed(features)
  global_block(features)
  _randomise_rel_pos(windowed.attention, 5)
  global_block.set_weights(windowed.get_weights())
  np.testing.assert_allclose(windowed(features), global_block(features),
                             rtol=1e-5, atol=1e-5)


def test_windowed_block_with_padding_matches_numpy():
  rng = np.random.RandomState(6)
  features = rng.randn(1, 5, 6, 8).astype(np.float32)
  block = _make_block(4, 64)
  block(tf.constant(features))
  _randomise_rel_pos(block.attention, 7)
  out = block(tf.constant(features)).numpy()[0]

  attention = block.attention
  normed = _np_layer_norm(features[0], block.norm1.gamma.numpy(),
                          block.norm1.beta.numpy(), 1e-6)
  padded = np.zeros((8, 8, 8), np.float32)  # ViTDet pads after the norm.
  padded[:5, :6] = normed
  attended = np.zeros_like(padded)
  for wy in range(2):
    for wx in range(2):
      window = padded[wy * 4:(wy + 1) * 4, wx * 4:(wx + 1) * 4]
      attended[wy * 4:(wy + 1) * 4, wx * 4:(wx + 1) * 4] = _np_attention(
          window, attention.qkv.kernel.numpy(), attention.qkv.bias.numpy(),
          attention.proj.kernel.numpy(), attention.proj.bias.numpy(), 2,
          attention.rel_pos_h.numpy(), attention.rel_pos_w.numpy())
  hidden = features[0] + attended[:5, :6]
  mlp_in = _np_layer_norm(hidden, block.norm2.gamma.numpy(),
                          block.norm2.beta.numpy(), 1e-6)
  mlp_hidden = mlp_in @ block.mlp_fc1.kernel.numpy() + block.mlp_fc1.bias.numpy()
  mlp_hidden = 0.5 * mlp_hidden * (1 + special.erf(mlp_hidden / np.sqrt(2)))
  expected = hidden + mlp_hidden @ block.mlp_fc2.kernel.numpy() + (
      block.mlp_fc2.bias.numpy())
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)
