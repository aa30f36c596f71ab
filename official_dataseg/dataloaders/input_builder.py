"""tf.data pipelines of a DataConfig: one dataset per training batch, eval per dataset.

Per dataset, `record_set` picks the shards of finished conversions that `input_path` matches
and checks their vocabulary against the config's; Model Garden's `InputReader` then does the sharded file reading, file
and example shuffling (seeded by `DataConfig.seed`), interleave, per-replica
batching and prefetch. Between the example shuffle and the parser this module
adds (as InputReader's `sample_fn`) optional repeat-factor sampling and the
element position, from which each element's augmentation seed is derived:
every random draw is stateless, so `tf.train.Checkpoint(iterator=...)` restores
the exact data position (shuffle buffers, file and stream positions).

Training batches: `choose_from_datasets` picks, for batch b, the dataset drawn
by `dataset_sampling` from (seed, b); every dataset's batches share one
structure (same S, M and keys), so one iterator feeds the Task and
`DATASET_ID` says which dataset a batch holds.
"""
import math
from typing import Dict, List, Optional, Sequence

import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official.core import input_reader
from official_dataseg import common
from official_dataseg.dataloaders import dataseg_parser
from official_dataseg.dataloaders import dataset_sampling
from official_dataseg.dataloaders import record_set
from official_dataseg.dataloaders import repeat_factor
from official_dataseg.dataloaders import tf_example_decoder
from official_dataseg.text import vocabulary as vocabulary_lib

# Keeps the augmentation seeds of different datasets apart.
_DATASET_SEED_STRIDE = 1009


def _check_data_config(data_config) -> None:
  if not data_config.datasets:
    raise ValueError('DataConfig.datasets is empty: list at least one dataset.')
  if data_config.global_batch_size <= 0:
    raise ValueError('DataConfig.global_batch_size must be > 0, got '
                     f'{data_config.global_batch_size}')
  names = [d.name for d in data_config.datasets]
  if len(set(names)) != len(names) or not all(names):
    raise ValueError(f'Dataset names must be unique and non-empty, got {names}')
  for dataset_config in data_config.datasets:
    if not dataset_config.input_path:
      raise ValueError(f'Dataset {dataset_config.name!r}: input_path is empty.')


def select_input_files(dataset_config) -> str:
  """The shards of finished conversions that `input_path` matches, narrowed to the first
  `data_fraction` of them (sorted) when < 1; the records' vocabulary is checked against
  `vocabulary` (when set) before anything is read.

  Returns:
    A comma-separated file list.

  Raises:
    ValueError: `data_fraction` outside (0, 1].
    record_set.RecordSetError: no finished record set matches `input_path`, or its vocabulary
      differs from `vocabulary` (the message names the dataset, both files and the first
      mismatching class).
  """
  fraction = dataset_config.data_fraction
  if not 0.0 < fraction <= 1.0:
    raise ValueError(f'Dataset {dataset_config.name!r}: data_fraction must be in (0, 1], '
                     f'got {fraction}.')
  record_sets = record_set.resolve(dataset_config.input_path, dataset_config.name)
  if dataset_config.vocabulary:
    for records in record_sets:
      record_set.check_vocabulary(records, dataset_config.name, dataset_config.vocabulary)
  files = sorted(f for records in record_sets for f in records.shards)
  # Whole files, so every host reads the same subset; at least one file.
  num_files = max(1, math.ceil(fraction * len(files) - 1e-9))
  return ','.join(files[:num_files])


