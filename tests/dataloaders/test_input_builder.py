"""Input builder: static specs, one dataset per batch, checkpointed position, eval padding."""
import json

import numpy as np
import pytest
import tensorflow as tf

from official_dataseg import common
from official_dataseg.configs import data as data_cfg
from official_dataseg.dataloaders import input_builder
from tests.dataloaders import tfexample_helpers


def _write_datasets(directory):
  rng = np.random.default_rng(0)
  segment_map = np.zeros((20, 28), np.int32)
  segment_map[:10, :14] = 1
  segment_map[10:, 14:] = 2
  for name in ('sem', 'box'):
    examples = []
    for i in range(5):
      image = rng.integers(0, 256, (20, 28, 3), dtype=np.uint8)
      if name == 'sem':
        examples.append(tfexample_helpers.make_example(
            image, [1, 2], [[0, 0, .5, .5], [.5, .5, 1, 1]], segment_map,
            source_id=f'{name}{i}'))
      else:
        examples.append(tfexample_helpers.make_example(
            image, [0, 1 + i % 2], [[.1, .1, .6, .5], [.3, .2, .9, .9]],
            source_id=f'{name}{i}'))
    tfexample_helpers.write_record_set(f'{directory}/{name}',
                                       [examples[0::2], examples[1::2]])
  with open(f'{directory}/box-category_frequency.json', 'w') as f:
    json.dump({'num_images': 5, 'image_count': [5, 3, 2]}, f)


def _config(directory, batch_size=2):
  return data_cfg.DataConfig(
      datasets=(
          data_cfg.DatasetConfig(name='sem', task_type=common.TASK_SEMANTIC,
                                 input_path=f'{directory}/sem-*-of-*',
                                 sampling_weight=1.0),
          data_cfg.DatasetConfig(name='box', task_type=common.TASK_INSTANCE,
                                 input_path=f'{directory}/box-*-of-*',
                                 sampling_weight=1.0,
                                 repeat_factor_threshold=0.9)),
      output_size=[32, 32], max_instances=3, eval_groundtruth_size=[24, 32],
      global_batch_size=batch_size, shuffle_buffer_size=4, seed=5)


def _as_numpy(batch):
  return {k: v.numpy() for k, v in batch.items()}


@pytest.mark.slow
def test_train_batches_static_single_dataset_and_checkpointable(tmp_path):
  _write_datasets(tmp_path)
  config = _config(tmp_path)
  dataset = input_builder.build_train_dataset(config)
  for spec in dataset.element_spec.values():
    assert spec.shape.is_fully_defined(), spec

  reference = iter(dataset)
  expected = [_as_numpy(next(reference)) for _ in range(7)]
  for batch in expected:  # each batch from one dataset
    assert len(set(batch[common.DATASET_ID].tolist())) == 1
  assert {b[common.DATASET_ID][0] for b in expected} == {0, 1}

  iterator = iter(input_builder.build_train_dataset(config))
  for _ in range(3):
    next(iterator)
  checkpoint = tf.train.Checkpoint(iterator=iterator)
  path = checkpoint.write(str(tmp_path / 'ckpt'))
  restored = iter(input_builder.build_train_dataset(config))
  tf.train.Checkpoint(iterator=restored).read(path).assert_consumed()
  for step in range(3, 7):
    batch = _as_numpy(next(restored))
    for key, value in expected[step].items():
      np.testing.assert_array_equal(batch[key], value, err_msg=key)


def test_eval_keeps_every_image_and_flags_padding(tmp_path):
  _write_datasets(tmp_path)
  eval_datasets = input_builder.build_eval_datasets(_config(tmp_path, 2))
  assert sorted(eval_datasets) == ['box', 'sem']
  for name, dataset in eval_datasets.items():
    for spec in dataset.element_spec.values():
      assert spec.shape.is_fully_defined(), (name, spec)
    batches = [_as_numpy(b) for b in dataset]
    assert len(batches) == 3
    ids = np.concatenate([b[common.SOURCE_ID] for b in batches])
    padding = np.concatenate([b[common.EVAL_IS_PADDING] for b in batches])
    assert sorted(ids[~padding].tolist()) == [f'{name}{i}'.encode()
                                              for i in range(5)]
    assert padding.tolist() == [False] * 5 + [True]
    assert batches[-1][common.EVAL_GROUNDTRUTH][1] == b''  # The filler has no ground truth.


def test_missing_input_path_names_dataset(tmp_path):
  config = _config(tmp_path).replace(
      datasets=(data_cfg.DatasetConfig(name='ade', input_path=''),))
  with pytest.raises(ValueError, match="'ade'"):
    input_builder.build_train_dataset(config)


def test_replicas_of_one_pipeline_get_the_same_dataset_per_step(tmp_path):
  _write_datasets(tmp_path)
  config = _config(tmp_path, batch_size=4)
  # One input pipeline feeding 2 local replicas (MirroredStrategy on one host): the pipeline
  # yields per-replica batches of 2, consecutive pairs forming one step.
  context = tf.distribute.InputContext(num_input_pipelines=1, input_pipeline_id=0,
                                       num_replicas_in_sync=2)
  dataset = input_builder.build_train_dataset(config, context)
  ids = [int(batch[common.DATASET_ID][0]) for batch in dataset.take(24)]
  assert all(len(set(batch.numpy())) == 1
             for batch in [b[common.DATASET_ID] for b in dataset.take(4)])
  steps = [ids[i:i + 2] for i in range(0, 24, 2)]
  assert all(a == b for a, b in steps), steps
  assert {a for a, _ in steps} == {0, 1}  # Both datasets are drawn.


def test_autotune_is_off_by_default_and_leaves_the_stream_unchanged(tmp_path):
  _write_datasets(tmp_path)
  config = _config(tmp_path)
  off = input_builder.build_train_dataset(config)
  on = input_builder.build_train_dataset(config.replace(autotune=True))
  assert off.options().autotune.enabled is False
  assert on.options().autotune.enabled is True
  for dataset in input_builder.build_eval_datasets(config).values():
    assert dataset.options().autotune.enabled is False
  # Autotuning changes parallelism and buffer sizes, never the elements or their order.
  for batch_off, batch_on in zip(off.take(4), on.take(4)):
    for key, value in batch_off.items():
      np.testing.assert_array_equal(value.numpy(), batch_on[key].numpy(), err_msg=key)
