"""Input configuration: one `DatasetConfig` per dataset, grouped in a `DataConfig`.

A training `DataConfig` lists the co-trained datasets; each training step draws one of them by
`sampling_weight` and the whole global batch comes from it. A validation `DataConfig` lists the
datasets evaluated one after the other.
"""
import dataclasses
from typing import List, Optional, Sequence, Tuple

from official.core import config_definitions as cfg
from official.modeling import hyperparams

from official_dataseg import common
from official_dataseg.configs import losses as loss_config


@dataclasses.dataclass
class DatasetConfig(hyperparams.Config):
  """One dataset: where its TFRecords are, how it is supervised and augmented.

  Attributes:
    name: short unique name, used in logs and metric keys (e.g. 'ade20k_semantic').
    task_type: one of `common.TASK_TYPES`.
    input_path: TFRecord file pattern(s), comma separated.
    vocabulary: built-in vocabulary name (see `official_dataseg/text/vocabularies/`) or a path to
      a vocabulary JSON file.
    class_embeddings: path to a `.npz` of text embeddings for this vocabulary; empty means the
      shipped embeddings of `vocabulary` for `DataSegTask.text_encoder`.
    num_classes_padded: the static vocabulary width fed to the model (>= vocabulary size); 0
      means exactly the vocabulary size.
    sampling_weight: relative probability that a training step draws this dataset.
    learning_rate_multiplier: learning rate factor applied on steps that draw this dataset.
    aug_scale_min: lower bound of the large-scale-jitter scale.
    aug_scale_max: upper bound of the large-scale-jitter scale.
    aug_rand_hflip: random horizontal flip in training.
    repeat_factor_threshold: LVIS repeat-factor sampling threshold t; 0 disables it.
    data_fraction: use only this fraction of the dataset, in (0, 1]: the first
      ceil(data_fraction * num_files) files matched by `input_path` in sorted order (the
      converters write equal-sized shards), so the subset is deterministic and the same on every
      host (appendix Table 8 trains on 10/25/50/100% of Objects365).
    category_frequency_file: the converter's `*-category_frequency.json`; empty means the file
      beside the first shard, derived from `input_path`.
    ignore_label_in_eval: label ignored by the semantic metric (-1: none); VOC's background.
    panoptic_confidence_threshold: keep panoptic proposals above this class probability.
    panoptic_overlap_threshold: drop proposals that keep less than this fraction of their mask.
    min_segment_area: segments smaller than this many pixels are dropped (panoptic, instance).
    max_detections: number of (query, class) pairs kept for instance output.
    modules_dataset: evaluation only: the name of the training dataset whose dataset-specific
      modules (extra queries, class MLP, background embedding; appendix E) evaluate this set.
      Empty: the training dataset of the same name; for a set with none (direct transfer), the
      first training dataset of the same task type, else the first training dataset (see
      `modules_dataset_id`). No effect when the model has no dataset-specific modules.
    ignore_skipped_in_eval: instance evaluation: objects the raters skipped are ignore regions
      (their box), so a prediction on them is no false positive (DaTaSeg Objects365 set).
    instance_masks_from_boxes: evaluation only, instance task: each predicted mask is replaced by
      its filled bounding box (the tight box of its pixels at the original size; an empty mask
      stays empty) before scoring: the box-only baseline of the projection loss. Scores and the
      kept detections are those of the masks. `predict.py` and the exported models are unaffected.
    loss: matching-cost and loss weights used when this dataset is trained on.
  """
  name: str = ''
  task_type: str = common.TASK_SEMANTIC
  input_path: str = ''
  vocabulary: str = ''
  class_embeddings: str = ''
  num_classes_padded: int = 0
  sampling_weight: float = 1.0
  learning_rate_multiplier: float = 1.0
  aug_scale_min: float = 0.1
  aug_scale_max: float = 2.0
  aug_rand_hflip: bool = True
  repeat_factor_threshold: float = 0.0
  data_fraction: float = 1.0
  category_frequency_file: str = ''
  ignore_label_in_eval: int = -1
  panoptic_confidence_threshold: float = 0.85
  panoptic_overlap_threshold: float = 0.8
  min_segment_area: int = 4
  max_detections: int = 100
  modules_dataset: str = ''
  ignore_skipped_in_eval: bool = True
  instance_masks_from_boxes: bool = False
  loss: loss_config.LossWeights = dataclasses.field(default_factory=loss_config.LossWeights)


@dataclasses.dataclass
class DataConfig(cfg.DataConfig):
  """Input pipeline for a list of datasets.

  Attributes:
    datasets: the datasets, in dataset-id order.
    output_size: [height, width] of the model input (images are resized and padded / cropped).
    max_instances: static number of ground-truth objects per image in the training targets (M;
      the largest are kept, see `dataseg_parser`); evaluation scores every object.
    eval_groundtruth_size: no longer used: evaluation ground truth travels complete at each
      image's own size (`ops/groundtruth_codec.py`). Kept so that saved configs still load.
    dtype: image dtype fed to the model ('float32', 'bfloat16').
    autotune: tf.data autotuning (`tf.data.Options().autotune.enabled`). Off by default: its
      optimisation thread takes a share of the host's cores while the model trains, and an
      iterator waits for it when deleted, which held every `train.py` process open for up to a
      minute after its last step (docs/performance.md). Off, `tf.data.AUTOTUNE` map parallelism
      is the host's core count and AUTOTUNE prefetch buffers grow by tf.data's own rule.
  """
  datasets: Tuple[DatasetConfig, ...] = ()
  output_size: List[int] = dataclasses.field(default_factory=lambda: [1024, 1024])
  max_instances: int = 100
  eval_groundtruth_size: List[int] = dataclasses.field(default_factory=lambda: [2048, 2048])
  dtype: str = 'float32'
  seed: Optional[int] = 0
  shuffle_buffer_size: int = 1000
  drop_remainder: bool = True
  autotune: bool = False


def modules_dataset_id(eval_dataset: DatasetConfig,
                       train_datasets: Sequence[DatasetConfig]) -> int:
  """The DATASET_ID whose dataset-specific modules evaluate `eval_dataset` (see its docstring).

  Args:
    eval_dataset: a validation `DatasetConfig`.
    train_datasets: the training `DatasetConfig`s, in dataset-id order.

  Returns:
    An index into `train_datasets` (0 when there is none).

  Raises:
    ValueError: `modules_dataset` names no training dataset.
  """
  names = [d.name for d in train_datasets]
  if eval_dataset.modules_dataset:
    if eval_dataset.modules_dataset not in names:
      raise ValueError(f'Dataset {eval_dataset.name!r}: modules_dataset '
                       f'{eval_dataset.modules_dataset!r} is not a training dataset; expected '
                       f'one of {names}')
    return names.index(eval_dataset.modules_dataset)
  if eval_dataset.name in names:
    return names.index(eval_dataset.name)
  task_types = [d.task_type for d in train_datasets]
  if eval_dataset.task_type in task_types:
    return task_types.index(eval_dataset.task_type)
  return 0
