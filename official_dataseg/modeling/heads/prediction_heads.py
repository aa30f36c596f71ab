"""Per-layer prediction heads and the text-embedding (open-vocabulary) classifier.

Each decoder layer has its own `PredictionHead`: a mask-embedding MLP whose
output is dot-multiplied with the per-pixel embeddings (mask logits), and a
class-embedding MLP whose output is compared by cosine similarity with the
frozen text embeddings of the current vocabulary and with a learnable
background embedding (`TextEmbeddingClassifier`, shared by all layers).

Temperature (the paper does not say; interpretation): logits are cosine
similarities divided by a temperature, 0.07 by default (CLIP's initial value),
fixed unless `learnable_temperature` is set, in which case log(1/T) is learned
from that start and 1/T is clipped at `max_logit_scale` (CLIP's 100). Fixed is
the default because the vocabulary changes from step to step (one dataset per
step) and a shared learnable scale would drift with whichever dataset
dominates the sampling. The background embedding is one learnable vector
(per dataset with the appendix-E switch), shared by all decoder layers like
the text embeddings it is compared with; the MLPs are per layer.

Dataset-specific variants (appendix E) keep one weight set per dataset in a
stacked tensor and pick it with `tf.gather(weights, dataset_id)`, so the graph
is the same for every dataset. With the modules off there is one set and
`dataset_id` is ignored (index 0).
"""
import math

import tensorflow as tf, tf_keras


class StackedDense(tf_keras.layers.Layer):
  """A Dense layer with one kernel per set, chosen at call time."""

  def __init__(self, units: int, num_sets: int = 1, activation=None,
               kernel_regularizer=None, **kwargs):
    """Initialises the layer.

    Args:
      units: output channels.
      num_sets: number of weight sets (datasets).
      activation: activation name or callable.
      kernel_regularizer: kernel regularizer.
      **kwargs: tf_keras.layers.Layer arguments.
    """
    super().__init__(**kwargs)
    self._units = units
    self._num_sets = num_sets
    self._activation_name = activation
    self._activation = tf_keras.activations.get(activation)
    self._kernel_regularizer = kernel_regularizer

  def build(self, input_shape):
    fan_in = int(input_shape[-1])
    self.kernel = self.add_weight(
        'kernel', shape=[self._num_sets, fan_in, self._units],
        initializer=tf_keras.initializers.GlorotUniform(),
        regularizer=self._kernel_regularizer)
    self.bias = self.add_weight('bias', shape=[self._num_sets, self._units],
                                initializer='zeros')
    super().build(input_shape)

  def call(self, inputs: tf.Tensor, set_index: tf.Tensor) -> tf.Tensor:
    """Args: inputs [..., fan_in]; set_index int32 []. Returns [..., units]."""
    kernel = tf.cast(tf.gather(self.kernel, set_index), inputs.dtype)
    bias = tf.cast(tf.gather(self.bias, set_index), inputs.dtype)
    # A matmul over the flattened leading axes: the gradient of an einsum with a summed-out
    # ellipsis materialises a [..., fan_in, units] outer product before reducing it (16 s of a
    # 23 s ResNet-50 train step on CPU; docs/performance.md).
    return self._activation(tf.tensordot(inputs, kernel, axes=1) + bias)

  def get_config(self):
    config = super().get_config()
    config.update(
        units=self._units, num_sets=self._num_sets,
        activation=self._activation_name,
        kernel_regularizer=tf_keras.regularizers.serialize(
            self._kernel_regularizer) if self._kernel_regularizer else None)
    return config


class TextEmbeddingClassifier(tf_keras.layers.Layer):
  """Cosine-similarity classifier over an input vocabulary plus background.

  logits = [cos(e, t_1), ..., cos(e, t_C), cos(e, b)] / temperature, with
  padded vocabulary entries set to `invalid_class_logit`. The vocabulary is
  an input, not a weight. Computed in float32.
  """

  def __init__(self, embedding_dim: int, num_backgrounds: int = 1,
               temperature: float = 0.07, learnable_temperature: bool = False,
               max_logit_scale: float = 100.0,
               invalid_class_logit: float = -1e9, **kwargs):
    """Initialises the classifier.

    Args:
      embedding_dim: D, text-embedding width.
      num_backgrounds: background embeddings (datasets, or 1 if shared).
      temperature: initial / fixed temperature.
      learnable_temperature: learn log(1 / temperature).
      max_logit_scale: upper clip of 1 / temperature when learnable.
      invalid_class_logit: logit of vocabulary padding entries.
      **kwargs: tf_keras.layers.Layer arguments.
    """
    # Runs in float32 under mixed precision: logits are divided by a small
    # temperature, and bfloat16 cosines (3 digits) would be too coarse.
    kwargs.setdefault('dtype', 'float32')
    super().__init__(**kwargs)
    if temperature <= 0:
      raise ValueError(f'temperature must be > 0, got {temperature}.')
    self._embedding_dim = embedding_dim
    self._num_backgrounds = num_backgrounds
    self._temperature = temperature
    self._learnable_temperature = learnable_temperature
    self._max_logit_scale = max_logit_scale
    self._invalid_class_logit = invalid_class_logit

  def build(self, input_shape):
    self.background_embedding = self.add_weight(
        'background_embedding',
        shape=[self._num_backgrounds, self._embedding_dim],
        initializer=tf_keras.initializers.RandomNormal(stddev=0.02),
        dtype=tf.float32)
    if self._learnable_temperature:
      self.log_logit_scale = self.add_weight(
          'log_logit_scale', shape=[],
          initializer=tf_keras.initializers.Constant(
              math.log(1.0 / self._temperature)), dtype=tf.float32)
    super().build(input_shape)

  def logit_scale(self) -> tf.Tensor:
    """1 / temperature, float32 []."""
    if self._learnable_temperature:
      return tf.minimum(tf.exp(self.log_logit_scale), self._max_logit_scale)
    return tf.constant(1.0 / self._temperature, tf.float32)

  def call(self, query_embeddings: tf.Tensor, class_embeddings: tf.Tensor,
           class_valid: tf.Tensor, dataset_id: tf.Tensor) -> tf.Tensor:
    """Classifies query embeddings against the vocabulary.

    Args:
      query_embeddings: [B, N, D] (any float dtype; normalised here).
      class_embeddings: [C, D] float32 frozen text embeddings.
      class_valid: [C] bool, False for padding.
      dataset_id: int32 [], selects the background embedding when there is
        one per dataset.

    Returns:
      [B, N, C + 1] float32 logits; the last column is background.
    """
    query_embeddings = tf.math.l2_normalize(
        tf.cast(query_embeddings, tf.float32), axis=-1)
    text = tf.math.l2_normalize(tf.cast(class_embeddings, tf.float32), axis=-1)
    background_index = dataset_id if self._num_backgrounds > 1 else 0
    background = tf.math.l2_normalize(
        tf.gather(self.background_embedding, background_index), axis=-1)
    scale = self.logit_scale()
    class_logits = tf.einsum('bnd,cd->bnc', query_embeddings, text) * scale
    class_logits = tf.where(class_valid[tf.newaxis, tf.newaxis, :],
                            class_logits, self._invalid_class_logit)
    background_logits = tf.einsum('bnd,d->bn', query_embeddings,
                                  background)[..., tf.newaxis] * scale
    return tf.concat([class_logits, background_logits], axis=-1)

  def get_config(self):
    config = super().get_config()
    config.update(
        embedding_dim=self._embedding_dim,
        num_backgrounds=self._num_backgrounds,
        temperature=self._temperature,
        learnable_temperature=self._learnable_temperature,
        max_logit_scale=self._max_logit_scale,
        invalid_class_logit=self._invalid_class_logit)
    return config