def _category_factors(dataset_config, input_files: str):
  """[C] category repeat factors, or None when repeat-factor sampling is off.

  Raises:
    ValueError: the frequency file's class count differs from the vocabulary's.
  """
  if dataset_config.repeat_factor_threshold <= 0:
    return None
  path = (dataset_config.category_frequency_file or
          repeat_factor.default_category_frequency_path(input_files))
  num_images, image_count = repeat_factor.load_category_frequency(path)
  if dataset_config.vocabulary:
    num_classes = vocabulary_lib.load_vocabulary(dataset_config.vocabulary).num_classes
    if len(image_count) != num_classes:
      raise record_set.RecordSetError(
          f'dataset {dataset_config.name!r}: {path} counts {len(image_count)} classes but '
          f'vocabulary {dataset_config.vocabulary!r} has {num_classes}')
  return repeat_factor.category_repeat_factors(
      image_count, num_images, dataset_config.repeat_factor_threshold)


def build_dataset_reader(data_config, dataset_id: int, is_training: bool,
                         input_context: Optional[tf.distribute.InputContext]
                         = None) -> tf.data.Dataset:
  """Per-replica batches of one dataset.

  Args:
    data_config: the DataConfig.
    dataset_id: index into `data_config.datasets`.
    is_training: training (infinite, shuffled, augmented, drop remainder) or
      evaluation (one pass, un-shuffled, last partial batch kept).
    input_context: the distribution input context, if any.

  Returns:
    Batches of the parser's dict (see `dataseg_parser`).
  """
  dataset_config = data_config.datasets[dataset_id]
  seed = data_config.seed or 0
  parser = dataseg_parser.DataSegParser.from_config(
      dataset_config, data_config, dataset_id)
  decoder = tf_example_decoder.DataSegDecoder(
      include_instance_masks=(not is_training and
                              dataset_config.task_type == common.TASK_INSTANCE))
  input_files = select_input_files(dataset_config)
  reader_config = data_config.replace(
      input_path=input_files, is_training=is_training, drop_remainder=is_training)
  parse = parser.parse_fn(is_training)

  if not is_training:
    reader = input_reader.InputReader(
        reader_config, decoder_fn=decoder.decode, parser_fn=parse)
    return _with_autotune(reader.read(input_context=input_context), data_config.autotune)

  num_pipelines = input_context.num_input_pipelines if input_context else 1
  pipeline_id = input_context.input_pipeline_id if input_context else 0
  category_factors = _category_factors(dataset_config, input_files)
  augmentation_seed = seed * _DATASET_SEED_STRIDE + dataset_id

  def sample_fn(serialized_dataset):
    if category_factors is not None:
      serialized_dataset = repeat_factor.repeat_by_factor(
          serialized_dataset, category_factors, augmentation_seed)
      # Spreads an image's repeats over different batches.
      serialized_dataset = serialized_dataset.shuffle(
          data_config.shuffle_buffer_size, seed=seed)
    return serialized_dataset.enumerate()

  def parser_fn(position, serialized):
    decoded = decoder.decode(serialized)
    decoded[common.DECODED_AUGMENTATION_SEED] = tf.stack([
        tf.constant(augmentation_seed, tf.int64),
        position * num_pipelines + pipeline_id])
    return parse(decoded)

  reader = input_reader.InputReader(reader_config, sample_fn=sample_fn,
                                    parser_fn=parser_fn)
  return _with_autotune(reader.read(input_context=input_context), data_config.autotune)


def _with_autotune(dataset: tf.data.Dataset, enabled: bool) -> tf.data.Dataset:
  """`dataset` with tf.data autotuning on or off (see `DataConfig.autotune`)."""
  options = tf.data.Options()
  options.autotune.enabled = enabled
  return dataset.with_options(options)


def build_train_datasets(data_config, input_context=None
                        ) -> Dict[str, tf.data.Dataset]:
  """{dataset name: infinite per-replica training batches} (for per-task iterators)."""
  _check_data_config(data_config)
  return {d.name: build_dataset_reader(data_config, i, True, input_context)
          for i, d in enumerate(data_config.datasets)}


