"""The DaTaSeg network: backbone -> FPN pixel decoder -> masked-attention decoder.

Contract (relied on by the Task and the losses):
  inputs:  {IMAGE: [B, H, W, 3] float32 (H, W multiples of 32),
            CLASS_EMBEDDINGS: [C, D] float32 (frozen text embeddings, padded),
            CLASS_VALID: [C] bool,
            DATASET_ID: [] int32 (optional, default 0)}
  outputs: {MASK_LOGITS: [L, B, N, H/4, W/4] float32,
            CLASS_LOGITS: [L, B, N, C + 1] float32 (last = background)}
L = decoder layers (deep supervision), N = queries.
"""
from typing import Any, Dict, Mapping

import tensorflow as tf, tf_keras

from official_dataseg import common
from official_dataseg.modeling.decoders import pixel_decoder as pixel_decoder_lib
from official_dataseg.modeling.decoders import transformer_decoder as transformer_decoder_lib


class DataSegModel(tf_keras.Model):
  """Universal multi-dataset segmentation model with a text classifier."""

  def __init__(self, backbone: tf_keras.Model,
               pixel_decoder: tf_keras.layers.Layer,
               transformer_decoder: tf_keras.layers.Layer,
               classifier: tf_keras.layers.Layer, **kwargs):
    """Initialises the model.

    Args:
      backbone: maps [B, H, W, 3] to {'2'..'5'} features (Model Garden style).
      pixel_decoder: `pixel_decoder.PixelDecoder`.
      transformer_decoder: `transformer_decoder.TransformerDecoder`.
      classifier: `prediction_heads.TextEmbeddingClassifier`, shared by all
        decoder layers.
      **kwargs: tf_keras.Model arguments.
    """
    super().__init__(**kwargs)
    self.backbone = backbone
    self.pixel_decoder = pixel_decoder
    self.transformer_decoder = transformer_decoder
    self.classifier = classifier

  def call(self, inputs: Mapping[str, tf.Tensor],
           training=None) -> Dict[str, tf.Tensor]:
    """Predicts masks and classes for every decoder layer.

    Args:
      inputs: see the module docstring.
      training: batch-norm / dropout / drop-path mode.

    Returns:
      {MASK_LOGITS: [L, B, N, H/4, W/4] float32,
       CLASS_LOGITS: [L, B, N, C + 1] float32}.
    """
    for key in (common.IMAGE, common.CLASS_EMBEDDINGS, common.CLASS_VALID):
      if key not in inputs:
        raise ValueError(f'DataSegModel inputs: missing {key!r}; got '
                         f'{sorted(inputs)}.')
    images = inputs[common.IMAGE]
    if images.shape.rank != 4 or any(
        d is not None and d % 32 for d in images.shape[1:3]):
      raise ValueError(f'DataSegModel inputs[{common.IMAGE!r}]: expected '
                       f'[B, H, W, 3] with H, W multiples of 32, got '
                       f'{images.shape}.')
    dataset_id = tf.cast(inputs.get(common.DATASET_ID, 0), tf.int32)

    backbone_features = self.backbone(images, training=training)
    decoded = self.pixel_decoder(backbone_features, training=training)
    predictions = self.transformer_decoder(
        decoded[pixel_decoder_lib.MULTI_SCALE_FEATURES],
        decoded[pixel_decoder_lib.MASK_FEATURES], dataset_id,
        training=training)

    query_embeddings = predictions[transformer_decoder_lib.QUERY_EMBEDDINGS]
    num_layers, _, num_queries, width = query_embeddings.shape
    class_logits = self.classifier(
        tf.reshape(query_embeddings, [-1, num_queries, width]),
        inputs[common.CLASS_EMBEDDINGS],
        tf.cast(inputs[common.CLASS_VALID], tf.bool), dataset_id)
    class_logits = tf.reshape(
        class_logits,
        tf.concat([[num_layers], tf.shape(query_embeddings)[1:2],
                   [num_queries, -1]], axis=0))
    return {
        common.MASK_LOGITS: tf.cast(
            predictions[transformer_decoder_lib.MASK_LOGITS], tf.float32),
        common.CLASS_LOGITS: tf.cast(class_logits, tf.float32),
    }

  @property
  def checkpoint_items(self) -> Dict[str, tf.Module]:
    """Sub-modules Model Garden's trainer checkpoints / init_checkpoint reads."""
    return dict(backbone=self.backbone)

  def get_config(self) -> Dict[str, Any]:
    return dict(backbone=self.backbone, pixel_decoder=self.pixel_decoder,
                transformer_decoder=self.transformer_decoder,
                classifier=self.classifier)

  @classmethod
  def from_config(cls, config, custom_objects=None):
    return cls(**config)
