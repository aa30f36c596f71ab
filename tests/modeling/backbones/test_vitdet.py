"""ViTDet backbone: registration, pyramid shapes, parameter counts, ckpt."""
import numpy as np
import pytest
import tensorflow as tf, tf_keras

from official.vision.configs import common as common_configs
from official.vision.modeling.backbones import factory
from official_dataseg.configs import model as model_config
from official_dataseg.modeling.backbones import vitdet


def _tiny_backbone(size=(64, 96), **kwargs):
  options = dict(patch_size=16, num_layers=2, hidden_size=16, num_heads=2,
                 global_attention_indices=[1], window_size=3,
                 rel_pos_grid_size=8, pretrain_image_size=32,
                 pyramid_filters=8)
  options.update(kwargs)
  return vitdet.ViTDet(
      tf_keras.layers.InputSpec(shape=[None, size[0], size[1], 3]), **options)


def test_tiny_pyramid_shapes_and_output_specs():
  backbone = _tiny_backbone()
  features = backbone(tf.zeros([2, 64, 96, 3]))
  # Grid 4x6: window 3 pads the rows; pretrain grid 2 -> embedding resized.
  for level, stride in (('2', 4), ('3', 8), ('4', 16), ('5', 32)):
    assert tuple(features[level].shape) == (2, 64 // stride, 96 // stride, 8)
    assert backbone.output_specs[level][1:] == features[level].shape[1:]
  eight = _tiny_backbone(patch_size=8, pretrain_image_size=16)
  assert sorted(eight(tf.zeros([1, 64, 96, 3]))) == ['1', '2', '3', '4']


def test_bad_input_size_is_rejected():
  with pytest.raises(ValueError, match='divisible by 32'):
    _tiny_backbone(size=(72, 96))


def test_bicubic_matrix_matches_tf_in_interior_and_is_identity():
  np.testing.assert_allclose(vitdet.bicubic_resize_matrix(14, 14),
                             np.eye(14), atol=1e-7)
  matrix = vitdet.bicubic_resize_matrix(6, 11)
  np.testing.assert_allclose(matrix.sum(-1), 1.0, rtol=1e-6)
  # With Keys' a = -0.5, rows whose four taps lie inside the signal match
  # TensorFlow's bicubic resize (which differs from torch in a and at the
  # borders). TF reads the kernel from a 1024-entry table: ~1e-3 error.
  signal = np.random.RandomState(0).randn(6).astype(np.float32)
  keys = vitdet.bicubic_resize_matrix(6, 11, cubic_coefficient=-0.5)
  reference = tf.image.resize(signal[None, :, None, None], [11, 1],
                              method='bicubic').numpy()[0, :, 0, 0]
  source = (np.arange(11) + 0.5) * 6 / 11 - 0.5
  interior = (np.floor(source) >= 1) & (np.floor(source) + 2 <= 5)
  assert interior.sum() >= 4
  np.testing.assert_allclose((keys @ signal)[interior], reference[interior],
                             atol=2e-3)
  # The tolerance still tells the kernels apart: a = -0.75 is further off.
  assert np.abs((matrix @ signal) - reference)[interior].max() > 1e-2


def test_registered_with_model_garden_factory():
  config = model_config.Backbone(
      type='vitdet', vitdet=model_config.ViTDet(
          model_id='', patch_size=16, num_layers=2, hidden_size=16,
          num_heads=2, global_attention_indices=[1], window_size=4,
          pretrain_image_size=32, pyramid_filters=8))
  backbone = factory.build_backbone(
      tf_keras.layers.InputSpec(shape=[None, 64, 64, 3]), config,
      common_configs.NormActivation())
  assert isinstance(backbone, vitdet.ViTDet)
  assert backbone.get_config()['global_attention_indices'] == [1]


def test_checkpoint_round_trip(tmp_path):
  saved, fresh = _tiny_backbone(), _tiny_backbone()
  path = tf.train.Checkpoint(backbone=saved).write(str(tmp_path / 'ckpt'))
  tf.train.Checkpoint(backbone=fresh).read(path).assert_consumed()
  images = tf.random.normal([1, 64, 96, 3], seed=1)
  np.testing.assert_array_equal(fresh(images)['3'], saved(images)['3'])


def _vit_trunk_params(num_layers, width, patch=16, pretrain_grid=14):
  """Published ViT parameter count without the classification head/cls."""
  patch_embed = 3 * patch * patch * width + width
  position = (1 + pretrain_grid ** 2) * width
  block = (3 * width * width + 3 * width) + (width * width + width) + (
      4 * width * width + 4 * width) + (4 * width * width + width) + 4 * width
  return patch_embed + position + num_layers * block


def _pyramid_params(width, filters=256):
  stride4 = (4 * width * width // 2 + width // 2) + width + (
      4 * width // 2 * width // 4 + width // 4)
  stride8 = 4 * width * width // 2 + width // 2
  outputs = sum(channels * filters + 2 * filters + 9 * filters * filters +
                2 * filters for channels in (width // 4, width // 2, width,
                                             width))
  return stride4 + stride8 + outputs


def _count(backbone, keep):
  return sum(int(np.prod(w.shape)) for w in backbone.weights if keep(w.name))


@pytest.mark.slow
@pytest.mark.parametrize('model_id,num_layers,width,published', [
    ('vit-b', 12, 768, 86e6), ('vit-l', 24, 1024, 304e6)])
def test_parameter_counts(model_id, num_layers, width, published):
  config = model_config.Backbone(
      type='vitdet', vitdet=model_config.ViTDet(model_id=model_id))
  # The count does not depend on the input size: build small.
  backbone = factory.build_backbone(
      tf_keras.layers.InputSpec(shape=[None, 64, 64, 3]), config,
      common_configs.NormActivation())
  trunk = _count(backbone, lambda n: 'pyramid' not in n and 'rel_pos' not in n)
  assert trunk == _vit_trunk_params(num_layers, width)
  assert abs(trunk - published) / published < 0.01
  pyramid = _count(backbone, lambda n: 'pyramid' in n)
  assert pyramid == _pyramid_params(width)
  head_dim = width // (12 if model_id == 'vit-b' else 16)
  rel_pos = _count(backbone, lambda n: 'rel_pos' in n)
  assert rel_pos == (4 * 2 * 127 + (num_layers - 4) * 2 * 27) * head_dim
