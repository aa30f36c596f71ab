"""With dataset-specific modules (appendix E), each evaluation set is scored through the modules of
the training dataset it belongs to, and the export serves the modules the caller picks.

A small demo model with all three modules (extra queries, class MLP, background embedding) gets
distinct random weights for every dataset; the reference is the model called directly with the
expected DATASET_ID.
"""
import numpy as np
import pytest
import tensorflow as tf

from official.core import exp_factory

from official_dataseg import common
from official_dataseg import registry_imports  # pylint: disable=unused-import
from official_dataseg.configs import data as data_config
from official_dataseg.serving import loader
from official_dataseg.tasks import dataseg_task

import export_saved_model

SMALL = {
    'runtime': {'distribution_strategy': 'one_device', 'mixed_precision_dtype': 'float32'},
    'task': {'model': {
        'input_size': [64, 64, 3],
        'pixel_decoder': {'num_filters': 16, 'mask_embedding_dim': 16},
        'transformer_decoder': {'num_layers': 2, 'hidden_size': 16, 'ffn_dim': 32,
                                'num_heads': 2, 'num_queries': 4},
        'dataset_specific': {'num_queries_per_dataset': 2, 'class_head': True,
                             'background': True},
    },
             'train_data': {'output_size': [64, 64]},
             'validation_data': {'output_size': [64, 64]}},
}
# Demo training datasets: synthetic_ade (0), synthetic_coco (1), synthetic_o365 (2).
EXPECTED_MODULES = {'synthetic_ade': 0, 'synthetic_coco': 1, 'synthetic_o365': 2,
                    'synthetic_voc': 2}


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  params = exp_factory.get_exp_config('dataseg_demo')
  params.override(SMALL, is_strict=True)
  # The transfer set names its modules explicitly (otherwise: the first semantic training set).
  params.task.validation_data.datasets = tuple(
      d.replace(modules_dataset='synthetic_o365') if d.name == 'synthetic_voc' else d
      for d in params.task.validation_data.datasets)
  task = dataseg_task.DataSegTask(params.task)
  tf.random.set_seed(3)
  model = task.build_model()
  model({common.IMAGE: tf.zeros([1, 64, 64, 3]),
         common.CLASS_EMBEDDINGS: tf.ones([3, params.task.model.classifier_head
                                           .text_embedding_dim]),
         common.CLASS_VALID: tf.ones([3], tf.bool), common.DATASET_ID: tf.constant(0)})
  # Distinct weights for every dataset in every stacked per-dataset variable.
  rng = np.random.default_rng(0)
  for variable in model.trainable_variables:
    variable.assign(rng.normal(0.0, 0.3, variable.shape).astype(np.float32))
  checkpoint = tf.train.Checkpoint(model=model).save(
      str(tmp_path_factory.mktemp('modules') / 'ckpt'))
  images = np.random.default_rng(1).integers(0, 255, (2, 64, 64, 3)).astype(np.uint8)
  return params, task, model, checkpoint, images


def _direct(task, model, name, images, dataset_id):
  """Last-layer class logits of the model called with `dataset_id` on the eval vocabulary."""
  table = task._eval_vocabularies[name]  # pylint: disable=protected-access
  outputs = model({common.IMAGE: images, common.CLASS_EMBEDDINGS: table.embeddings[0],
                   common.CLASS_VALID: table.valid[0],
                   common.DATASET_ID: tf.constant(dataset_id)}, training=False)
  return outputs[common.CLASS_LOGITS][-1].numpy(), outputs[common.MASK_LOGITS][-1].numpy()


def test_rule_for_sets_without_modules_of_their_own(setup):
  params = setup[0]
  train = params.task.train_data.datasets
  voc = data_config.DatasetConfig(name='synthetic_voc', task_type=common.TASK_SEMANTIC)
  assert data_config.modules_dataset_id(voc, train) == 0  # First semantic training set.
  cityscapes = data_config.DatasetConfig(name='cityscapes', task_type=common.TASK_PANOPTIC)
  assert data_config.modules_dataset_id(cityscapes, train) == 1
  with pytest.raises(ValueError, match='modules_dataset .*nope.* not a training dataset'):
    data_config.modules_dataset_id(voc.replace(modules_dataset='nope'), train)


@pytest.mark.parametrize('name', sorted(EXPECTED_MODULES))
def test_validation_step_uses_the_datasets_modules(setup, name):
  params, task, model, _, images = setup
  dataset_id = EXPECTED_MODULES[name]
  assert task.eval_modules_id(name) == dataset_id
  task.set_eval_dataset(name)
  model_images = tf.constant(images.astype(np.float32) / 255.0)
  logs = task.validation_step({common.IMAGE: model_images}, model)
  task.set_eval_dataset(None)
  expected_class, expected_mask = _direct(task, model, name, model_images, dataset_id)
  np.testing.assert_allclose(logs['predicted_class_logits'], expected_class, atol=1e-6)
  np.testing.assert_allclose(logs['predicted_mask_logits'], expected_mask, atol=1e-6)
  for other_id in set(EXPECTED_MODULES.values()) - {dataset_id}:
    other_class, _ = _direct(task, model, name, model_images, other_id)
    assert np.abs(other_class - expected_class).max() > 1e-2, other_id


@pytest.mark.slow
def test_exported_model_uses_the_modules_the_caller_picks(setup, tmp_path):
  params, task, model, checkpoint, images = setup
  # The COCO vocabulary and read-out, served through the Objects365 modules.
  export_dir = str(tmp_path / 'export')
  export_saved_model.export(params, checkpoint, export_dir, 'image_tensor',
                            default_dataset='synthetic_coco', modules_dataset='synthetic_o365')
  served = tf.saved_model.load(export_dir).signatures['semantic'](
      images=tf.constant(images))['class_map'].numpy()
  module = loader.build_serving_module(params, checkpoint, 'synthetic_coco',
                                       modules_dataset='synthetic_o365')
  logits = module.serve(tf.constant(images), module._class_embeddings)  # pylint: disable=protected-access
  model_images, _ = module._preprocess(tf.constant(images))  # pylint: disable=protected-access
  expected_class, _ = _direct(task, model, 'synthetic_coco', model_images, 2)
  np.testing.assert_allclose(logits[common.CLASS_LOGITS], expected_class, atol=1e-5)
  default_class, _ = _direct(task, model, 'synthetic_coco', model_images, 1)
  assert np.abs(default_class - expected_class).max() > 1e-2
  # The SavedModel's read-out equals the argmax over these logits' semantic scores.
  scores = tf.einsum('bnc,bnhw->bhwc', tf.nn.softmax(logits[common.CLASS_LOGITS])[..., :-1],
                     tf.sigmoid(logits[common.MASK_LOGITS]))
  np.testing.assert_array_equal(served, tf.argmax(scores, -1).numpy())
  # Without `modules_dataset`, the modules evaluation uses for the dataset (its own).
  default_module = loader.build_serving_module(params, checkpoint, 'synthetic_coco')
  default_logits = default_module.serve(tf.constant(images),
                                        default_module._class_embeddings)  # pylint: disable=protected-access
  np.testing.assert_allclose(default_logits[common.CLASS_LOGITS], default_class, atol=1e-5)
