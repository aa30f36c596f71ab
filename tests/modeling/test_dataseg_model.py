"""DataSegModel contract on a tiny config: shapes, vocabulary, datasets, ckpt."""
import numpy as np
import pytest
import tensorflow as tf, tf_keras

from official.vision.configs import backbones
from official_dataseg import common
from official_dataseg.configs import model as model_config
from official_dataseg.modeling import dataseg_model
from official_dataseg.modeling import factory

SIZE = 64


def tiny_config(**dataset_specific):
  config = model_config.DataSegModel(
      input_size=[SIZE, SIZE, 3],
      backbone=model_config.Backbone(
          type='resnet', resnet=backbones.ResNet(model_id=18)),
      pixel_decoder=model_config.PixelDecoder(num_filters=32,
                                              mask_embedding_dim=16),
      transformer_decoder=model_config.TransformerDecoder(
          num_layers=4, hidden_size=32, num_heads=4, ffn_dim=64,
          num_queries=5),
      classifier_head=model_config.ClassifierHead(text_embedding_dim=12),
      dataset_specific=model_config.DatasetSpecificModules(
          **dataset_specific))
  config.norm_activation.use_sync_bn = False
  return config


def build(config, num_datasets=3):
  return factory.build_dataseg_model(
      tf_keras.layers.InputSpec(shape=[None, SIZE, SIZE, 3]), config,
      num_datasets=num_datasets)


def make_inputs(seed=0, batch_size=2, num_classes=7, dataset_id=0):
  rng = np.random.RandomState(seed)
  return {
      common.IMAGE: tf.constant(
          rng.randn(batch_size, SIZE, SIZE, 3).astype(np.float32)),
      common.CLASS_EMBEDDINGS: tf.constant(
          rng.randn(num_classes, 12).astype(np.float32)),
      common.CLASS_VALID: tf.constant([True] * (num_classes - 1) + [False]),
      common.DATASET_ID: tf.constant(dataset_id, tf.int32),
  }


@pytest.fixture(scope='module')
def tiny_model():
  tf_keras.utils.set_random_seed(0)
  model = build(tiny_config())
  model(make_inputs(), training=False)
  return model


