"""The DaTaSeg Task: wires inputs -> model -> per-dataset losses -> metrics. Thin by design.

Training: the input stream gives one dataset per step (drawn by the sampling ratio). The step looks
up that dataset's frozen text embeddings, runs the shared model, applies the dataset's loss (its
task's MERGE, matching and loss weights) through `tf.switch_case`, and sets the dataset's
learning-rate multiplier before the update. Evaluation runs each validation dataset with its own
vocabulary (and, with dataset-specific modules, those of the training dataset it belongs to:
`DatasetConfig.modules_dataset`) and task-specific post-processing, and scores it on the host
against the image's complete ground truth.
"""
from typing import Any, Dict, List, Optional

from absl import logging
import numpy as np
import tensorflow as tf, tf_keras

from official.core import base_task
from official.core import task_factory

from official_dataseg import common
from official_dataseg.configs import data as data_config
from official_dataseg.configs import dataseg as dataseg_config
from official_dataseg.dataloaders import input_builder
from official_dataseg.evaluation import dataset_evaluator
from official_dataseg.losses import class_losses
from official_dataseg.losses import criterion as criterion_lib
from official_dataseg.losses import merge as merge_lib
from official_dataseg.modeling import factory as model_factory
from official_dataseg.tasks import learning_rate as lr_lib
from official_dataseg.tasks import summary_images
from official_dataseg.tasks import vocabulary_tables

# Loss terms logged per dataset and returned by `build_losses`.
LOGGED_LOSSES = criterion_lib.LOSS_TERMS + (criterion_lib.LOSS_TOTAL,)
# Training summary: mean objects per image dropped from the targets for exceeding max_instances.
TRUNCATED_METRIC = 'truncated_objects_per_image'


def _replicas(value) -> List[np.ndarray]:
  """Per-replica tuples (from `experimental_local_results`) or one batch -> list of arrays."""
  return [np.asarray(v) for v in value] if isinstance(value, (tuple, list)) else [
      np.asarray(value)]


def _keep_thumbnails(state, thumbnails, is_padding, image_info, count: int) -> None:
  """Appends (thumbnail, IMAGE_INFO) of the first `count` real images to `state`.

  Each replica pads only the end of its batch, so its first real images are among its
  thumbnails, and replica order is the order in which the evaluator keeps its examples.
  """
  for replica_thumbnails, replica_padding, replica_info in zip(
      _replicas(thumbnails), _replicas(is_padding), _replicas(image_info)):
    for index, thumbnail in enumerate(replica_thumbnails):
      if len(state.summary_thumbnails) < count and not replica_padding[index]:
        state.summary_thumbnails.append((thumbnail, replica_info[index]))


