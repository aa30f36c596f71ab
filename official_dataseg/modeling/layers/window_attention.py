"""ViTDet attention: windows, window padding, decomposed relative position bias.

Shapes are static: window padding and partitioning are computed from the
static feature-map size, so the graph is XLA/TPU friendly.
"""
from typing import Tuple

import tensorflow as tf, tf_keras


def window_partition(features: tf.Tensor,
                     window_size: int) -> Tuple[tf.Tensor, Tuple[int, int]]:
  """Zero-pads a map to a multiple of the window and cuts it into windows.

  Args:
    features: [B, H, W, C] with static H, W.
    window_size: window side.

  Returns:
    windows: [B * nH * nW, window_size, window_size, C], windows in row-major
      order per image.
    padded_hw: (Hp, Wp), the padded map size.
  """
  _, height, width, channels = features.shape
  pad_h = (window_size - height % window_size) % window_size
  pad_w = (window_size - width % window_size) % window_size
  if pad_h or pad_w:
    features = tf.pad(features, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])
  padded_h, padded_w = height + pad_h, width + pad_w
  num_h, num_w = padded_h // window_size, padded_w // window_size
  windows = tf.reshape(
      features, [-1, num_h, window_size, num_w, window_size, channels])
  windows = tf.transpose(windows, [0, 1, 3, 2, 4, 5])
  windows = tf.reshape(windows, [-1, window_size, window_size, channels])
  return windows, (padded_h, padded_w)


def window_unpartition(windows: tf.Tensor, window_size: int,
                       padded_hw: Tuple[int, int],
                       original_hw: Tuple[int, int]) -> tf.Tensor:
  """Inverse of `window_partition`: reassembles windows and drops padding.

  Args:
    windows: [B * nH * nW, window_size, window_size, C].
    window_size: window side.
    padded_hw: (Hp, Wp) from `window_partition`.
    original_hw: (H, W) before padding.

  Returns:
    [B, H, W, C].
  """
  padded_h, padded_w = padded_hw
  num_h, num_w = padded_h // window_size, padded_w // window_size
  channels = windows.shape[-1]
  features = tf.reshape(
      windows, [-1, num_h, num_w, window_size, window_size, channels])
  features = tf.transpose(features, [0, 1, 3, 2, 4, 5])
  features = tf.reshape(features, [-1, padded_h, padded_w, channels])
  return features[:, :original_hw[0], :original_hw[1], :]


def relative_position_embeddings(rel_pos_table: tf.Tensor, query_size: int,
                                 key_size: int) -> tf.Tensor:
  """Looks up decomposed (one-axis) relative position embeddings.

  The table holds one embedding per relative offset. If its length is not
  2 * max(query_size, key_size) - 1 it is linearly resized first (half-pixel
  centres), as ViTDet does when the feature map differs from the table's.

  Args:
    rel_pos_table: [L, C] float.
    query_size: number of query positions along the axis.
    key_size: number of key positions along the axis.

  Returns:
    [query_size, key_size, C]: embedding of offset (q - k) for each pair.
  """
  num_offsets = 2 * max(query_size, key_size) - 1
  if rel_pos_table.shape[0] != num_offsets:
    resized = tf.image.resize(
        tf.cast(rel_pos_table, tf.float32)[tf.newaxis, :, :, tf.newaxis],
        [num_offsets, rel_pos_table.shape[1]], method='bilinear')
    rel_pos_table = tf.cast(resized[0, :, :, 0], rel_pos_table.dtype)
  # Scale coordinates when query and key grids differ in size.
  query_coords = (tf.range(query_size, dtype=tf.float32)[:, None] *
                  max(key_size / query_size, 1.0))
  key_coords = (tf.range(key_size, dtype=tf.float32)[None, :] *
                max(query_size / key_size, 1.0))
  offsets = (query_coords - key_coords +
             (key_size - 1) * max(query_size / key_size, 1.0))
  return tf.gather(rel_pos_table, tf.cast(offsets, tf.int32))


