"""Prediction overlays for the evaluation summaries (TensorBoard's Images tab).

The device returns, per eval batch, small thumbnails of the first images (`thumbnails`); the host
maps a thumbnail back to the image's original size (the inverse of the parser's resize / pad and
normalisation) and draws the evaluator's read-out on it with `evaluation.visualization`.
"""
from typing import Any, Dict, Sequence

import numpy as np
from PIL import Image
import tensorflow as tf

from official.vision.ops import preprocess_ops

from official_dataseg import common
from official_dataseg.evaluation import visualization

THUMBNAIL = 'summary_thumbnail'  # float32 [k, S_h / THUMBNAIL_STRIDE, S_w / THUMBNAIL_STRIDE, 3]
THUMBNAIL_STRIDE = 4


def thumbnails(images: tf.Tensor, count: int) -> tf.Tensor:
  """Downsamples the first `count` model inputs.

  Args:
    images: [B, S_h, S_w, 3] normalised images (any float dtype).
    count: number of thumbnails (clipped to B).

  Returns:
    float32 [min(count, B), S_h / 4, S_w / 4, 3], still normalised.
  """
  height, width = images.shape[1:3]
  return tf.image.resize(tf.cast(images[:count], tf.float32),
                         [height // THUMBNAIL_STRIDE, width // THUMBNAIL_STRIDE],
                         method='area')


def original_image(thumbnail: np.ndarray, image_info: np.ndarray) -> np.ndarray:
  """uint8 [H, W, 3] at the original size from a normalised thumbnail and IMAGE_INFO [4, 2]."""
  (height, width), (scaled_h, scaled_w) = np.round(image_info[:2]).astype(int)
  crop = thumbnail[:max(1, int(round(scaled_h / THUMBNAIL_STRIDE))),
                   :max(1, int(round(scaled_w / THUMBNAIL_STRIDE)))]
  rgb = crop * np.array(preprocess_ops.STDDEV_NORM) + np.array(preprocess_ops.MEAN_NORM)
  rgb = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
  return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))


def overlay(task_type: str, image: np.ndarray, prediction: Dict[str, Any],
            class_names: Sequence[str]) -> np.ndarray:
  """Draws the evaluator's per-image read-out (see `DatasetEvaluator.examples`)."""
  if task_type == common.TASK_SEMANTIC:
    return visualization.overlay_semantic(image, prediction['label_map'], class_names)
  if task_type == common.TASK_PANOPTIC:
    segment_map = np.asarray(prediction['segment_map']).astype(np.int64)
    classes = np.where(prediction['segment_valid'], prediction['segment_classes'], -1)
    # Segment s (1..S) is entry s - 1 of the per-segment arrays; 0 is void.
    lookup = np.concatenate([[-1], classes]).astype(np.int64)
    category_map = lookup[np.clip(segment_map, 0, len(classes))]
    return visualization.overlay_panoptic(image, category_map, segment_map, class_names)
  return visualization.overlay_instances(image, prediction['masks'], prediction['classes'],
                                         prediction['scores'], class_names)
