"""Shared pieces of the task tests: a small built-in suite and overrides that shrink a model."""
import os

from tfrecords_tools import synthetic_suite

# The built-in suite's training set of each task type (written by `convert_all`).
SYNTHETIC_TRAIN = {
    'semantic': 'synthetic_ade_train',
    'panoptic': 'synthetic_coco_train',
    'instance': 'synthetic_o365_train',
}
SYNTHETIC_VOCABULARY = {
    'semantic': 'synthetic_ade',
    'panoptic': 'synthetic_coco',
    'instance': 'synthetic_o365',
}
SYNTHETIC_VAL = {
    'semantic': 'synthetic_ade_val',
    'panoptic': 'synthetic_coco_val',
    'instance': 'synthetic_o365_val',
}

# Shrinks any registered experiment to a few CPU seconds per step (the paper's datasets, loss
# weights, multipliers, sampling and schedule are kept).
SMALL_SIZES = {
    'runtime': {'distribution_strategy': 'one_device', 'mixed_precision_dtype': 'float32'},
    'task': {
        'model': {
            'input_size': [64, 64, 3],
            'norm_activation': {'use_sync_bn': False},
            'pixel_decoder': {'num_filters': 16, 'mask_embedding_dim': 16},
            'transformer_decoder': {'num_layers': 3, 'hidden_size': 16, 'ffn_dim': 32,
                                    'num_heads': 2, 'num_queries': 6},
        },
        'train_data': {'output_size': [64, 64], 'global_batch_size': 2, 'max_instances': 8,
                       'dtype': 'float32', 'shuffle_buffer_size': 4},
        'validation_data': {'output_size': [64, 64], 'global_batch_size': 2,
                            'max_instances': 8, 'dtype': 'float32'},
    },
}
TINY_RESNET = {'task': {'model': {'backbone': {'resnet': {'model_id': 10}}}}}
TINY_VIT = {'task': {'model': {'backbone': {'vitdet': {
    'model_id': '', 'num_layers': 2, 'hidden_size': 32, 'num_heads': 2,
    'global_attention_indices': [1], 'pyramid_filters': 16, 'window_size': 2}}}}}


def make_suite(root: str, num_train: int = 4, num_val: int = 2) -> str:
  """Writes and converts a small built-in suite; returns its TFRecord directory."""
  raw = synthetic_suite.generate(os.path.join(root, 'raw'), seed=3, num_train=num_train,
                                 num_val=num_val)
  tfrecords = os.path.join(root, 'tfrecords')
  synthetic_suite.convert_all(raw, tfrecords)
  return tfrecords


def point_at_suite(params, tfrecord_dir: str) -> None:
  """Points every dataset of `params` at the suite's set of the same task type.

  Names, loss weights, multipliers and sampling weights stay the experiment's; the vocabulary
  becomes the suite's (the input pipeline refuses records of another class list).
  """
  def moved(datasets, files):
    return tuple(d.replace(input_path=os.path.join(tfrecord_dir, files[d.task_type] + '-*-of-*'),
                           vocabulary=SYNTHETIC_VOCABULARY[d.task_type], class_embeddings='',
                           category_frequency_file='') for d in datasets)
  params.task.train_data.datasets = moved(params.task.train_data.datasets, SYNTHETIC_TRAIN)
  params.task.validation_data.datasets = moved(
      [d for d in params.task.validation_data.datasets if d.task_type in SYNTHETIC_VAL][:1],
      SYNTHETIC_VAL)
