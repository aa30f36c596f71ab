"""Factory: config -> model; ResNet-50 is Model Garden's, unchanged."""
import tensorflow as tf, tf_keras

from official.vision.modeling.backbones import resnet
from official_dataseg import common
from official_dataseg.configs import model as model_config
from official_dataseg.modeling import factory


def test_resnet50_backbone_is_model_gardens():
  config = model_config.DataSegModel()  # Paper default: ResNet-50.
  config.norm_activation.use_sync_bn = False
  model = factory.build_dataseg_model(
      tf_keras.layers.InputSpec(shape=[None, 1024, 1024, 3]), config,
      num_datasets=3)
  reference = resnet.ResNet(model_id=50)
  assert isinstance(model.backbone, resnet.ResNet)
  # Counted without any forward pass (the functional backbone is built).
  assert model.backbone.count_params() == reference.count_params()
  assert 23.5e6 < reference.count_params() < 23.6e6


def test_paper_defaults():
  config = model_config.DataSegModel()
  decoder = config.transformer_decoder
  assert (decoder.num_layers, decoder.hidden_size, decoder.num_heads,
          decoder.ffn_dim, decoder.num_queries) == (9, 256, 8, 2048, 100)
  assert config.classifier_head.text_embedding_dim == 384
  assert config.dataset_specific.num_queries_per_dataset == 0
  assert not config.dataset_specific.class_head
  assert not config.dataset_specific.background
  sizes = model_config.resolve_vit_sizes(model_config.ViTDet(model_id='vit-l'))
  assert sizes['global_attention_indices'] == [5, 11, 17, 23]
  assert (sizes['num_layers'], sizes['hidden_size'],
          sizes['num_heads']) == (24, 1024, 16)


def test_tiny_config_builds_and_runs():
  config = model_config.tiny_model_config()
  model = factory.build_dataseg_model(
      tf_keras.layers.InputSpec(shape=[None, 128, 128, 3]), config, 3)
  outputs = model({common.IMAGE: tf.zeros([1, 128, 128, 3]),
                   common.CLASS_EMBEDDINGS: tf.ones([4, 384]),
                   common.CLASS_VALID: tf.ones([4], tf.bool)})
  assert outputs[common.MASK_LOGITS].shape == (6, 1, 16, 32, 32)
  assert outputs[common.CLASS_LOGITS].shape == (6, 1, 16, 5)
