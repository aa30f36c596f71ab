"""ViTDet backbone: plain ViT with windowed attention and a simple pyramid.

Li et al., "Exploring Plain Vision Transformer Backbones for Object
Detection" (2022). Model Garden's ViT has no windowed attention, so it is
written here. The model is a functional tf_keras.Model like Model Garden's
ResNet: it maps an image [B, H, W, 3] to {'2', '3', '4', '5'} feature maps at
strides 4, 8, 16, 32 and exposes `output_specs`.

Weight layout follows ViTDet (MAE pre-training) so a converted checkpoint can
map one-to-one: the absolute position embedding keeps the class-token slot of
the pre-training grid ([1, 1 + G*G, C]) and drops it at run time.
"""
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf, tf_keras

from official.modeling import hyperparams
from official.vision.modeling.backbones import factory
from official.vision.modeling.layers import nn_layers
from official_dataseg.configs import model as model_config
from official_dataseg.modeling.layers import window_attention


def bicubic_resize_matrix(in_size: int, out_size: int,
                          cubic_coefficient: float = -0.75) -> np.ndarray:
  """Matrix of 1-D bicubic resizing with half-pixel centres (torch style).

  As torch's `interpolate(mode='bicubic', align_corners=False)`, which ViTDet
  uses for the absolute position embedding: Keys' cubic kernel with
  a = -0.75, taps clamped at the borders.

  Args:
    in_size: input length.
    out_size: output length.
    cubic_coefficient: a of the cubic convolution kernel.

  Returns:
    [out_size, in_size] float32 with resized = matrix @ signal.
  """
  a = cubic_coefficient
  near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1  # |x| <= 1
  far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # 1 < |x| < 2
  matrix = np.zeros([out_size, in_size], np.float32)
  for out_index in range(out_size):
    source = (out_index + 0.5) * in_size / out_size - 0.5
    base = int(np.floor(source))
    t = source - base
    weights = (far(t + 1), near(t), near(1 - t), far(2 - t))
    for offset, weight in zip((-1, 0, 1, 2), weights):
      matrix[out_index, min(max(base + offset, 0), in_size - 1)] += weight
  return matrix


class AbsolutePositionEmbedding(tf_keras.layers.Layer):
  """Adds a pre-training-grid position embedding resized to the input grid."""

  def __init__(self, pretrain_grid_size: int, **kwargs):
    """Initialises the layer.

    Args:
      pretrain_grid_size: G, the pre-training grid side (224 / 16 = 14).
      **kwargs: tf_keras.layers.Layer arguments.
    """
    super().__init__(**kwargs)
    self._pretrain_grid_size = pretrain_grid_size

  def build(self, input_shape):
    num_positions = 1 + self._pretrain_grid_size ** 2  # + class-token slot.
    self.position_embedding = self.add_weight(
        'position_embedding', shape=[1, num_positions, input_shape[-1]],
        initializer=tf_keras.initializers.TruncatedNormal(stddev=0.02))
    super().build(input_shape)

  def call(self, patches: tf.Tensor) -> tf.Tensor:
    """Adds the embedding.

    Args:
      patches: [B, h, w, C] patch embeddings (static h, w).

    Returns:
      [B, h, w, C].
    """
    _, height, width, channels = patches.shape
    grid = self._pretrain_grid_size
    embedding = tf.reshape(self.position_embedding[:, 1:],
                           [1, grid, grid, channels])
    if (height, width) != (grid, grid):
      # Separable bicubic resize as two constant matrices: XLA has no
      # ResizeBicubic kernel, and this matches torch's bicubic exactly.
      rows = tf.constant(bicubic_resize_matrix(grid, height), tf.float32)
      cols = tf.constant(bicubic_resize_matrix(grid, width), tf.float32)
      embedding = tf.einsum('hi,bijc->bhjc', rows,
                            tf.cast(embedding, tf.float32))
      embedding = tf.einsum('bhjc,wj->bhwc', embedding, cols)
    return patches + tf.cast(embedding, patches.dtype)

  def get_config(self):
    config = super().get_config()
    config.update(pretrain_grid_size=self._pretrain_grid_size)
    return config


