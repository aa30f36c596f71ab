"""Builds the DaTaSeg model from `configs.model.DataSegModel`."""
from typing import Optional

import tensorflow as tf, tf_keras

from official.vision.modeling.backbones import factory as backbone_factory
from official_dataseg.configs import model as model_config_lib
from official_dataseg.modeling import dataseg_model
from official_dataseg.modeling.backbones import vitdet  # pylint: disable=unused-import  (registers 'vitdet')
from official_dataseg.modeling.decoders import pixel_decoder
from official_dataseg.modeling.decoders import transformer_decoder
from official_dataseg.modeling.heads import prediction_heads


def build_dataseg_model(
    input_specs: tf_keras.layers.InputSpec,
    model_config: model_config_lib.DataSegModel,
    num_datasets: int,
    l2_regularizer: Optional[tf_keras.regularizers.Regularizer] = None,
) -> dataseg_model.DataSegModel:
  """Builds a `DataSegModel`.

  Args:
    input_specs: image spec [B, H, W, 3]; H, W static multiples of 32 for
      ViTDet (ResNet also accepts None).
    model_config: the model config.
    num_datasets: number of training datasets (weight sets of the
      dataset-specific modules; the default model ignores it).
    l2_regularizer: optional kernel regularizer.

  Returns:
    The model (unbuilt decoder weights are created on the first call).

  Raises:
    ValueError: num_datasets < 1.
  """
  if num_datasets < 1:
    raise ValueError(f'num_datasets must be >= 1, got {num_datasets}.')
  norm = model_config.norm_activation
  backbone = backbone_factory.build_backbone(
      input_specs=input_specs, backbone_config=model_config.backbone,
      norm_activation_config=norm, l2_regularizer=l2_regularizer)
  decoder_config = model_config.transformer_decoder
  head_config = model_config.classifier_head
  specific = model_config.dataset_specific
  pixel = pixel_decoder.PixelDecoder(
      input_specs=backbone.output_specs,
      num_filters=model_config.pixel_decoder.num_filters,
      hidden_size=decoder_config.hidden_size,
      mask_embedding_dim=model_config.pixel_decoder.mask_embedding_dim,
      activation=norm.activation, use_sync_bn=norm.use_sync_bn,
      norm_momentum=norm.norm_momentum, norm_epsilon=norm.norm_epsilon,
      kernel_regularizer=l2_regularizer, name='pixel_decoder')
  decoder = transformer_decoder.TransformerDecoder(
      num_layers=decoder_config.num_layers,
      hidden_size=decoder_config.hidden_size,
      num_heads=decoder_config.num_heads, ffn_dim=decoder_config.ffn_dim,
      num_queries=decoder_config.num_queries,
      dropout_rate=decoder_config.dropout_rate,
      num_levels=len(pixel_decoder.ATTENTION_LEVELS),
      mask_embedding_dim=model_config.pixel_decoder.mask_embedding_dim,
      text_embedding_dim=head_config.text_embedding_dim,
      num_mask_mlp_layers=head_config.num_mask_mlp_layers,
      num_class_mlp_layers=head_config.num_class_mlp_layers,
      num_datasets=num_datasets,
      num_queries_per_dataset=specific.num_queries_per_dataset,
      dataset_specific_class_head=specific.class_head,
      kernel_regularizer=l2_regularizer, name='transformer_decoder')
  classifier = prediction_heads.TextEmbeddingClassifier(
      embedding_dim=head_config.text_embedding_dim,
      num_backgrounds=num_datasets if specific.background else 1,
      temperature=head_config.temperature,
      learnable_temperature=head_config.learnable_temperature,
      max_logit_scale=head_config.max_logit_scale,
      invalid_class_logit=head_config.invalid_class_logit, name='classifier')
  return dataseg_model.DataSegModel(
      backbone=backbone, pixel_decoder=pixel,
      transformer_decoder=decoder, classifier=classifier)