class PredictionHead(tf_keras.layers.Layer):
  """One decoder layer's head: mask logits and class embeddings."""

  def __init__(self, hidden_size: int, mask_embedding_dim: int,
               text_embedding_dim: int, num_mask_mlp_layers: int = 3,
               num_class_mlp_layers: int = 3, num_class_head_sets: int = 1,
               kernel_regularizer=None, **kwargs):
    """Initialises the head.

    Args:
      hidden_size: query channels.
      mask_embedding_dim: E, channels of the per-pixel embeddings.
      text_embedding_dim: D, output width of the class-embedding MLP.
      num_mask_mlp_layers: mask-embedding MLP depth.
      num_class_mlp_layers: class-embedding MLP depth.
      num_class_head_sets: class-MLP weight sets (datasets, or 1 if shared).
      kernel_regularizer: kernel regularizer.
      **kwargs: tf_keras.layers.Layer arguments.
    """
    super().__init__(**kwargs)
    self._config_dict = dict(
        hidden_size=hidden_size, mask_embedding_dim=mask_embedding_dim,
        text_embedding_dim=text_embedding_dim,
        num_mask_mlp_layers=num_mask_mlp_layers,
        num_class_mlp_layers=num_class_mlp_layers,
        num_class_head_sets=num_class_head_sets)
    self._kernel_regularizer = kernel_regularizer
    self.norm = tf_keras.layers.LayerNormalization(epsilon=1e-5, name='norm')
    self.mask_mlp = [
        tf_keras.layers.Dense(
            mask_embedding_dim if i == num_mask_mlp_layers - 1
            else hidden_size,
            activation=None if i == num_mask_mlp_layers - 1 else 'relu',
            kernel_regularizer=kernel_regularizer, name=f'mask_mlp_{i}')
        for i in range(num_mask_mlp_layers)]
    self.class_mlp = [
        StackedDense(
            text_embedding_dim if i == num_class_mlp_layers - 1
            else hidden_size, num_sets=num_class_head_sets,
            activation=None if i == num_class_mlp_layers - 1 else 'relu',
            kernel_regularizer=kernel_regularizer, name=f'class_mlp_{i}')
        for i in range(num_class_mlp_layers)]

  def call(self, queries: tf.Tensor, mask_features: tf.Tensor,
           dataset_id: tf.Tensor):
    """Predicts masks and class embeddings.

    Args:
      queries: [B, N, hidden] decoder output (segment queries only).
      mask_features: [B, H, W, E] per-pixel embeddings.
      dataset_id: int32 [], picks the class MLP when there is one per dataset.

    Returns:
      mask_logits: [B, N, H, W] float32.
      query_embeddings: [B, N, D] float32, not normalised.
    """
    normed = self.norm(queries)
    mask_embeddings = normed
    for layer in self.mask_mlp:
      mask_embeddings = layer(mask_embeddings)
    # The final products run in float32: they feed sigmoid/softmax losses.
    mask_logits = tf.einsum('bne,bhwe->bnhw',
                            tf.cast(mask_embeddings, tf.float32),
                            tf.cast(mask_features, tf.float32))
    set_index = dataset_id if self._config_dict['num_class_head_sets'] > 1 else 0
    query_embeddings = normed
    for layer in self.class_mlp:
      query_embeddings = layer(query_embeddings, set_index)
    return mask_logits, tf.cast(query_embeddings, tf.float32)

  def get_config(self):
    config = super().get_config()
    config.update(self._config_dict)
    config['kernel_regularizer'] = (
        tf_keras.regularizers.serialize(self._kernel_regularizer)
        if self._kernel_regularizer else None)
    return config