@task_factory.register_task_cls(dataseg_config.DataSegTask)
class DataSegTask(base_task.Task):
  """Multi-dataset multi-task segmentation with one model."""

  def __init__(self, params: dataseg_config.DataSegTask, logging_dir: Optional[str] = None,
               name: Optional[str] = None):
    super().__init__(params, logging_dir=logging_dir, name=name)
    model_config = params.model
    embedding_dim = model_config.classifier_head.text_embedding_dim
    self._train_vocabularies = vocabulary_tables.VocabularyTable(
        params.train_data.datasets, params.text_encoder, embedding_dim)
    self._eval_vocabularies = {
        dataset.name: vocabulary_tables.VocabularyTable(
            [dataset], params.text_encoder, embedding_dim)
        for dataset in params.validation_data.datasets}
    # {eval dataset name: DATASET_ID of the training dataset whose modules evaluate it}.
    self._eval_modules_ids = {
        dataset.name: data_config.modules_dataset_id(dataset, params.train_data.datasets)
        for dataset in params.validation_data.datasets}
    merge_lib.validate_operator(params.merge_operator, 'task.merge_operator')
    if params.class_cost_type not in class_losses.CLASS_COST_TYPES:
      raise ValueError(f'task.class_cost_type must be one of {class_losses.CLASS_COST_TYPES}, '
                       f'got {params.class_cost_type!r}.')
    if params.semantic_matching not in criterion_lib.SEMANTIC_MATCHINGS:
      raise ValueError(f'task.semantic_matching must be one of '
                       f'{criterion_lib.SEMANTIC_MATCHINGS}, got {params.semantic_matching!r}.')
    self._criteria = [
        criterion_lib.DataSegLoss(
            task_type=dataset.task_type,
            num_classes=vocabulary.num_classes,
            is_thing=vocabulary.is_thing,
            weights=dataset.loss,
            merge_operator=params.merge_operator,
            semantic_matching=params.semantic_matching,
            class_cost_type=params.class_cost_type,
            gather_matched_pairs=(params.gather_matched_pairs
                                  and self._losses_may_leave_the_graph_static()),
            host_matching=(params.host_matching
                           and self._losses_may_leave_the_graph_static()))
        for dataset, vocabulary in zip(params.train_data.datasets,
                                       self._train_vocabularies.vocabularies)]
    self._learning_rate_multipliers = tf.constant(
        [d.learning_rate_multiplier for d in params.train_data.datasets], tf.float32)
    self._current_eval_dataset: Optional[str] = None
    # {eval dataset name: uint8 [H, W, 3] overlays} of the last evaluation (for the summaries).
    self.summary_images: Dict[str, List[np.ndarray]] = {}
    # Updates skipped in a row for a non-finite loss or gradient (see `train_step`).
    self.consecutive_nonfinite_steps = tf.Variable(
        0, trainable=False, dtype=tf.int64, name='consecutive_nonfinite_steps',
        synchronization=tf.VariableSynchronization.ON_WRITE,
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  def _losses_may_leave_the_graph_static(self) -> bool:
    """Dynamic shapes and host ops in the losses: not where XLA compiles the step.

    False on TPU and with `jit_compile_train_step`.
    """
    on_tpu = isinstance(tf.distribute.get_strategy(),
                        (tf.distribute.TPUStrategy, tf.distribute.experimental.TPUStrategy))
    return not on_tpu and not self.task_config.jit_compile_train_step

  # -------------------------------------------------------------------------
  # Model and optimizer.
  # -------------------------------------------------------------------------
  def build_model(self) -> tf_keras.Model:
    if self.task_config.init_seed is not None:
      tf_keras.utils.set_random_seed(self.task_config.init_seed)
    height, width = self.task_config.train_data.output_size
    input_specs = tf_keras.layers.InputSpec(shape=[None, height, width, 3])
    model = model_factory.build_dataseg_model(
        input_specs, self.task_config.model,
        num_datasets=max(1, len(self.task_config.train_data.datasets)))
    return model

  def initialize(self, model: tf_keras.Model) -> None:
    """Loads `init_checkpoint` into the backbone (ImageNet / MAE) or the whole model."""
    path = self.task_config.init_checkpoint
    if not path:
      return
    if tf.io.gfile.isdir(path):
      path = tf.train.latest_checkpoint(path)
    if self.task_config.init_checkpoint_modules == 'all':
      checkpoint = tf.train.Checkpoint(model=model)
    else:
      checkpoint = tf.train.Checkpoint(backbone=model.backbone)
    checkpoint.read(path).expect_partial().assert_existing_objects_matched()
    logging.info('Loaded %s weights from %s', self.task_config.init_checkpoint_modules, path)

  @classmethod
  def create_optimizer(cls, optimizer_config, runtime_config=None, dp_config=None):
    """Model Garden's optimizer with a per-dataset learning-rate multiplier."""
    from official.modeling import optimization  # pylint: disable=g-import-not-at-top
    from official.modeling import performance  # pylint: disable=g-import-not-at-top
    factory = optimization.OptimizerFactory(optimizer_config)
    learning_rate = lr_lib.MultipliedSchedule(factory.build_learning_rate())
    optimizer = factory.build_optimizer(learning_rate)
    if runtime_config and runtime_config.loss_scale:
      optimizer = performance.configure_optimizer(
          optimizer, use_float16=runtime_config.mixed_precision_dtype == 'float16',
          loss_scale=runtime_config.loss_scale)
    return optimizer

  # -------------------------------------------------------------------------
  # Inputs.
  # -------------------------------------------------------------------------
  def build_inputs(self, params, input_context: Optional[tf.distribute.InputContext] = None):
    """The mixed training stream (one dataset per batch)."""
    return input_builder.build_train_dataset(params, input_context)

  @property
  def eval_dataset_names(self) -> List[str]:
    return [d.name for d in self.task_config.validation_data.datasets]

  def build_eval_inputs(self, name: str, input_context=None) -> tf.data.Dataset:
    return input_builder.build_eval_datasets(
        self.task_config.validation_data, input_context, names=[name])[name]

  def eval_modules_id(self, name: str) -> int:
    """DATASET_ID of the training dataset whose dataset-specific modules evaluate `name`."""
    return self._eval_modules_ids[name]

  def set_eval_dataset(self, name: Optional[str]) -> None:
    """Selects the dataset the next traced `validation_step` evaluates."""
    self._current_eval_dataset = name

  # -------------------------------------------------------------------------
  # Training.
  # -------------------------------------------------------------------------
  def build_metrics(self, training: bool = True) -> List[tf_keras.metrics.Metric]:
    if not training:
      return []
    metrics = [tf_keras.metrics.Mean('skipped_nonfinite_steps', dtype=tf.float32),
               tf_keras.metrics.Mean('gradient_norm', dtype=tf.float32)]
    for dataset in self.task_config.train_data.datasets:
      for term in LOGGED_LOSSES:
        metrics.append(tf_keras.metrics.Mean(f'{dataset.name}/loss_{term}', dtype=tf.float32))
      # Objects per image left out of the training targets for exceeding max_instances (the
      # parser keeps the largest; evaluation never truncates).
      metrics.append(tf_keras.metrics.Mean(f'{dataset.name}/{TRUNCATED_METRIC}',
                                           dtype=tf.float32))
    return metrics

  def _model_inputs(self, images, table: vocabulary_tables.VocabularyTable, dataset_id):
    return {
        common.IMAGE: images,
        common.CLASS_EMBEDDINGS: tf.gather(table.embeddings, dataset_id),
        common.CLASS_VALID: tf.gather(table.valid, dataset_id),
        common.DATASET_ID: dataset_id,
    }

  def build_losses(self, labels: Dict[str, tf.Tensor], model_outputs: Dict[str, tf.Tensor],
                   aux_losses=None) -> Dict[str, tf.Tensor]:
    """Applies the loss of the batch's dataset; returns scalar terms and 'total'."""
    dataset_id = labels[common.DATASET_ID][0]
    mask_logits = model_outputs[common.MASK_LOGITS]
    class_logits = model_outputs[common.CLASS_LOGITS]
    if len(self._criteria) == 1:
      sums = self._criteria[0].local_sums(mask_logits, class_logits, labels)
    else:
      # Only the batch's criterion runs. Its cross-replica normaliser (an all-reduce, which is a
      # merge_call under Mirrored strategies) runs after the switch, on whichever branch ran.
      sums = tf.switch_case(dataset_id, [
          (lambda c=criterion: c.local_sums(mask_logits, class_logits, labels))
          for criterion in self._criteria])
    losses = criterion_lib.normalise_sums(sums)
    losses = {key: losses[key] for key in LOGGED_LOSSES}
    if aux_losses:
      losses['total'] += tf.add_n(aux_losses)
    return losses

  def train_step(self, inputs, model, optimizer, metrics=None):
    dataset_id = inputs[common.DATASET_ID][0]
    with tf.GradientTape() as tape:
      outputs = model(self._model_inputs(inputs[common.IMAGE], self._train_vocabularies,
                                         dataset_id), training=True)
      losses = self.build_losses(inputs, outputs, aux_losses=model.losses)
      # The criterion normalises by the number of objects summed over replicas, so the
      # replicas' gradients sum to the global-batch gradient: no 1/num_replicas here.
      loss = losses['total']
      if isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer):
        loss = optimizer.get_scaled_loss(loss)
    variables = model.trainable_variables
    gradients = tape.gradient(loss, variables)
    if isinstance(optimizer, tf_keras.mixed_precision.LossScaleOptimizer):
      gradients = optimizer.get_unscaled_gradients(gradients)
    # Before clipping (the optimizer clips to global norm 0.1): how far the step wanted to go.
    gradient_norm = tf.linalg.global_norm([g for g in gradients if g is not None])
    finite = tf.logical_and(tf.math.is_finite(losses['total']), tf.math.is_finite(gradient_norm))
    replica_context = tf.distribute.get_replica_context()
    if replica_context is not None and replica_context.num_replicas_in_sync > 1:
      # Skip on every replica when any replica is non-finite: the gradients are summed.
      num_nonfinite = replica_context.all_reduce(
          tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(finite, tf.float32))
      finite = tf.equal(num_nonfinite, 0.0)
    # A non-finite step is skipped: zero gradients and a zero learning rate leave every weight
    # unchanged (AdamW's decoupled weight decay scales with the learning rate too); only Adam's
    # moments decay by one step. It is counted, and the trainer stops after
    # `max_consecutive_nonfinite_steps` in a row. (A `tf.cond` around `apply_gradients` is not
    # possible: the optimizer's cross-replica merge cannot run inside a replica-side cond.)
    gradients = [tf.where(finite, g, tf.zeros_like(g)) if g is not None else None
                 for g in gradients]
    multiplier = tf.gather(self._learning_rate_multipliers, dataset_id)
    lr_lib.set_dataset_multiplier(optimizer, tf.where(finite, multiplier, 0.0))
    learning_rate = lr_lib.current_learning_rate(optimizer)
    optimizer.apply_gradients(list(zip(gradients, variables)))
    self.consecutive_nonfinite_steps.assign(
        tf.where(finite, tf.constant(0, tf.int64), self.consecutive_nonfinite_steps + 1))

    logs = {self.loss: tf.where(finite, losses['total'], 0.0),
            'learning_rate': learning_rate, 'gradient_norm': gradient_norm,
            'finite': finite}
    if metrics:
      by_name = {m.name: m for m in metrics}
      by_name['skipped_nonfinite_steps'].update_state(1.0 - tf.cast(finite, tf.float32))
      by_name['gradient_norm'].update_state(tf.where(finite, gradient_norm, 0.0),
                                            sample_weight=tf.cast(finite, tf.float32))
      for index, dataset in enumerate(self.task_config.train_data.datasets):
        weight = tf.cast(tf.equal(dataset_id, index), tf.float32)
        for term in LOGGED_LOSSES:
          value = tf.where(finite, losses[term], 0.0)
          by_name[f'{dataset.name}/loss_{term}'].update_state(value, sample_weight=weight)
        if common.NUM_TRUNCATED in inputs:
          by_name[f'{dataset.name}/{TRUNCATED_METRIC}'].update_state(
              tf.reduce_mean(tf.cast(inputs[common.NUM_TRUNCATED], tf.float32)),
              sample_weight=weight)
    return logs

  # -------------------------------------------------------------------------
  # Evaluation.
  # -------------------------------------------------------------------------
  def _eval_dataset_config(self) -> dataseg_config.DatasetConfig:
    for dataset in self.task_config.validation_data.datasets:
      if dataset.name == self._current_eval_dataset:
        return dataset
    raise ValueError(f'No validation dataset named {self._current_eval_dataset!r}; '
                     f'have {self.eval_dataset_names}')

  def validation_step(self, inputs, model, metrics=None):
    """Runs the model with the dataset's vocabulary; scoring happens on the host.

    The dataset-specific modules (if any) are those of `eval_modules_id(dataset name)`; the
    vocabulary table holds this one dataset, at row 0.
    """
    dataset = self._eval_dataset_config()
    table = self._eval_vocabularies[dataset.name]
    model_inputs = self._model_inputs(inputs[common.IMAGE], table, 0)
    model_inputs[common.DATASET_ID] = tf.constant(self.eval_modules_id(dataset.name), tf.int32)
    outputs = model(model_inputs, training=False)
    logs = {key: value for key, value in inputs.items() if key != common.IMAGE}
    logs[dataset_evaluator.PREDICTED_MASK_LOGITS] = outputs[common.MASK_LOGITS][-1]
    logs[dataset_evaluator.PREDICTED_CLASS_LOGITS] = outputs[common.CLASS_LOGITS][-1]
    if self.task_config.num_summary_images > 0:
      logs[summary_images.THUMBNAIL] = summary_images.thumbnails(
          inputs[common.IMAGE], self.task_config.num_summary_images)
    return logs

  def aggregate_logs(self, state=None, step_outputs=None):
    if state is None:
      dataset = self._eval_dataset_config()
      vocabulary = self._eval_vocabularies[dataset.name].vocabularies[0]
      state = dataset_evaluator.DatasetEvaluator(
          dataset, vocabulary.names, vocabulary.is_thing,
          keep_examples=self.task_config.num_summary_images)
      state.summary_thumbnails = []
    step_outputs = dict(step_outputs)
    thumbnails = step_outputs.pop(summary_images.THUMBNAIL, None)
    if thumbnails is not None:
      _keep_thumbnails(state, thumbnails, step_outputs[common.EVAL_IS_PADDING],
                       step_outputs[common.IMAGE_INFO], self.task_config.num_summary_images)
    state.update(step_outputs)
    return state

  def reduce_aggregated_logs(self, aggregated_logs, global_step=None) -> Dict[str, Any]:
    dataset = self._eval_dataset_config()
    names = aggregated_logs.class_names
    self.summary_images[dataset.name] = [
        summary_images.overlay(dataset.task_type,
                               summary_images.original_image(thumbnail, info),
                               example['prediction'], names)
        for (thumbnail, info), example in zip(getattr(aggregated_logs, 'summary_thumbnails', []),
                                              aggregated_logs.examples)]
    return aggregated_logs.result()
