"""Builds a serving module from an experiment config and a training checkpoint."""
from typing import Optional

from absl import logging
import numpy as np
import tensorflow as tf

from official_dataseg import common
from official_dataseg.configs import data as data_config
from official_dataseg.serving import export_module
from official_dataseg.tasks import dataseg_task
from official_dataseg.tasks import vocabulary_tables


def find_dataset_config(params, name: str = ''):
  """The `DatasetConfig` named `name` among validation then training datasets.

  Empty `name`: the first panoptic validation dataset, else the first validation dataset.
  """
  datasets = list(params.task.validation_data.datasets) + list(params.task.train_data.datasets)
  if not datasets:
    raise ValueError('the experiment lists no datasets')
  if not name:
    panoptic = [d for d in datasets if d.task_type == common.TASK_PANOPTIC]
    return (panoptic or datasets)[0]
  for dataset in datasets:
    if dataset.name == name:
      return dataset
  raise ValueError(f'no dataset named {name!r} in the experiment; have '
                   f'{sorted({d.name for d in datasets})}')


def resolve_checkpoint(path: str) -> str:
  """A checkpoint prefix from a prefix or a directory (its latest checkpoint)."""
  if tf.io.gfile.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if not latest:
      raise FileNotFoundError(f'no checkpoint in directory {path!r}')
    return latest
  if not tf.io.gfile.glob(path + '*'):
    raise FileNotFoundError(f'checkpoint {path!r} does not exist')
  return path


def build_serving_module(params, checkpoint_path: Optional[str], dataset_name: str = '',
                         max_image_size: int = 4096,
                         input_type: str = export_module.IMAGE_TENSOR,
                         batch_size: Optional[int] = None,
                         modules_dataset: str = '') -> export_module.DataSegExportModule:
  """The trained model (restored from `checkpoint_path`; None keeps the random init) wrapped
  for serving.

  The default vocabulary and read-out thresholds are those of the dataset `dataset_name`. The
  dataset-specific modules (if the model has them) are those of the training dataset
  `modules_dataset`; empty: the ones evaluation uses for `dataset_name`
  (`configs.data.modules_dataset_id`).
  """
  task = dataseg_task.DataSegTask(params.task)
  model = task.build_model()
  height, width = params.task.model.input_size[:2]
  dataset = find_dataset_config(params, dataset_name)
  if modules_dataset:
    dataset = dataset.replace(modules_dataset=modules_dataset)
  modules_id = data_config.modules_dataset_id(dataset, params.task.train_data.datasets)
  vocabulary = vocabulary_tables.load_dataset_vocabulary(
      dataset, params.task.text_encoder, params.task.model.classifier_head.text_embedding_dim)
  # Create the variables, then restore them.
  model({common.IMAGE: tf.zeros([1, height, width, 3]),
         common.CLASS_EMBEDDINGS: tf.constant(vocabulary.embeddings),
         common.CLASS_VALID: tf.ones([vocabulary.num_classes], tf.bool),
         common.DATASET_ID: tf.constant(modules_id)}, training=False)
  if checkpoint_path:
    checkpoint_path = resolve_checkpoint(checkpoint_path)
    status = tf.train.Checkpoint(model=model).read(checkpoint_path)
    status.expect_partial().assert_existing_objects_matched()
    logging.info('Restored model weights from %s', checkpoint_path)
  return export_module.DataSegExportModule(
      params, model, input_size=(height, width), class_names=vocabulary.names,
      class_embeddings=np.asarray(vocabulary.embeddings), is_thing=vocabulary.is_thing,
      input_type=input_type, batch_size=batch_size,
      panoptic_confidence_threshold=dataset.panoptic_confidence_threshold,
      panoptic_overlap_threshold=dataset.panoptic_overlap_threshold,
      min_segment_area=dataset.min_segment_area, max_detections=dataset.max_detections,
      max_image_size=max_image_size, modules_dataset_id=modules_id)
