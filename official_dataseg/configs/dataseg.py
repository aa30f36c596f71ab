"""DaTaSeg task configuration and the registered experiments.

Every number the paper states lives here (DESIGN sections 3-7, appendix H and Table 13); the code
holds none of them. Experiments:

  dataseg_r50        ResNet-50, batch 384, 500k steps, lr 3e-5 (paper Table 1)
  dataseg_vitdet_b   ViTDet-B, 600k steps, lr 6e-5
  dataseg_vitdet_l   ViTDet-L, batch 256, 540.5k steps, lr 4e-5
  dataseg_demo       a small model on the built-in synthetic suite, for 2 CPU cores

plus the single-dataset baselines and one experiment per ablation of appendix Tables 7-12
(`ABLATIONS` below; docs/experiments.md lists them with the paper numbers each reproduces).
"""
import dataclasses
from typing import List, Optional, Sequence

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import hyperparams
from official.modeling import optimization

from official_dataseg import common
from official_dataseg.configs import data as data_config
from official_dataseg.configs import losses as loss_config
from official_dataseg.configs import model as model_config

DatasetConfig = data_config.DatasetConfig
DataConfig = data_config.DataConfig


@dataclasses.dataclass
class DataSegTask(cfg.TaskConfig):
  """The DaTaSeg task: one model co-trained on several datasets.

  Attributes:
    model: the network.
    train_data: the co-trained datasets (one is drawn per step).
    validation_data: the datasets evaluated, each with its own vocabulary.
    text_encoder: which shipped text embeddings the vocabularies use ('minilm' or 'clip').
    init_checkpoint_modules: 'backbone' restores only the backbone from `init_checkpoint` (an
      ImageNet / MAE checkpoint); 'all' restores the whole model.
    max_consecutive_nonfinite_steps: training stops with an error after this many updates in a
      row were skipped for a non-finite loss or gradient.
    jit_compile_train_step: compile the whole train step (forward, matching, losses, backward,
      update) with XLA (`jit_compile=True`), on any device. TPUs compile it anyway; Model
      Garden's `runtime.enable_xla` only acts on GPUs.
    gather_matched_pairs: compute the mask losses only on the supervised (layer, image, GT)
      pairs, gathered into a dynamic batch, instead of on every padded GT slot (the same values;
      several times less loss work when most of the `max_instances` slots are padding). Dynamic
      shapes do not compile for TPU: the static form is used on TPU and with
      `jit_compile_train_step` whatever this says.
    host_matching: solve the Hungarian matching of the last layer's entries to the ground truth
      with SciPy (`linear_sum_assignment`) on the host, on each image's valid rows and columns,
      instead of Model Garden's in-graph solver on the padded square matrix (`losses/matcher.py`):
      the same assignment (the two can differ only where costs tie); on a 2-core CPU the
      in-graph solver alone took 0.19 s of a 512x512 COCO step of batch 2 and the step got
      0.37-0.48 s faster (docs/performance.md). A host op does not compile for TPU: the
      in-graph solver is used on TPU and with `jit_compile_train_step` whatever this says.
    checkpoint_train_iterator: save the training input iterator (shuffle buffers, file positions,
      the dataset-choice stream) in every checkpoint, so a restarted run resumes at the same
      data position. Costs checkpoint space of the order of the shuffle and prefetch buffers.
    device_input_buffer: with `checkpoint_train_iterator`, keep the next batch on each replica's
      device (`tasks/device_input_buffer.py`): its copy from the host runs during the current
      step instead of before the next one, and the buffer is saved with the iterator, so the
      resumed stream stays exact. Costs one per-replica batch of device memory and of
      checkpoint space per replica. (Without `checkpoint_train_iterator`, tf.distribute's own
      iterator prefetches to the devices and the position is not saved.)
    num_summary_images: prediction overlays written to the eval summaries per dataset.
    merge_operator: the training MERGE of semantic and panoptic datasets (`losses/merge.py`,
      docs/losses.md): 'clipped_sum' (the paper's: merged mask probability = min(1, sum of the
      argmax members' mask probabilities)), 'weighted_clipped_sum' (min(1, sum of member mask
      probability x the member's probability of the group's class)), 'smooth_union'
      (1 - prod over members (1 - p), computed in log space; keeps a gradient where members
      overlap), 'soft_assignment' (no argmax grouping: every proposal belongs to every class
      group with its probability of that class; merged mask = min(1, sum of p(class) x mask
      probability), merged class distribution = the members' distributions weighted the same
      way; the default, chosen by the fidelity study, docs/results.md), or 'none' (no MERGE:
      every dataset matches the N proposals directly, like Mask2Former's semantic / panoptic
      training). Instance datasets never merge.
    semantic_matching: how a semantic dataset's merged entries (one per class) are paired with
      its ground-truth masks (one per class): 'by_class' (entry c with the ground truth of
      class c; the default) or 'hungarian' (by the matching cost, like proposals: the paper's
      reading). See docs/results.md.
    class_cost_type: the class term of the matching cost: 'cross_entropy' (-log p, the loss
      itself) or 'neg_prob' (-p, Mask2Former's).
    init_seed: seeds the random initialisation of the model (and every other unseeded Python,
      NumPy and TensorFlow draw of the process) before it is built, so a run is repeatable;
      None leaves it random. The data order and augmentation follow `train_data.seed`.
  """
  model: model_config.DataSegModel = dataclasses.field(
      default_factory=model_config.DataSegModel)
  train_data: DataConfig = dataclasses.field(
      default_factory=lambda: DataConfig(is_training=True))
  validation_data: DataConfig = dataclasses.field(
      default_factory=lambda: DataConfig(is_training=False, drop_remainder=False))
  text_encoder: str = 'minilm'
  init_checkpoint_modules: str = 'backbone'
  max_consecutive_nonfinite_steps: int = 20
  jit_compile_train_step: bool = False
  gather_matched_pairs: bool = True
  host_matching: bool = True
  checkpoint_train_iterator: bool = True
  device_input_buffer: bool = True
  num_summary_images: int = 2
  merge_operator: str = 'soft_assignment'
  semantic_matching: str = 'by_class'
  class_cost_type: str = 'cross_entropy'
  init_seed: Optional[int] = None