def build_train_dataset(data_config, input_context=None) -> tf.data.Dataset:
  """Per-replica training batches, each batch from one dataset.

  Step t's batches come from the dataset drawn from (DataConfig.seed, t) by
  `sampling_weight`: identical on all input pipelines, for all local replicas
  of a pipeline, and after a restore.

  Args:
    data_config: the DataConfig (its datasets, output_size, max_instances,
      global_batch_size, seed, shuffle_buffer_size).
    input_context: the distribution input context, if any.

  Returns:
    Infinite dataset of dicts: IMAGE [B, S_h, S_w, 3], IMAGE_INFO [B, 4, 2],
    DATASET_ID [B], GT_MASKS uint8 [B, M, S_h/4, S_w/4], GT_CLASSES int32
    [B, M], GT_BOXES float32 [B, M, 4], GT_VALID float32 [B, M], IGNORE_MASK
    uint8 [B, S_h/4, S_w/4], NUM_TRUNCATED int32 [B]; B = per-replica batch.
  """
  datasets = list(build_train_datasets(data_config, input_context).values())
  if len(datasets) == 1:
    return datasets[0]
  # A pipeline feeding several local replicas yields one per-replica batch per replica for
  # each step; they must all come from the step's dataset.
  replicas_per_pipeline = 1
  if input_context is not None:
    replicas_per_pipeline = max(
        1, input_context.num_replicas_in_sync // input_context.num_input_pipelines)
  choices = dataset_sampling.dataset_choice_dataset(
      [d.sampling_weight for d in data_config.datasets],
      data_config.seed or 0, batches_per_step=replicas_per_pipeline)
  combined = tf.data.Dataset.choose_from_datasets(datasets, choices)
  return combined.prefetch(tf.data.AUTOTUNE)


def pad_batch(batch: Dict[str, tf.Tensor], batch_size: int
              ) -> Dict[str, tf.Tensor]:
  """Pads a (partial) eval batch to `batch_size` with filler elements.

  Filler elements are zeros ('' for strings) with EVAL_IS_PADDING True and
  an empty EVAL_GROUNDTRUTH, so metrics can skip them.

  Args:
    batch: dict of [b, ...] tensors, b <= batch_size.
    batch_size: the static batch size.

  Returns:
    dict of [batch_size, ...] tensors.
  """
  num_fillers = batch_size - tf.shape(batch[common.IMAGE])[0]
  padded = {}
  for key, tensor in batch.items():
    shape = tf.concat([[num_fillers], tf.shape(tensor)[1:]], axis=0)
    if key == common.EVAL_IS_PADDING:
      filler = tf.ones(shape, tf.bool)
    else:
      filler = tf.zeros(shape, tensor.dtype)
    padded[key] = tf.ensure_shape(tf.concat([tensor, filler], axis=0),
                                  [batch_size] + tensor.shape[1:].as_list())
  return padded


def build_eval_datasets(data_config, input_context=None,
                        names: Optional[Sequence[str]] = None
                        ) -> Dict[str, tf.data.Dataset]:
  """{dataset name: one un-shuffled pass of per-replica eval batches}.

  The last partial batch is padded (see `pad_batch`), so no image is dropped
  and every batch has a static size.

  Args:
    data_config: the validation `DataConfig`.
    input_context: the distribution input context, if any.
    names: build only these datasets (default: all).

  Returns:
    Finite datasets of the eval dicts of `dataseg_parser` with a batch dim.
  """
  _check_data_config(data_config)
  batch_size = (input_context.get_per_replica_batch_size(
      data_config.global_batch_size) if input_context else
                data_config.global_batch_size)
  eval_datasets = {}
  for dataset_id, dataset_config in enumerate(data_config.datasets):
    if names is not None and dataset_config.name not in names:
      continue
    batches = build_dataset_reader(data_config, dataset_id, False,
                                   input_context)
    eval_datasets[dataset_config.name] = batches.map(
        lambda batch: pad_batch(batch, batch_size))
  return eval_datasets


def dataset_names(data_config) -> List[str]:
  """Names in dataset-id order (DATASET_ID i -> names[i])."""
  return [d.name for d in data_config.datasets]
