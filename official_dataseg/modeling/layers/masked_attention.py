"""Mask2Former decoder sub-layers: masked cross-attention, self-attention, FFN.

All three are post-norm (residual, then LayerNorm) as in Mask2Former, and use
tf_keras' MultiHeadAttention (q/k/v/output projections with biases).
"""
from typing import Optional, Sequence

import tensorflow as tf, tf_keras

from official.projects.detr.modeling import detr


def attention_mask_from_mask_logits(mask_logits: tf.Tensor,
                                    target_hw: Sequence[int]) -> tf.Tensor:
  """Mask2Former's attention mask from the previous layer's mask prediction.

  A query may attend to a pixel where its resized mask logit is > 0
  (probability > 0.5). A query whose resized mask is empty attends everywhere,
  so its attention is never all -inf.

  Args:
    mask_logits: [B, N, H, W] float mask logits.
    target_hw: (h, w) of the features the next layer attends to.

  Returns:
    [B, N, h * w] bool, True where attention is allowed.
  """
  num_queries = mask_logits.shape[1]
  # Gradients do not flow through the attention mask (Mask2Former detaches).
  resized = tf.image.resize(
      tf.transpose(tf.stop_gradient(tf.cast(mask_logits, tf.float32)),
                   [0, 2, 3, 1]), target_hw, method='bilinear')
  allowed = tf.reshape(tf.transpose(resized, [0, 3, 1, 2]) > 0.0,
                       [-1, num_queries, target_hw[0] * target_hw[1]])
  empty = tf.logical_not(tf.reduce_any(allowed, axis=-1, keepdims=True))
  return tf.logical_or(allowed, empty)


def sine_position_encoding(height: int, width: int,
                           hidden_size: int) -> tf.Tensor:
  """DETR / Mask2Former sine encoding of a full (unpadded) map.

  Args:
    height: map height.
    width: map width.
    hidden_size: encoding channels (even).

  Returns:
    [1, height * width, hidden_size] float32, row-major positions.
  """
  encoding = detr.position_embedding_sine(
      tf.ones([1, height, width], tf.bool), num_pos_features=hidden_size)
  return tf.reshape(encoding, [1, height * width, hidden_size])


class _AttentionSubLayer(tf_keras.layers.Layer):
  """Shared constructor of the two attention sub-layers."""

  def __init__(self, hidden_size: int, num_heads: int, dropout_rate: float,
               kernel_regularizer=None, **kwargs):
    super().__init__(**kwargs)
    self._hidden_size = hidden_size
    self._num_heads = num_heads
    self._dropout_rate = dropout_rate
    self._kernel_regularizer = kernel_regularizer
    self.attention = tf_keras.layers.MultiHeadAttention(
        num_heads, hidden_size // num_heads, dropout=dropout_rate,
        kernel_regularizer=kernel_regularizer, name='attention')
    self.dropout = tf_keras.layers.Dropout(dropout_rate)
    self.norm = tf_keras.layers.LayerNormalization(epsilon=1e-5, name='norm')

  def get_config(self):
    config = super().get_config()
    config.update(
        hidden_size=self._hidden_size, num_heads=self._num_heads,
        dropout_rate=self._dropout_rate,
        kernel_regularizer=tf_keras.regularizers.serialize(
            self._kernel_regularizer) if self._kernel_regularizer else None)
    return config


class MaskedCrossAttention(_AttentionSubLayer):
  """Queries attend to image features, restricted by an attention mask."""

  def call(self, queries: tf.Tensor, query_pos: tf.Tensor,
           memory: tf.Tensor, memory_pos: tf.Tensor,
           attention_mask: Optional[tf.Tensor] = None,
           training=None) -> tf.Tensor:
    """Runs masked cross-attention + residual + LayerNorm.

    Args:
      queries: [B, Q, C] query features.
      query_pos: [B or 1, Q, C] query positional embeddings.
      memory: [B, S, C] flattened image features (S = h * w).
      memory_pos: [B or 1, S, C] pixel positional encodings.
      attention_mask: [B, Q, S] bool, True = may attend; None = everywhere.
      training: enables dropout.

    Returns:
      [B, Q, C].
    """
    attended = self.attention(
        query=queries + tf.cast(query_pos, queries.dtype),
        key=memory + tf.cast(memory_pos, memory.dtype), value=memory,
        attention_mask=attention_mask, training=training)
    return self.norm(queries + self.dropout(attended, training=training))


class SelfAttention(_AttentionSubLayer):
  """Queries attend to each other (all pairs)."""

  def call(self, queries: tf.Tensor, query_pos: tf.Tensor,
           training=None) -> tf.Tensor:
    """Runs self-attention + residual + LayerNorm.

    Args:
      queries: [B, Q, C].
      query_pos: [B or 1, Q, C].
      training: enables dropout.

    Returns:
      [B, Q, C].
    """
    with_pos = queries + tf.cast(query_pos, queries.dtype)
    attended = self.attention(query=with_pos, key=with_pos, value=queries,
                              training=training)
    return self.norm(queries + self.dropout(attended, training=training))


class FeedForward(tf_keras.layers.Layer):
  """Linear-ReLU-Linear + residual + LayerNorm."""

  def __init__(self, hidden_size: int, ffn_dim: int, dropout_rate: float,
               kernel_regularizer=None, **kwargs):
    super().__init__(**kwargs)
    self._hidden_size = hidden_size
    self._ffn_dim = ffn_dim
    self._dropout_rate = dropout_rate
    self._kernel_regularizer = kernel_regularizer
    self.linear1 = tf_keras.layers.Dense(
        ffn_dim, activation='relu', kernel_regularizer=kernel_regularizer,
        name='linear1')
    self.linear2 = tf_keras.layers.Dense(
        hidden_size, kernel_regularizer=kernel_regularizer, name='linear2')
    self.dropout = tf_keras.layers.Dropout(dropout_rate)
    self.norm = tf_keras.layers.LayerNormalization(epsilon=1e-5, name='norm')

  def call(self, queries: tf.Tensor, training=None) -> tf.Tensor:
    """Args: queries [B, Q, C]. Returns [B, Q, C]."""
    hidden = self.dropout(self.linear1(queries), training=training)
    return self.norm(queries + self.dropout(self.linear2(hidden),
                                            training=training))

  def get_config(self):
    config = super().get_config()
    config.update(
        hidden_size=self._hidden_size, ffn_dim=self._ffn_dim,
        dropout_rate=self._dropout_rate,
        kernel_regularizer=tf_keras.regularizers.serialize(
            self._kernel_regularizer) if self._kernel_regularizer else None)
    return config
