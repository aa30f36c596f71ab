"""Plain-FPN pixel decoder (DaTaSeg replaces Mask2Former's deformable one).

Model Garden's `fpn.FPN` over levels 2..5 fuses the backbone pyramid; 1x1
projections then give (a) the stride-32/16/8 features, `hidden_size` wide,
that the transformer decoder attends to round-robin, and (b) the stride-4
per-pixel embedding map, `mask_embedding_dim` wide.
"""
from typing import Dict, Mapping

import tensorflow as tf, tf_keras

from official.vision.modeling.decoders import fpn

# Decoder attention order of the pyramid levels: strides 32, 16, 8.
ATTENTION_LEVELS = ('5', '4', '3')
MASK_FEATURE_LEVEL = '2'
MULTI_SCALE_FEATURES = 'multi_scale_features'
MASK_FEATURES = 'mask_features'


class PixelDecoder(tf_keras.layers.Layer):
  """FPN + projections to decoder memory and per-pixel mask embeddings."""

  def __init__(self, input_specs: Mapping[str, tf.TensorShape],
               num_filters: int = 256, hidden_size: int = 256,
               mask_embedding_dim: int = 256, activation: str = 'relu',
               use_sync_bn: bool = False, norm_momentum: float = 0.99,
               norm_epsilon: float = 0.001, kernel_regularizer=None,
               **kwargs):
    """Initialises the decoder.

    Args:
      input_specs: backbone `output_specs`, levels '2'..'5' at least.
      num_filters: FPN channels.
      hidden_size: transformer-decoder channels.
      mask_embedding_dim: per-pixel embedding channels.
      activation: FPN activation.
      use_sync_bn: FPN sync batch norm.
      norm_momentum: FPN batch-norm momentum.
      norm_epsilon: FPN batch-norm epsilon.
      kernel_regularizer: kernel regularizer.
      **kwargs: tf_keras.layers.Layer arguments.

    Raises:
      ValueError: a level in 2..5 is missing from `input_specs`.
    """
    super().__init__(**kwargs)
    missing = [l for l in ('2', '3', '4', '5') if l not in input_specs]
    if missing:
      raise ValueError(f'PixelDecoder input_specs: levels {missing} missing; '
                       f'got {sorted(input_specs)}.')
    self._config_dict = dict(
        input_specs=input_specs, num_filters=num_filters,
        hidden_size=hidden_size, mask_embedding_dim=mask_embedding_dim,
        activation=activation, use_sync_bn=use_sync_bn,
        norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
        kernel_regularizer=kernel_regularizer)
    self.fpn = fpn.FPN(
        input_specs={l: input_specs[l] for l in ('2', '3', '4', '5')},
        min_level=2, max_level=5, num_filters=num_filters,
        activation=activation, use_sync_bn=use_sync_bn,
        norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
        kernel_regularizer=kernel_regularizer, name='fpn')
    self.memory_projections = {
        level: tf_keras.layers.Conv2D(
            hidden_size, 1, kernel_regularizer=kernel_regularizer,
            name=f'memory_projection_{level}') for level in ATTENTION_LEVELS}
    self.mask_projection = tf_keras.layers.Conv2D(
        mask_embedding_dim, 1, kernel_regularizer=kernel_regularizer,
        name='mask_projection')

  def call(self, backbone_features: Mapping[str, tf.Tensor],
           training=None) -> Dict[str, tf.Tensor]:
    """Decodes the backbone pyramid.

    Args:
      backbone_features: {'2'..'5': [B, H/2^l, W/2^l, C_l]}.
      training: batch-norm mode.

    Returns:
      {MULTI_SCALE_FEATURES: [stride-32, stride-16, stride-8 maps, each
       [B, h, w, hidden_size]], MASK_FEATURES: [B, H/4, W/4, E]}.
    """
    fused = self.fpn({l: backbone_features[l] for l in ('2', '3', '4', '5')},
                     training=training)
    return {
        MULTI_SCALE_FEATURES: [self.memory_projections[l](fused[l])
                               for l in ATTENTION_LEVELS],
        MASK_FEATURES: self.mask_projection(fused[MASK_FEATURE_LEVEL]),
    }

  def get_config(self):
    config = super().get_config()
    config.update(self._config_dict)
    return config