class ViTBlock(tf_keras.layers.Layer):
  """Pre-norm transformer block with windowed or global attention."""

  def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float,
               window_size: int, use_rel_pos: bool, rel_pos_grid_size: int,
               drop_path_rate: float, layer_norm_epsilon: float,
               kernel_regularizer=None, **kwargs):
    """Initialises the block.

    Args:
      hidden_size: channels C.
      num_heads: attention heads.
      mlp_ratio: MLP width / C.
      window_size: window side; 0 means global attention.
      use_rel_pos: decomposed relative position bias.
      rel_pos_grid_size: table grid of a global block (windows use
        `window_size`).
      drop_path_rate: stochastic-depth rate of both residual branches.
      layer_norm_epsilon: LayerNorm epsilon.
      kernel_regularizer: regularizer of the dense kernels.
      **kwargs: tf_keras.layers.Layer arguments.
    """
    super().__init__(**kwargs)
    self._config = dict(
        hidden_size=hidden_size, num_heads=num_heads, mlp_ratio=mlp_ratio,
        window_size=window_size, use_rel_pos=use_rel_pos,
        rel_pos_grid_size=rel_pos_grid_size, drop_path_rate=drop_path_rate,
        layer_norm_epsilon=layer_norm_epsilon)
    self._kernel_regularizer = kernel_regularizer
    self._window_size = window_size
    self.norm1 = tf_keras.layers.LayerNormalization(
        epsilon=layer_norm_epsilon, name='norm1')
    self.attention = window_attention.RelativePositionAttention(
        hidden_size, num_heads, use_rel_pos,
        rel_pos_table_size=window_size or rel_pos_grid_size,
        kernel_regularizer=kernel_regularizer, name='attention')
    self.norm2 = tf_keras.layers.LayerNormalization(
        epsilon=layer_norm_epsilon, name='norm2')
    self.mlp_fc1 = tf_keras.layers.Dense(
        int(hidden_size * mlp_ratio), activation=window_attention.gelu,
        kernel_regularizer=kernel_regularizer, name='mlp_fc1')
    self.mlp_fc2 = tf_keras.layers.Dense(
        hidden_size, kernel_regularizer=kernel_regularizer, name='mlp_fc2')
    self.drop_path = nn_layers.StochasticDepth(drop_path_rate)

  def call(self, features: tf.Tensor, training=None) -> tf.Tensor:
    """Runs the block.

    Args:
      features: [B, h, w, C] (static h, w).
      training: enables drop-path.

    Returns:
      [B, h, w, C].
    """
    shortcut = features
    normed = self.norm1(features)
    if self._window_size:
      height, width = normed.shape[1:3]
      windows, padded_hw = window_attention.window_partition(
          normed, self._window_size)
      attended = window_attention.window_unpartition(
          self.attention(windows), self._window_size, padded_hw,
          (height, width))
    else:
      attended = self.attention(normed)
    features = shortcut + self.drop_path(attended, training=training)
    mlp_out = self.mlp_fc2(self.mlp_fc1(self.norm2(features)))
    return features + self.drop_path(mlp_out, training=training)

  def get_config(self):
    config = super().get_config()
    config.update(self._config)
    config['kernel_regularizer'] = (
        tf_keras.regularizers.serialize(self._kernel_regularizer)
        if self._kernel_regularizer else None)
    return config


def _pyramid_output_convs(features, filters, epsilon, regularizer, name):
  """1x1 conv + LN, then 3x3 conv + LN (ViTDet's simple-pyramid outputs)."""
  features = tf_keras.layers.Conv2D(
      filters, 1, use_bias=False, kernel_regularizer=regularizer,
      name=f'{name}_conv1x1')(features)
  features = tf_keras.layers.LayerNormalization(
      epsilon=epsilon, name=f'{name}_norm1x1')(features)
  features = tf_keras.layers.Conv2D(
      filters, 3, padding='same', use_bias=False,
      kernel_regularizer=regularizer, name=f'{name}_conv3x3')(features)
  return tf_keras.layers.LayerNormalization(
      epsilon=epsilon, name=f'{name}_norm3x3')(features)