# ---------------------------------------------------------------------------
# Datasets of the paper (DESIGN sections 1, 6, 8). Paths are relative to the directory where
# `tfrecords_tools` wrote them; override with --params_override or a YAML file.
# ---------------------------------------------------------------------------
def ade20k_semantic_train(path='tfrecords/ade20k_semantic/train-*-of-*') -> DatasetConfig:
  return DatasetConfig(
      name='ade20k_semantic', task_type=common.TASK_SEMANTIC, input_path=path,
      vocabulary='ade20k_semantic', sampling_weight=1.0, learning_rate_multiplier=3.0,
      aug_scale_min=0.5, aug_scale_max=2.0,
      loss=loss_config.ade_semantic_loss_weights())


def coco_panoptic_train(path='tfrecords/coco_panoptic/train-*-of-*') -> DatasetConfig:
  return DatasetConfig(
      name='coco_panoptic', task_type=common.TASK_PANOPTIC, input_path=path,
      vocabulary='coco_panoptic', sampling_weight=4.0, learning_rate_multiplier=5.0,
      aug_scale_min=0.1, aug_scale_max=2.0,
      loss=loss_config.coco_panoptic_loss_weights())


def objects365_train(path='tfrecords/objects365/train-*-of-*') -> DatasetConfig:
  return DatasetConfig(
      name='objects365', task_type=common.TASK_INSTANCE, input_path=path,
      vocabulary='objects365', sampling_weight=4.0, learning_rate_multiplier=2.0,
      aug_scale_min=0.1, aug_scale_max=2.0, repeat_factor_threshold=0.01,
      loss=loss_config.o365_box_loss_weights())


