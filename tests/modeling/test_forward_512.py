"""Paper-size models (default decoder) at 512x512, batch 1: shapes and XLA."""
import numpy as np
import pytest
import tensorflow as tf, tf_keras

from official_dataseg import common
from official_dataseg.configs import model as model_config
from official_dataseg.modeling import factory

SIZE = 512
NUM_CLASSES = 10


def _build(backbone_id):
  config = model_config.DataSegModel(input_size=[SIZE, SIZE, 3])
  if backbone_id != 'r50':
    config.backbone = model_config.Backbone(
        type='vitdet', vitdet=model_config.ViTDet(model_id=backbone_id))
  config.norm_activation.use_sync_bn = False
  return factory.build_dataseg_model(
      tf_keras.layers.InputSpec(shape=[1, SIZE, SIZE, 3]), config,
      num_datasets=3)


def _inputs():
  return {
      common.IMAGE: tf.random.normal([1, SIZE, SIZE, 3], seed=0),
      common.CLASS_EMBEDDINGS: tf.random.normal([NUM_CLASSES, 384], seed=1),
      common.CLASS_VALID: tf.ones([NUM_CLASSES], tf.bool),
  }


def _check(outputs):
  # 9 decoder layers, batch 1, 100 queries, stride 4; C + 1 classes.
  assert outputs[common.MASK_LOGITS].shape == (9, 1, 100, 128, 128)
  assert outputs[common.CLASS_LOGITS].shape == (9, 1, 100, NUM_CLASSES + 1)
  assert np.isfinite(outputs[common.MASK_LOGITS].numpy()).all()
  assert np.isfinite(outputs[common.CLASS_LOGITS].numpy()).all()


@pytest.mark.slow
@pytest.mark.parametrize('backbone_id', ['r50', 'vit-b'])
def test_forward_512_under_xla(backbone_id):
  model = _build(backbone_id)
  compiled = tf.function(lambda x: model(x, training=False), jit_compile=True)
  _check(compiled(_inputs()))


@pytest.mark.slow
def test_forward_512_vit_l():
  model = _build('vit-l')
  _check(model(_inputs(), training=False))
  # ViTDet-L backbone: ViT-L/16 trunk + pyramid + rel-pos tables.
  assert 310e6 < model.backbone.count_params() < 312e6
