"""Shared per-image conversion of semantic label PNGs (ADE20K, VOC, Context).

One object per class present; the segment map holds k for the k-th present
class in vocabulary order, 0 for ignore pixels. Label values that are neither
a vocabulary id nor an ignore value are voided and counted as the repair
'unknown_label_value' (an error under --strict).
"""

import dataclasses
from typing import Dict, Sequence, Tuple

import numpy as np

from tfrecords_tools import example_builder
from tfrecords_tools import image_io
from tfrecords_tools import tfrecord_writer
from tfrecords_tools.tfrecord_writer import Issue, ImageResult


@dataclasses.dataclass
class SemanticConfig:
  id_to_index: Dict[int, int]   # Label value -> vocabulary index.
  ignore_values: Tuple[int, ...]  # Label values that mean "ignore".
  # original_id = label value + this (zero-based label files, e.g. PASCAL
  # Context as detectron2 writes it, store vocabulary id - 1).
  original_id_offset: int = 0


@dataclasses.dataclass
class SemanticTask:
  image_path: str
  label_path: str
  source_id: str
  filename: str


def semantic_segment_map(labels: np.ndarray, config: SemanticConfig):
  """Label values -> (segment map, class indices, original ids, unknown).

  Args:
    labels: int32 [H, W] raw label values.

  Returns:
    segment_map: int32 [H, W]; k for the k-th present class, 0 = ignore.
    class_indices: [K] vocabulary indices, ascending.
    original_ids: [K] label values.
    unknown_values: sorted label values neither in the vocabulary nor ignored.
  """
  values = np.unique(labels)
  known = [int(v) for v in values if int(v) in config.id_to_index
           and int(v) not in config.ignore_values]
  unknown = [int(v) for v in values if int(v) not in config.id_to_index
             and int(v) not in config.ignore_values]
  known.sort(key=lambda v: config.id_to_index[v])
  lookup_size = max(int(values.max()) + 1, 1)
  lookup = np.zeros(lookup_size, np.int32)
  for k, value in enumerate(known):
    lookup[value] = k + 1
  segment_map = lookup[np.clip(labels, 0, lookup_size - 1)]
  return (segment_map, [config.id_to_index[v] for v in known], known,
          unknown)


def process_image(config: SemanticConfig, task: SemanticTask) -> ImageResult:
  """Converts one image + label PNG pair."""
  image = image_io.load_image(task.image_path)
  labels = image_io.load_label_png(task.label_path)
  if labels.min(initial=0) < 0:
    raise tfrecord_writer.SkipImage(
        'unreadable_label_png', f'{task.label_path}: negative label values')
  image_io.check_same_size(labels.shape, image, task.label_path)
  segment_map, class_indices, original_ids, unknown = semantic_segment_map(
      labels, config)
  issues = []
  if unknown:
    issues.append(Issue(
        tfrecord_writer.ISSUE_REPAIR, 'unknown_label_value',
        f'{task.label_path}: label values {unknown[:10]} are not class ids of '
        f'the vocabulary ({len(config.id_to_index)} classes) nor ignore '
        f'values {list(config.ignore_values)}; their pixels set to ignore',
        count=len(unknown)))
  original_ids = [v + config.original_id_offset for v in original_ids]
  objects = example_builder.objects_from_segment_map(
      segment_map, class_indices, original_ids)
  example = example_builder.build_example(
      image, task.source_id, task.filename, objects, segment_map=segment_map)
  notes = {'images_reencoded': 1} if image.reencoded_from else {}
  return ImageResult(example.SerializeToString(), sorted(class_indices),
                     len(objects), issues, notes)


def check_vocabulary_ids(vocabulary: Sequence[dict], ignore_values,
                         source: str, label_offset: int = 0):
  """Raises ConversionError when a class's label value is an ignore value.

  A class's label value is its id minus `label_offset`.
  """
  for entry in vocabulary:
    value = entry['id'] - label_offset
    if value in ignore_values:
      raise tfrecord_writer.ConversionError(
          f'{source}: class "{entry["name"]}" has id {entry["id"]} (label '
          f'value {value}), which is an ignore value {list(ignore_values)}')