def paper_eval_datasets() -> List[DatasetConfig]:
  """The paper's evaluation sets: the four main ones, then direct transfer (DESIGN section 8)."""
  return [
      DatasetConfig(name='ade20k_semantic', task_type=common.TASK_SEMANTIC,
                    input_path='tfrecords/ade20k_semantic/val-*-of-*', vocabulary='ade20k_semantic'),
      DatasetConfig(name='coco_panoptic', task_type=common.TASK_PANOPTIC,
                    input_path='tfrecords/coco_panoptic/val-*-of-*', vocabulary='coco_panoptic',
                    panoptic_confidence_threshold=0.85),
      DatasetConfig(name='ade20k_panoptic', task_type=common.TASK_PANOPTIC,
                    input_path='tfrecords/ade20k_panoptic/val-*-of-*', vocabulary='ade20k_panoptic',
                    panoptic_confidence_threshold=0.8),
      DatasetConfig(name='objects365_instance', task_type=common.TASK_INSTANCE,
                    input_path='tfrecords/objects365_instance/val-*-of-*', vocabulary='objects365'),
      DatasetConfig(name='pascal_voc', task_type=common.TASK_SEMANTIC,
                    input_path='tfrecords/pascal_voc/val-*-of-*', vocabulary='pascal_voc',
                    ignore_label_in_eval=0),
      DatasetConfig(name='pascal_context_59', task_type=common.TASK_SEMANTIC,
                    input_path='tfrecords/pascal_context_59/val-*-of-*',
                    vocabulary='pascal_context_59'),
      DatasetConfig(name='pascal_context_459', task_type=common.TASK_SEMANTIC,
                    input_path='tfrecords/pascal_context_459/val-*-of-*',
                    vocabulary='pascal_context_459'),
      DatasetConfig(name='coco_semantic', task_type=common.TASK_SEMANTIC,
                    input_path='tfrecords/coco_semantic/val-*-of-*', vocabulary='coco_semantic'),
      DatasetConfig(name='cityscapes_panoptic', task_type=common.TASK_PANOPTIC,
                    input_path='tfrecords/cityscapes_panoptic/val-*-of-*',
                    vocabulary='cityscapes_panoptic', panoptic_confidence_threshold=0.8),
  ]


def resnet50_model() -> model_config.DataSegModel:
  """ResNet-50 (Model Garden's), FPN, 9-layer masked-attention decoder, 100 queries."""
  return model_config.DataSegModel(input_size=[1024, 1024, 3])


def vitdet_model(model_id: str) -> model_config.DataSegModel:
  """ViTDet-B ('vit-b') or ViTDet-L ('vit-l') with ViTDet's simple feature pyramid."""
  return model_config.DataSegModel(
      input_size=[1024, 1024, 3],
      backbone=model_config.Backbone(type='vitdet',
                                     vitdet=model_config.ViTDet(model_id=model_id)))


def demo_model() -> model_config.DataSegModel:
  """A small DaTaSeg (ResNet-18, 64 wide, 6 decoder layers, 16 queries) for 2 CPU cores."""
  return model_config.DataSegModel(
      input_size=[128, 128, 3],
      backbone=model_config.Backbone(type='resnet',
                                     resnet=model_config.backbones.ResNet(model_id=18)),
      norm_activation=model_config.common.NormActivation(activation='relu',
                                                         use_sync_bn=False),
      pixel_decoder=model_config.PixelDecoder(num_filters=64, mask_embedding_dim=64),
      transformer_decoder=model_config.TransformerDecoder(
          num_layers=6, hidden_size=64, num_heads=4, ffn_dim=256, num_queries=16),
  )


def step_schedule_optimization(learning_rate: float, train_steps: int,
                               warmup_steps: int) -> optimization.OptimizationConfig:
  """AdamW (wd 0.05, global-norm clip 0.1), lr x0.1 at 90% and 95% of training."""
  boundaries = [int(0.9 * train_steps), int(0.95 * train_steps)]
  return optimization.OptimizationConfig({
      'optimizer': {
          'type': 'adamw',
          'adamw': {
              'weight_decay_rate': 0.05,
              'gradient_clip_norm': 0.0,
              'global_clipnorm': 0.1,
              'exclude_from_weight_decay': ['LayerNorm', 'layer_norm', 'bias', 'beta',
                                            'gamma', 'embedding'],
          },
      },
      'learning_rate': {
          'type': 'stepwise',
          'stepwise': {
              'boundaries': boundaries,
              # Rounded to 12 digits: 4e-06, not 4.000000000000001e-06, in saved configs.
              'values': [float(f'{learning_rate * factor:.12g}') for factor in (1, 0.1, 0.01)],
          },
      },
      'warmup': {
          'type': 'linear',
          'linear': {'warmup_steps': warmup_steps, 'warmup_learning_rate': 0.0},
      },
  })