def test_output_contract(tiny_model):
  outputs = tiny_model(make_inputs(), training=False)
  assert outputs[common.MASK_LOGITS].shape == (4, 2, 5, SIZE // 4, SIZE // 4)
  assert outputs[common.CLASS_LOGITS].shape == (4, 2, 5, 8)
  assert outputs[common.MASK_LOGITS].dtype == tf.float32
  assert outputs[common.CLASS_LOGITS].dtype == tf.float32
  # Vocabulary padding gets -1e9; real classes and background are cosines
  # over the temperature, so bounded by 1 / 0.07.
  class_logits = outputs[common.CLASS_LOGITS].numpy()
  np.testing.assert_array_equal(class_logits[..., 6], -1e9)
  assert np.abs(class_logits[..., [0, 1, 2, 3, 4, 5, 7]]).max() <= 1 / 0.07 + 1e-3
  # Each layer has its own head: the layers' predictions differ.
  masks = outputs[common.MASK_LOGITS].numpy()
  assert not np.allclose(masks[0], masks[-1])
  assert tiny_model.checkpoint_items['backbone'] is tiny_model.backbone


def test_swapping_vocabulary_changes_only_class_logits(tiny_model):
  inputs = make_inputs(seed=1)
  outputs = tiny_model(inputs, training=False)
  swapped = dict(inputs)
  swapped[common.CLASS_EMBEDDINGS] = tf.random.normal([3, 12], seed=5)
  swapped[common.CLASS_VALID] = tf.ones([3], tf.bool)
  swapped_outputs = tiny_model(swapped, training=False)
  np.testing.assert_array_equal(swapped_outputs[common.MASK_LOGITS],
                                outputs[common.MASK_LOGITS])
  assert swapped_outputs[common.CLASS_LOGITS].shape == (4, 2, 5, 4)
  # Background column is the same; class columns follow the new vocabulary.
  np.testing.assert_allclose(swapped_outputs[common.CLASS_LOGITS][..., -1],
                             outputs[common.CLASS_LOGITS][..., -1], atol=1e-5)
  # Without dataset-specific modules the dataset id is ignored.
  other = dict(inputs)
  other[common.DATASET_ID] = tf.constant(2)
  np.testing.assert_array_equal(
      tiny_model(other, training=False)[common.CLASS_LOGITS],
      outputs[common.CLASS_LOGITS])


def test_dataset_specific_modules_pick_per_dataset_weights():
  tf_keras.utils.set_random_seed(1)
  model = build(tiny_config(num_queries_per_dataset=2, class_head=True,
                            background=True))
  inputs = make_inputs(dataset_id=1)
  with tf.GradientTape() as tape:
    outputs = model(inputs, training=False)
    loss = (tf.reduce_sum(outputs[common.CLASS_LOGITS][..., :6]) +
            tf.reduce_sum(outputs[common.CLASS_LOGITS][..., -1]) +
            tf.reduce_sum(outputs[common.MASK_LOGITS]))
  decoder = model.transformer_decoder
  stacked = {
      'dataset_queries': decoder.dataset_query_features,
      'class_mlp': decoder.heads[-1].class_mlp[0].kernel,
      'background': model.classifier.background_embedding,
  }
  gradients = tape.gradient(loss, list(stacked.values()))
  for name, gradient in zip(stacked, gradients):
    per_set = np.abs(tf.convert_to_tensor(gradient).numpy()).reshape(3, -1)
    per_set = per_set.sum(-1)
    assert per_set[1] > 0, name
    np.testing.assert_array_equal(per_set[[0, 2]], 0.0, err_msg=name)
  other = dict(inputs)
  other[common.DATASET_ID] = tf.constant(2)
  other_outputs = model(other, training=False)
  assert not np.allclose(other_outputs[common.CLASS_LOGITS],
                         outputs[common.CLASS_LOGITS])
  # Dataset queries join attention, so masks change with the dataset too.
  assert not np.allclose(other_outputs[common.MASK_LOGITS],
                         outputs[common.MASK_LOGITS])


def test_backbone_checkpoint_restores_into_fresh_model(tiny_model, tmp_path):
  path = tf.train.Checkpoint(backbone=tiny_model.backbone).write(
      str(tmp_path / 'backbone'))
  tf_keras.utils.set_random_seed(7)
  fresh = build(tiny_config())
  fresh(make_inputs(), training=False)
  assert not np.allclose(fresh.backbone.weights[0], tiny_model.backbone.weights[0])
  tf.train.Checkpoint(**fresh.checkpoint_items).read(
      path).assert_existing_objects_matched()
  for restored, saved in zip(fresh.backbone.weights,
                             tiny_model.backbone.weights):
    np.testing.assert_array_equal(restored, saved)


def test_config_round_trip(tiny_model):
  clone = dataseg_model.DataSegModel.from_config(tiny_model.get_config())
  inputs = make_inputs(seed=3)
  np.testing.assert_array_equal(
      clone(inputs, training=False)[common.MASK_LOGITS],
      tiny_model(inputs, training=False)[common.MASK_LOGITS])
  decoder_config = tiny_model.transformer_decoder.get_config()
  assert decoder_config['num_layers'] == 4
  assert decoder_config['num_queries'] == 5


def test_jit_compiles_and_matches_eager(tiny_model):
  inputs = make_inputs(seed=4)
  compiled = tf.function(lambda x: tiny_model(x, training=False),
                         jit_compile=True)
  outputs = compiled(inputs)
  eager = tiny_model(inputs, training=False)
  np.testing.assert_allclose(outputs[common.MASK_LOGITS],
                             eager[common.MASK_LOGITS], rtol=1e-3, atol=1e-3)


def test_mixed_bfloat16_outputs_float32():
  tf_keras.mixed_precision.set_global_policy('mixed_bfloat16')
  try:
    model = build(tiny_config())
    outputs = model(make_inputs(batch_size=1), training=False)
  finally:
    tf_keras.mixed_precision.set_global_policy('float32')
  assert outputs[common.MASK_LOGITS].dtype == tf.float32
  assert outputs[common.CLASS_LOGITS].dtype == tf.float32
  assert model.transformer_decoder.compute_dtype == 'bfloat16'
  assert np.isfinite(outputs[common.MASK_LOGITS].numpy()).all()


def test_bad_inputs_raise_clear_errors(tiny_model):
  inputs = make_inputs()
  del inputs[common.CLASS_VALID]
  with pytest.raises(ValueError, match=common.CLASS_VALID):
    tiny_model(inputs)
  with pytest.raises(ValueError, match='num_datasets'):
    build(tiny_config(), num_datasets=0)