class RelativePositionAttention(tf_keras.layers.Layer):
  """Multi-head self-attention over a 2-D map with decomposed rel-pos bias.

  attention = softmax(q k^T / sqrt(d) + q . R_h[h_q - h_k] + q . R_w[w_q - w_k])
  (ViTDet / MViTv2). The rel-pos tables start at zero (ViTDet default), so
  the block starts as plain attention.
  """

  def __init__(self, hidden_size: int, num_heads: int, use_rel_pos: bool,
               rel_pos_table_size: int, kernel_initializer='glorot_uniform',
               kernel_regularizer=None, **kwargs):
    """Initialises the layer.

    Args:
      hidden_size: channels C (in and out).
      num_heads: attention heads; C must be divisible by it.
      use_rel_pos: add the decomposed relative position bias.
      rel_pos_table_size: grid side S the tables are stored for; each table
        has 2 * S - 1 rows and is resized when the map side differs.
      kernel_initializer: initializer of the projections.
      kernel_regularizer: regularizer of the projections.
      **kwargs: tf_keras.layers.Layer arguments.
    """
    super().__init__(**kwargs)
    if hidden_size % num_heads:
      raise ValueError(f'hidden_size {hidden_size} is not divisible by '
                       f'num_heads {num_heads}.')
    self._hidden_size = hidden_size
    self._num_heads = num_heads
    self._use_rel_pos = use_rel_pos
    self._rel_pos_table_size = rel_pos_table_size
    self._kernel_initializer = kernel_initializer
    self._kernel_regularizer = kernel_regularizer
    self._head_dim = hidden_size // num_heads
    self.qkv = tf_keras.layers.Dense(
        3 * hidden_size, kernel_initializer=kernel_initializer,
        kernel_regularizer=kernel_regularizer, name='qkv')
    self.proj = tf_keras.layers.Dense(
        hidden_size, kernel_initializer=kernel_initializer,
        kernel_regularizer=kernel_regularizer, name='proj')

  def build(self, input_shape):
    if self._use_rel_pos:
      table_shape = [2 * self._rel_pos_table_size - 1, self._head_dim]
      self.rel_pos_h = self.add_weight(
          'rel_pos_h', shape=table_shape, initializer='zeros')
      self.rel_pos_w = self.add_weight(
          'rel_pos_w', shape=table_shape, initializer='zeros')
    super().build(input_shape)

  def call(self, features: tf.Tensor) -> tf.Tensor:
    """Attends over all positions of each map.

    Args:
      features: [B, H, W, C] with static H, W.

    Returns:
      [B, H, W, C].
    """
    _, height, width, _ = features.shape
    num_tokens = height * width
    qkv = tf.reshape(self.qkv(features),
                     [-1, num_tokens, 3, self._num_heads, self._head_dim])
    qkv = tf.transpose(qkv, [2, 0, 3, 1, 4])  # [3, B, heads, HW, d]
    query, key, value = qkv[0], qkv[1], qkv[2]
    logits = tf.einsum('bnqd,bnkd->bnqk', query * (self._head_dim ** -0.5),
                       key)
    if self._use_rel_pos:
      rel_h = relative_position_embeddings(
          tf.cast(self.rel_pos_h, query.dtype), height, height)
      rel_w = relative_position_embeddings(
          tf.cast(self.rel_pos_w, query.dtype), width, width)
      grid_query = tf.reshape(
          query, [-1, self._num_heads, height, width, self._head_dim])
      bias_h = tf.einsum('bnhwd,hkd->bnhwk', grid_query, rel_h)
      bias_w = tf.einsum('bnhwd,wkd->bnhwk', grid_query, rel_w)
      logits = tf.reshape(
          logits, [-1, self._num_heads, height, width, height, width])
      logits += bias_h[..., :, None] + bias_w[..., None, :]
      logits = tf.reshape(
          logits, [-1, self._num_heads, num_tokens, num_tokens])
    # Softmax in float32: bfloat16 sums over thousands of keys lose mass.
    weights = tf.cast(tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1),
                      value.dtype)
    attended = tf.einsum('bnqk,bnkd->bqnd', weights, value)
    attended = tf.reshape(attended, [-1, height, width, self._hidden_size])
    return self.proj(attended)

  def get_config(self):
    config = super().get_config()
    config.update(
        hidden_size=self._hidden_size, num_heads=self._num_heads,
        use_rel_pos=self._use_rel_pos,
        rel_pos_table_size=self._rel_pos_table_size,
        kernel_initializer=self._kernel_initializer,
        kernel_regularizer=tf_keras.regularizers.serialize(
            self._kernel_regularizer) if self._kernel_regularizer else None)
    return config


def gelu(features: tf.Tensor) -> tf.Tensor:
  """Exact (erf) GELU, as in ViT / ViTDet."""
  return tf.nn.gelu(features, approximate=False)