def _paper_experiment(model: model_config.DataSegModel, global_batch_size: int,
                      train_steps: int, learning_rate: float) -> cfg.ExperimentConfig:
  """ADE semantic + COCO panoptic + O365 boxes co-training at 1024x1024 (appendix H)."""
  train_data = DataConfig(
      is_training=True, global_batch_size=global_batch_size, output_size=[1024, 1024],
      max_instances=100, dtype='bfloat16',
      datasets=(ade20k_semantic_train(), coco_panoptic_train(), objects365_train()))
  validation_data = DataConfig(
      is_training=False, global_batch_size=8, output_size=[1024, 1024], max_instances=100,
      drop_remainder=False, dtype='bfloat16', datasets=tuple(paper_eval_datasets()))
  checkpoint_interval = 5000
  return cfg.ExperimentConfig(
      task=DataSegTask(model=model, train_data=train_data, validation_data=validation_data),
      runtime=cfg.RuntimeConfig(distribution_strategy='tpu',
                                mixed_precision_dtype='bfloat16'),
      trainer=cfg.TrainerConfig(
          train_steps=train_steps,
          validation_steps=-1,
          validation_interval=50000,
          steps_per_loop=1000,
          summary_interval=1000,
          checkpoint_interval=checkpoint_interval,
          max_to_keep=5,
          eval_tf_while_loop=False,
          optimizer_config=step_schedule_optimization(learning_rate, train_steps,
                                                      warmup_steps=1000)),
      restrictions=['task.train_data.is_training != None',
                    'task.validation_data.is_training != None'])


@exp_factory.register_config_factory('dataseg_r50')
def dataseg_r50() -> cfg.ExperimentConfig:
  """ResNet-50: batch 384, 500k steps, lr 3e-5 on 64 TPU v4 chips."""
  return _paper_experiment(resnet50_model(), global_batch_size=384,
                           train_steps=500000, learning_rate=3e-5)


@exp_factory.register_config_factory('dataseg_vitdet_b')
def dataseg_vitdet_b() -> cfg.ExperimentConfig:
  """ViTDet-B: 600k steps, lr 6e-5 (batch not stated in the paper; 256 as for ViTDet-L)."""
  return _paper_experiment(vitdet_model('vit-b'), global_batch_size=256,
                           train_steps=600000, learning_rate=6e-5)


@exp_factory.register_config_factory('dataseg_vitdet_l')
def dataseg_vitdet_l() -> cfg.ExperimentConfig:
  """ViTDet-L: batch 256, 540.5k steps, lr 4e-5 on 128 TPU v4 chips."""
  return _paper_experiment(vitdet_model('vit-l'), global_batch_size=256,
                           train_steps=540500, learning_rate=4e-5)


# ---------------------------------------------------------------------------
# The demo: the built-in synthetic suite (written by `tfrecords_tools.synthetic_suite` and
# converted by the real converters) and a small model that trains on 2 CPU cores in minutes.
# ---------------------------------------------------------------------------
def demo_train_datasets(root: str = 'demo_output/tfrecords') -> Sequence[DatasetConfig]:
  return (
      DatasetConfig(name='synthetic_ade', task_type=common.TASK_SEMANTIC,
                    input_path=f'{root}/synthetic_ade_train-*-of-*', vocabulary='synthetic_ade',
                    sampling_weight=1.0, learning_rate_multiplier=3.0,
                    aug_scale_min=0.5, aug_scale_max=2.0,
                    loss=loss_config.ade_semantic_loss_weights()),
      DatasetConfig(name='synthetic_coco', task_type=common.TASK_PANOPTIC,
                    input_path=f'{root}/synthetic_coco_train-*-of-*', vocabulary='synthetic_coco',
                    sampling_weight=4.0, learning_rate_multiplier=5.0,
                    aug_scale_min=0.5, aug_scale_max=2.0,
                    loss=loss_config.coco_panoptic_loss_weights()),
      DatasetConfig(name='synthetic_o365', task_type=common.TASK_INSTANCE,
                    input_path=f'{root}/synthetic_o365_train-*-of-*', vocabulary='synthetic_o365',
                    sampling_weight=4.0, learning_rate_multiplier=2.0,
                    aug_scale_min=0.5, aug_scale_max=2.0, repeat_factor_threshold=0.01,
                    loss=loss_config.o365_box_loss_weights()),
  )


def demo_eval_datasets(root: str = 'demo_output/tfrecords') -> Sequence[DatasetConfig]:
  return (
      DatasetConfig(name='synthetic_ade', task_type=common.TASK_SEMANTIC,
                    input_path=f'{root}/synthetic_ade_val-*-of-*', vocabulary='synthetic_ade'),
      DatasetConfig(name='synthetic_coco', task_type=common.TASK_PANOPTIC,
                    input_path=f'{root}/synthetic_coco_val-*-of-*', vocabulary='synthetic_coco',
                    panoptic_confidence_threshold=0.5),
      DatasetConfig(name='synthetic_o365', task_type=common.TASK_INSTANCE,
                    input_path=f'{root}/synthetic_o365_val-*-of-*',
                    vocabulary='synthetic_o365'),
      DatasetConfig(name='synthetic_voc', task_type=common.TASK_SEMANTIC,
                    input_path=f'{root}/synthetic_voc_val-*-of-*', vocabulary='synthetic_voc',
                    ignore_label_in_eval=0),
  )


