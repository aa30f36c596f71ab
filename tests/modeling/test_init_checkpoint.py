"""An ImageNet / MAE backbone checkpoint loads through Model Garden's `init_checkpoint` path
(`Task.initialize`), leaving the rest of the model as initialised."""
import numpy as np
import tensorflow as tf

from official.core import exp_factory
from official_dataseg import common
from official_dataseg import registry_imports  # pylint: disable=unused-import
from official_dataseg.tasks import dataseg_task


def _build(task):
  model = task.build_model()
  height, width = task.task_config.model.input_size[:2]
  model({common.IMAGE: tf.zeros([1, height, width, 3]),
         common.CLASS_EMBEDDINGS: tf.random.normal([5, 384]),
         common.CLASS_VALID: tf.ones([5], tf.bool),
         common.DATASET_ID: tf.constant(0)}, training=False)
  return model


def _task(init_checkpoint='', modules='backbone'):
  params = exp_factory.get_exp_config('dataseg_demo')
  params.task.init_checkpoint = init_checkpoint
  params.task.init_checkpoint_modules = modules
  return dataseg_task.DataSegTask(params.task)


def test_backbone_checkpoint_restores_only_the_backbone(tmp_path):
  source = _build(_task())
  # A backbone checkpoint as Model Garden's classification trainer writes it (`backbone=`).
  path = tf.train.Checkpoint(backbone=source.backbone).write(str(tmp_path / 'imagenet'))

  task = _task(init_checkpoint=path)
  target = _build(task)
  task.initialize(target)

  for expected, restored in zip(source.backbone.weights, target.backbone.weights):
    np.testing.assert_array_equal(expected.numpy(), restored.numpy())
  backbone_names = {w.name for w in target.backbone.weights}
  others = [(s, t) for s, t in zip(source.weights, target.weights)
            if t.name not in backbone_names and t.trainable and t.shape.num_elements() > 1]
  assert others
  assert any(not np.array_equal(s.numpy(), t.numpy()) for s, t in others)


def test_whole_model_checkpoint_with_modules_all(tmp_path):
  source = _build(_task())
  # A DaTaSeg training directory (CheckpointManager-style, with its 'checkpoint' state file).
  tf.train.Checkpoint(model=source).save(str(tmp_path / 'ckpt'))
  task = _task(init_checkpoint=str(tmp_path), modules='all')
  target = _build(task)
  task.initialize(target)
  for expected, restored in zip(source.weights, target.weights):
    np.testing.assert_array_equal(expected.numpy(), restored.numpy())
