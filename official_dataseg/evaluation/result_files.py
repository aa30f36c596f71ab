"""Writes predictions as the standard result files that `evaluation/evaluate.py` scores.

One `ResultFiles` per output folder and task:
  panoptic: `panoptic.json` (COCO panoptic `annotations`: image_id, file_name, segments_info with
    the dataset's category ids) + `panoptic/<stem>.png` (segment id = R + 256 G + 256^2 B);
  instance: `instances_results.json` (COCO results: image_id, category_id, RLE segmentation,
    score), every valid detection of the read-out;
  semantic: `semantic/<stem>.png`, class indices 0..C-1 (8-bit, 16-bit when C > 256); no pixel
    is void (the read-out is an argmax).
Category ids are the vocabulary's `id`s (the dataset's own ids), or the class indices when the
vocabulary's ids are unknown. Files are written atomically (temporary file, then rename).
"""
import json
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

from official_dataseg import common
from official_dataseg.evaluation import file_formats
from official_dataseg.evaluation import instance_metrics
from official_dataseg.utils import atomic_write

PANOPTIC_JSON = 'panoptic.json'
PANOPTIC_FOLDER = 'panoptic'
INSTANCE_JSON = 'instances_results.json'
SEMANTIC_FOLDER = 'semantic'


def _write_json_atomic(path: str, content: Any) -> None:
  with atomic_write.atomic_write(path) as f:
    json.dump(content, f)


def write_label_png(path: str, label_map: np.ndarray, num_classes: int) -> None:
  """Writes [H, W] class indices as an 8-bit (C <= 256) or 16-bit label PNG, atomically."""
  label_map = np.asarray(label_map)
  if label_map.size and (label_map.min() < 0 or label_map.max() >= num_classes):
    raise ValueError(f'{path}: labels {label_map.min()}..{label_map.max()} outside '
                     f'[0, {num_classes})')
  dtype = np.uint8 if num_classes <= 256 else np.uint16
  with atomic_write.atomic_write(path, 'wb') as f:
    Image.fromarray(label_map.astype(dtype)).save(f, format='PNG')


class ResultFiles:
  """Collects one task's predictions image by image; `close()` writes the JSON files.

  Args:
    output_dir: the folder (created).
    task: 'panoptic', 'instance' or 'semantic'.
    category_ids: [C] the dataset's category id of each class index; None: the class indices.
  """

  def __init__(self, output_dir: str, task: str, category_ids: Optional[Sequence[int]] = None):
    if task not in common.TASK_TYPES:
      raise ValueError(f'task must be one of {common.TASK_TYPES}, got {task!r}')
    self.output_dir = output_dir
    self.task = task
    self._category_ids = None if category_ids is None else [int(i) for i in category_ids]
    self._panoptic_annotations: List[Dict[str, Any]] = []
    self._detections: List[Dict[str, Any]] = []
    os.makedirs(output_dir, exist_ok=True)

  def _category_id(self, class_index: int) -> int:
    if self._category_ids is None:
      return int(class_index)
    if not 0 <= class_index < len(self._category_ids):
      raise ValueError(f'class index {class_index} outside the {len(self._category_ids)}-class '
                       'vocabulary')
    return self._category_ids[int(class_index)]

  def add(self, image_id: Any, file_stem: str, outputs: Dict[str, np.ndarray]) -> None:
    """Adds one image's serving outputs (batch of one, as `predict.py` gets them).

    Args:
      image_id: the image's id in the ground truth (int or str).
      file_stem: the image file name without extension (names the PNG files).
      outputs: the signature's outputs: panoptic 'panoptic_map' [1, H, W], 'segment_classes'
        [1, N], 'segment_valid' [1, N]; instance 'masks' [1, K, H, W], 'classes', 'scores',
        'valid' [1, K]; semantic 'class_map' [1, H, W] and 'class_names' [C].
    """
    if self.task == common.TASK_PANOPTIC:
      segment_map = np.asarray(outputs['panoptic_map'][0])
      present = set(np.unique(segment_map).tolist()) - {0}
      classes, valid = outputs['segment_classes'][0], outputs['segment_valid'][0]
      segments = [{'id': int(s), 'category_id': self._category_id(int(classes[s - 1])),
                   'iscrowd': 0, 'area': int((segment_map == s).sum())}
                  for s in sorted(present) if valid[s - 1]]
      file_name = f'{file_stem}.png'
      file_formats.write_panoptic_prediction(
          os.path.join(self.output_dir, PANOPTIC_FOLDER), file_name, segment_map)
      self._panoptic_annotations.append(
          {'image_id': image_id, 'file_name': file_name, 'segments_info': segments})
    elif self.task == common.TASK_INSTANCE:
      valid = np.asarray(outputs['valid'][0], bool)
      masks = np.asarray(outputs['masks'][0])[valid]
      for rle, class_index, score in zip(instance_metrics.encode_masks(masks),
                                         outputs['classes'][0][valid],
                                         outputs['scores'][0][valid]):
        self._detections.append({'image_id': image_id,
                                 'category_id': self._category_id(int(class_index)),
                                 'segmentation': rle, 'score': float(score)})
    else:
      folder = os.path.join(self.output_dir, SEMANTIC_FOLDER)
      os.makedirs(folder, exist_ok=True)
      write_label_png(os.path.join(folder, f'{file_stem}.png'), outputs['class_map'][0],
                      len(outputs['class_names']))

  def close(self) -> List[str]:
    """Writes the JSON file of the task; returns the paths a user passes to the evaluator."""
    if self.task == common.TASK_PANOPTIC:
      path = os.path.join(self.output_dir, PANOPTIC_JSON)
      _write_json_atomic(path, {'annotations': self._panoptic_annotations})
      return [path, os.path.join(self.output_dir, PANOPTIC_FOLDER)]
    if self.task == common.TASK_INSTANCE:
      path = os.path.join(self.output_dir, INSTANCE_JSON)
      _write_json_atomic(path, self._detections)
      return [path]
    return [os.path.join(self.output_dir, SEMANTIC_FOLDER)]


def image_ids_by_file_name(annotations_path: str) -> Dict[str, Any]:
  """{image file base name: image id} from the `images` of a COCO-format JSON."""
  content = file_formats.read_json(annotations_path)
  if 'images' not in content:
    raise ValueError(f'{annotations_path}: no `images` field (COCO format)')
  ids = {}
  for position, image in enumerate(content['images']):
    if 'id' not in image or 'file_name' not in image:
      raise ValueError(f'{annotations_path}: images[{position}] lacks `id` or `file_name`')
    ids[os.path.basename(image['file_name'])] = image['id']
  return ids


def default_image_id(file_name: str) -> Any:
  """The image id of a file without an annotations JSON: its stem, as an int when numeric."""
  stem = os.path.splitext(os.path.basename(file_name))[0]
  return int(stem) if stem.isdigit() else stem