@exp_factory.register_config_factory('dataseg_demo')
def dataseg_demo() -> cfg.ExperimentConfig:
  """A small DaTaSeg on the built-in synthetic suite: trains on 2 CPU cores in minutes."""
  train_steps = 600
  train_data = DataConfig(
      is_training=True, global_batch_size=8, output_size=[128, 128], max_instances=16,
      shuffle_buffer_size=64, datasets=tuple(demo_train_datasets()))
  validation_data = DataConfig(
      is_training=False, global_batch_size=8, output_size=[128, 128], max_instances=16,
      eval_groundtruth_size=[256, 256], drop_remainder=False,
      datasets=tuple(demo_eval_datasets()))
  return cfg.ExperimentConfig(
      task=DataSegTask(model=demo_model(), train_data=train_data,
                       validation_data=validation_data),
      runtime=cfg.RuntimeConfig(distribution_strategy='one_device', num_gpus=0),
      trainer=cfg.TrainerConfig(
          train_steps=train_steps,
          validation_steps=-1,
          validation_interval=train_steps,
          steps_per_loop=50,
          summary_interval=50,
          checkpoint_interval=200,
          max_to_keep=3,
          eval_tf_while_loop=False,
          optimizer_config=step_schedule_optimization(2e-4, train_steps, warmup_steps=50)),
      restrictions=['task.train_data.is_training != None',
                    'task.validation_data.is_training != None'])


# ---------------------------------------------------------------------------
# Single-dataset baselines and the ablations of appendix Tables 7-12, all on ResNet-50 (Table 12
# also on ViTDet-B / ViTDet-L). Each changes one thing of `dataseg_r50` (or the ViTDet
# experiment); everything else is the paper setting.
# ---------------------------------------------------------------------------
def _replace_dataset(config: cfg.ExperimentConfig, name: str, **changes) -> None:
  datasets = list(config.task.train_data.datasets)
  index = [d.name for d in datasets].index(name)
  datasets[index] = datasets[index].replace(**changes)
  config.task.train_data.datasets = tuple(datasets)


def _sampling_ratio(ade: float, coco: float, o365: float) -> cfg.ExperimentConfig:
  """Table 7: ADE:COCO:O365 sampling ratio (the paper's is 1:4:4)."""
  config = dataseg_r50()
  for name, weight in (('ade20k_semantic', ade), ('coco_panoptic', coco), ('objects365', o365)):
    _replace_dataset(config, name, sampling_weight=weight)
  return config


def _o365_portion(fraction: float) -> cfg.ExperimentConfig:
  """Table 8: co-training on the first `fraction` of Objects365 (whole shards)."""
  config = dataseg_r50()
  _replace_dataset(config, 'objects365', data_fraction=fraction)
  return config


def _projection_weights(loss_weight: float, matching_weight: float) -> cfg.ExperimentConfig:
  """Table 9: (lambda_proj, mu_proj) of Objects365 (the paper's is (2, 0.5))."""
  config = dataseg_r50()
  o365 = [d for d in config.task.train_data.datasets if d.name == 'objects365'][0]
  _replace_dataset(config, 'objects365', loss=o365.loss.replace(
      projection=loss_weight, matching_projection=matching_weight))
  return config


# Which training dataset's modules evaluate each paper set when the model has dataset-specific
# modules. The training sets use their own; the weak-transfer sets the modules of the dataset
# whose images they share (ADE panoptic: ADE; the O365 instance set: O365); the direct-transfer
# sets have none of their own: **interpretation**, the co-trained dataset closest in content
# (VOC's and COCO semantic's classes are COCO classes, Cityscapes is panoptic like COCO, PASCAL
# Context labels whole scenes like ADE). docs/evaluation.md lists the same.
PAPER_EVAL_MODULES = {
    'ade20k_semantic': 'ade20k_semantic',
    'coco_panoptic': 'coco_panoptic',
    'ade20k_panoptic': 'ade20k_semantic',
    'objects365_instance': 'objects365',
    'pascal_voc': 'coco_panoptic',
    'pascal_context_59': 'ade20k_semantic',
    'pascal_context_459': 'ade20k_semantic',
    'coco_semantic': 'coco_panoptic',
    'cityscapes_panoptic': 'coco_panoptic',
}


