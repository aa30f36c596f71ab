"""Scores one evaluation dataset from batches of model outputs (host side).

The device returns the last decoder layer's logits at the model's resolution with the evaluation
inputs, among them each image's complete ground truth (`common.EVAL_GROUNDTRUTH`: every object,
none truncated by `max_instances`); here, per image, the mask logits are mapped back to the original size (Mask2Former's
order: resize logits, then post-process) and the task's read-out and metric are applied:
semantic -> mIoU, panoptic -> PQ, instance -> mask AP.
"""
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf

from official_dataseg import common
from official_dataseg.evaluation import instance_metrics
from official_dataseg.evaluation import original_size
from official_dataseg.evaluation import panoptic_metrics
from official_dataseg.evaluation import postprocessing
from official_dataseg.evaluation import report
from official_dataseg.evaluation import semantic_metrics
from official_dataseg.ops import box_mask_ops
from official_dataseg.ops import groundtruth_codec

PREDICTED_MASK_LOGITS = 'predicted_mask_logits'    # float32 [B, N, h, w]
PREDICTED_CLASS_LOGITS = 'predicted_class_logits'  # float32 [B, N, C + 1]


def _to_numpy(value) -> np.ndarray:
  """Per-replica tuples (from `experimental_local_results`) -> one numpy batch."""
  if isinstance(value, (tuple, list)):
    return np.concatenate([np.asarray(v) for v in value], axis=0)
  return np.asarray(value)


class DatasetEvaluator:
  """Post-processes and scores the images of one dataset.

  Args:
    dataset_config: the `DatasetConfig` (task type, thresholds, ignore label,
      `instance_masks_from_boxes`).
    class_names: the vocabulary's display names, in label-index order.
    is_thing: [C] thing flags (panoptic read-out).
    keep_examples: how many (image, prediction) examples to keep for visualisation.
  """

  def __init__(self, dataset_config, class_names: Sequence[str], is_thing: Sequence[bool],
               keep_examples: int = 0):
    self.config = dataset_config
    self.class_names = list(class_names)
    self.is_thing = np.asarray(is_thing, bool)
    self.keep_examples = keep_examples
    self.examples: List[Dict[str, Any]] = []
    categories = [{'id': i, 'name': n, 'isthing': int(t)}
                  for i, (n, t) in enumerate(zip(self.class_names, self.is_thing))]
    task_type = dataset_config.task_type
    if task_type == common.TASK_SEMANTIC:
      ignore_classes = ((dataset_config.ignore_label_in_eval,)
                        if dataset_config.ignore_label_in_eval >= 0 else ())
      self.metric = semantic_metrics.SemanticEvaluator(
          len(self.class_names), ignore_label=common.VOID_LABEL, ignore_classes=ignore_classes)
    elif task_type == common.TASK_PANOPTIC:
      self.metric = panoptic_metrics.PanopticEvaluator(categories)
    elif task_type == common.TASK_INSTANCE:
      self.metric = instance_metrics.InstanceEvaluator(
          categories, ignore_skipped=dataset_config.ignore_skipped_in_eval,
          max_detections=dataset_config.max_detections)
    else:
      raise ValueError(f'Dataset {dataset_config.name!r}: task_type must be one of '
                       f'{common.TASK_TYPES}, got {task_type!r}')
    self.num_images = 0

  def update(self, outputs: Dict[str, Any]) -> None:
    """Adds a batch: model logits plus the evaluation inputs (see `common.EVAL_*`)."""
    batch = {key: _to_numpy(value) for key, value in outputs.items()}
    for index in range(batch[PREDICTED_MASK_LOGITS].shape[0]):
      if common.EVAL_IS_PADDING in batch and batch[common.EVAL_IS_PADDING][index]:
        continue
      self._update_image({key: value[index] for key, value in batch.items()})

  def _update_image(self, image: Dict[str, np.ndarray]) -> None:
    image_info = image[common.IMAGE_INFO]
    mask_logits = original_size.mask_logits_to_original(
        image[PREDICTED_MASK_LOGITS], image_info)[None]
    class_logits = tf.constant(image[PREDICTED_CLASS_LOGITS])[None]
    groundtruth = groundtruth_codec.decode_groundtruth(
        image[common.EVAL_GROUNDTRUTH],
        with_instance_masks=self.config.task_type == common.TASK_INSTANCE)
    height, width = [int(round(v)) for v in image_info[0]]
    if groundtruth.segmentation.shape != (height, width):
      raise ValueError(f'Dataset {self.config.name!r}, image {image.get(common.SOURCE_ID)!r}: '
                       f'ground truth is {groundtruth.segmentation.shape}, image_info says '
                       f'{(height, width)}')
    task_type = self.config.task_type
    prediction: Dict[str, np.ndarray] = {}
    if task_type == common.TASK_SEMANTIC:
      scores = postprocessing.semantic_inference(mask_logits, class_logits)
      predicted = postprocessing.semantic_label_map(scores)[0].numpy()
      gt_labels = semantic_metrics.label_map_from_segments(
          groundtruth.segmentation, groundtruth.classes, void_label=common.VOID_LABEL)
      self.metric.update(gt_labels, predicted)
      prediction['label_map'] = predicted
    elif task_type == common.TASK_PANOPTIC:
      result = postprocessing.panoptic_inference(
          mask_logits, class_logits, tf.constant(self.is_thing),
          confidence_threshold=self.config.panoptic_confidence_threshold,
          overlap_threshold=self.config.panoptic_overlap_threshold,
          min_area=self.config.min_segment_area)
      result = {k: v[0].numpy() for k, v in result.items()}
      self.metric.update_from_arrays(
          groundtruth.segmentation, groundtruth.classes, groundtruth.is_crowd,
          result['segment_map'], result['segment_classes'], result['segment_valid'])
      prediction.update(result)
    else:
      result = postprocessing.instance_inference(
          mask_logits, class_logits, top_k=self.config.max_detections,
          score_threshold=0.0, min_area=self.config.min_segment_area)
      if self.config.instance_masks_from_boxes:
        # The box-only baseline: each mask scored as its filled box (scores unchanged).
        result['masks'] = box_mask_ops.fill_mask_boxes(result['masks'])
      result = {k: v[0].numpy() for k, v in result.items()}
      keep = result['valid']
      self.metric.update(
          groundtruth.instance_masks, groundtruth.classes, groundtruth.is_crowd,
          groundtruth.is_ignored, result['masks'][keep], result['classes'][keep],
          result['scores'][keep], gt_boxes=groundtruth.boxes)
      prediction.update({k: v[keep] for k, v in result.items()})
    self.num_images += 1
    if len(self.examples) < self.keep_examples:
      self.examples.append({'image_info': image_info, 'prediction': prediction,
                            'source_id': image.get(common.SOURCE_ID)})

  def result(self) -> Dict[str, float]:
    """The dataset's headline metrics (percent) and the number of images scored."""
    metrics = report.headline_metrics(self.config.task_type, self.metric.result())
    metrics['num_images'] = float(self.num_images)
    return metrics