class ViTDet(tf_keras.Model):
  """ViTDet backbone returning {'2','3','4','5'} maps of `pyramid_filters`.

  Keys are log2 of the stride: '2'..'5' for 16-pixel patches (a patch of P
  gives levels log2(P) - 2 .. log2(P) + 1).
  """

  def __init__(self,
               input_specs: tf_keras.layers.InputSpec = tf_keras.layers
               .InputSpec(shape=[None, 1024, 1024, 3]),
               patch_size: int = 16,
               num_layers: int = 12,
               hidden_size: int = 768,
               num_heads: int = 12,
               mlp_ratio: float = 4.0,
               global_attention_indices: Sequence[int] = (2, 5, 8, 11),
               window_size: int = 14,
               drop_path_rate: float = 0.1,
               use_rel_pos: bool = True,
               rel_pos_grid_size: int = 64,
               use_abs_pos: bool = True,
               pretrain_image_size: int = 224,
               pyramid_filters: int = 256,
               layer_norm_epsilon: float = 1e-6,
               kernel_regularizer: Optional[
                   tf_keras.regularizers.Regularizer] = None,
               **kwargs):
    """Builds the backbone; see `configs.model.ViTDet` for the arguments.

    Args:
      input_specs: image spec [B, H, W, 3]; H and W must be static multiples
        of 2 * patch_size (the stride-32 level max-pools the stride-16 map).
      patch_size: patch stride.
      num_layers: transformer blocks.
      hidden_size: channels.
      num_heads: attention heads.
      mlp_ratio: MLP width / channels.
      global_attention_indices: 0-based global-attention blocks.
      window_size: attention window side of the other blocks.
      drop_path_rate: stochastic depth of the last block (linear from 0).
      use_rel_pos: decomposed relative position bias.
      rel_pos_grid_size: stored table grid of the global blocks.
      use_abs_pos: absolute position embedding.
      pretrain_image_size: image size of the absolute embedding grid.
      pyramid_filters: channels of every output level.
      layer_norm_epsilon: LayerNorm epsilon.
      kernel_regularizer: regularizer of all kernels.
      **kwargs: tf_keras.Model arguments.

    Raises:
      ValueError: non-static or non-divisible input size, bad block index.
    """
    height, width = input_specs.shape[1:3]
    if (height is None or width is None or height % (2 * patch_size) or
        width % (2 * patch_size)):
      raise ValueError(
          f'ViTDet input_specs: expected static H, W divisible by '
          f'{2 * patch_size}, got {input_specs.shape}.')
    if patch_size < 4 or patch_size & (patch_size - 1):
      raise ValueError(f'ViTDet patch_size: expected a power of 2 >= 4, got '
                       f'{patch_size}.')
    bad = [i for i in global_attention_indices if not 0 <= i < num_layers]
    if bad:
      raise ValueError(f'ViTDet global_attention_indices {bad} are outside '
                       f'0..{num_layers - 1}.')
    self._config_dict = dict(
        input_specs=input_specs, patch_size=patch_size, num_layers=num_layers,
        hidden_size=hidden_size, num_heads=num_heads, mlp_ratio=mlp_ratio,
        global_attention_indices=list(global_attention_indices),
        window_size=window_size, drop_path_rate=drop_path_rate,
        use_rel_pos=use_rel_pos, rel_pos_grid_size=rel_pos_grid_size,
        use_abs_pos=use_abs_pos, pretrain_image_size=pretrain_image_size,
        pyramid_filters=pyramid_filters,
        layer_norm_epsilon=layer_norm_epsilon,
        kernel_regularizer=kernel_regularizer)

    inputs = tf_keras.Input(shape=input_specs.shape[1:],
                            batch_size=input_specs.shape[0])
    features = tf_keras.layers.Conv2D(
        hidden_size, patch_size, strides=patch_size,
        kernel_regularizer=kernel_regularizer, name='patch_embed')(inputs)
    if use_abs_pos:
      features = AbsolutePositionEmbedding(
          pretrain_image_size // patch_size, name='abs_pos')(features)
    for index in range(num_layers):
      features = ViTBlock(
          hidden_size, num_heads, mlp_ratio,
          window_size=0 if index in global_attention_indices else window_size,
          use_rel_pos=use_rel_pos, rel_pos_grid_size=rel_pos_grid_size,
          drop_path_rate=drop_path_rate * index / max(num_layers - 1, 1),
          layer_norm_epsilon=layer_norm_epsilon,
          kernel_regularizer=kernel_regularizer,
          name=f'block_{index}')(features)

    # Simple feature pyramid from the single stride-16 map.
    deconv = lambda filters, name: tf_keras.layers.Conv2DTranspose(  # pylint: disable=g-long-lambda
        filters, 2, strides=2, kernel_regularizer=kernel_regularizer,
        name=name)
    stride4 = deconv(hidden_size // 2, 'pyramid_2_deconv1')(features)
    stride4 = tf_keras.layers.LayerNormalization(
        epsilon=layer_norm_epsilon, name='pyramid_2_norm')(stride4)
    stride4 = tf_keras.layers.Activation(
        window_attention.gelu, name='pyramid_2_gelu')(stride4)
    stride4 = deconv(hidden_size // 4, 'pyramid_2_deconv2')(stride4)
    stride8 = deconv(hidden_size // 2, 'pyramid_3_deconv')(features)
    stride32 = tf_keras.layers.MaxPool2D(2, 2, name='pyramid_5_pool')(features)
    # Level = log2(stride); '2'..'5' for the standard 16-pixel patches.
    patch_level = patch_size.bit_length() - 1
    endpoints = {}
    for offset, level_features in ((-2, stride4), (-1, stride8),
                                   (0, features), (1, stride32)):
      level = str(patch_level + offset)
      endpoints[level] = _pyramid_output_convs(
          level_features, pyramid_filters, layer_norm_epsilon,
          kernel_regularizer, f'pyramid_{level}')
    self._output_specs = {l: endpoints[l].get_shape() for l in endpoints}
    super().__init__(inputs=inputs, outputs=endpoints, **kwargs)

  @property
  def output_specs(self):
    """{level: TensorShape [B, H/2^level, W/2^level, pyramid_filters]}."""
    return self._output_specs

  def get_config(self):
    return dict(self._config_dict)

  @classmethod
  def from_config(cls, config, custom_objects=None):
    return cls(**config)


@factory.register_backbone_builder('vitdet')
def build_vitdet(input_specs: tf_keras.layers.InputSpec,
                 backbone_config: hyperparams.Config,
                 norm_activation_config: hyperparams.Config,
                 l2_regularizer: Optional[
                     tf_keras.regularizers.Regularizer] = None) -> ViTDet:
  """Builds ViTDet from a `configs.model.Backbone` with type 'vitdet'.

  `norm_activation_config` is unused: ViTDet uses LayerNorm and GELU.
  """
  del norm_activation_config
  if backbone_config.type != 'vitdet':
    raise ValueError(f'Backbone type: expected vitdet, got '
                     f'{backbone_config.type!r}.')
  config = backbone_config.get()
  sizes = model_config.resolve_vit_sizes(config)
  return ViTDet(
      input_specs=input_specs,
      patch_size=config.patch_size,
      mlp_ratio=config.mlp_ratio,
      window_size=config.window_size,
      use_rel_pos=config.use_rel_pos,
      rel_pos_grid_size=config.rel_pos_grid_size,
      use_abs_pos=config.use_abs_pos,
      pretrain_image_size=config.pretrain_image_size,
      pyramid_filters=config.pyramid_filters,
      layer_norm_epsilon=config.layer_norm_epsilon,
      kernel_regularizer=l2_regularizer,
      **sizes)