def _dataset_specific(base, num_queries: int = 0,
                      classification: bool = False) -> cfg.ExperimentConfig:
  """Tables 10-12: dataset-specific queries and / or class head + background classifier.

  Each evaluation set names the training dataset whose modules evaluate it
  (`PAPER_EVAL_MODULES`).
  """
  config = base()
  config.task.model.dataset_specific = model_config.DatasetSpecificModules(
      num_queries_per_dataset=num_queries, class_head=classification, background=classification)
  config.task.validation_data.datasets = tuple(
      d.replace(modules_dataset=PAPER_EVAL_MODULES[d.name])
      for d in config.task.validation_data.datasets)
  return config


def _single_dataset(name: str) -> cfg.ExperimentConfig:
  """A separately trained baseline (paper Table 2): one training dataset, the same settings.

  The dataset keeps its learning-rate multiplier, so its steps see the learning rate they see in
  co-training; evaluation covers every paper set (other vocabularies test transfer).
  """
  config = dataseg_r50()
  config.task.train_data.datasets = tuple(
      d for d in config.task.train_data.datasets if d.name == name)
  return config


# Dataset-specific queries in the all-modules model of Table 12: the paper does not say how many;
# 10 (the smallest of Table 10) is our choice.
ALL_MODULES_NUM_QUERIES = 10

# name: (factory, what it reproduces). docs/experiments.md lists the same.
ABLATIONS = {
    'dataseg_r50_ade20k_only': (lambda: _single_dataset('ade20k_semantic'),
                                'Table 2 baseline: ADE20K semantic only'),
    'dataseg_r50_coco_only': (lambda: _single_dataset('coco_panoptic'),
                              'Table 2 baseline: COCO panoptic only'),
    'dataseg_r50_o365_only': (lambda: _single_dataset('objects365'),
                              'Table 2 baseline: Objects365 boxes only'),
    'dataseg_r50_sampling_1_2_2': (lambda: _sampling_ratio(1, 2, 2), 'Table 7, ratio 1:2:2'),
    'dataseg_r50_sampling_1_1_1': (lambda: _sampling_ratio(1, 1, 1), 'Table 7, ratio 1:1:1'),
    'dataseg_r50_o365_10pct': (lambda: _o365_portion(0.10), 'Table 8, 10% of O365'),
    'dataseg_r50_o365_25pct': (lambda: _o365_portion(0.25), 'Table 8, 25% of O365'),
    'dataseg_r50_o365_50pct': (lambda: _o365_portion(0.50), 'Table 8, 50% of O365'),
    'dataseg_r50_o365_100pct': (lambda: _o365_portion(1.0), 'Table 8, 100% of O365'),
    'dataseg_r50_projection_5_1': (lambda: _projection_weights(5.0, 1.0),
                                   'Table 9, (lambda_proj, mu_proj) = (5, 1)'),
    'dataseg_r50_queries_10': (lambda: _dataset_specific(dataseg_r50, num_queries=10),
                               'Table 10, 10 dataset-specific queries'),
    'dataseg_r50_queries_20': (lambda: _dataset_specific(dataseg_r50, num_queries=20),
                               'Table 10, 20 dataset-specific queries'),
    'dataseg_r50_queries_30': (lambda: _dataset_specific(dataseg_r50, num_queries=30),
                               'Table 10, 30 dataset-specific queries'),
    'dataseg_r50_specific_classification': (
        lambda: _dataset_specific(dataseg_r50, classification=True),
        'Table 11, dataset-specific class head and background'),
    'dataseg_r50_all_specific_modules': (
        lambda: _dataset_specific(dataseg_r50, ALL_MODULES_NUM_QUERIES, True),
        'Table 12, ResNet-50 + all dataset-specific modules'),
    'dataseg_vitdet_b_all_specific_modules': (
        lambda: _dataset_specific(dataseg_vitdet_b, ALL_MODULES_NUM_QUERIES, True),
        'Table 12, ViTDet-B + all dataset-specific modules'),
    'dataseg_vitdet_l_all_specific_modules': (
        lambda: _dataset_specific(dataseg_vitdet_l, ALL_MODULES_NUM_QUERIES, True),
        'Table 12, ViTDet-L + all dataset-specific modules'),
}

for _name, (_factory, _) in ABLATIONS.items():
  exp_factory.register_config_factory(_name)(_factory)
