"""What the semantic label-PNG converters share (ADE20K, VOC, PASCAL Context).

Pairing images with label files, image-set lists, the per-image conversion and
the writing of a semantic dataset.

One object per class present; the segment map holds k for the k-th present
class in vocabulary order, 0 for ignore pixels. Label values that are neither
a vocabulary id nor an ignore value are voided and counted as the repair
'unknown_label_value' (an error under --strict).
"""

import dataclasses
import functools
import os
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from tfrecords_tools import example_builder
from tfrecords_tools import image_io
from tfrecords_tools import tfrecord_writer
from tfrecords_tools.tfrecord_writer import Issue, ImageResult

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')


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
  return ImageResult(example_builder.serialize(example), sorted(class_indices),
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


def read_image_set(path: str) -> List[str]:
  """Image names (one per line) of an ImageSets list file."""
  if not tf.io.gfile.exists(path):
    raise tfrecord_writer.ConversionError(f'{path}: image-set list not found')
  with tf.io.gfile.GFile(path) as f:
    names = [line.split()[0] for line in f if line.strip()]
  if not names:
    raise tfrecord_writer.ConversionError(f'{path}: image-set list is empty')
  if len(set(names)) != len(names):
    duplicated = sorted({n for n in names if names.count(n) > 1})
    raise tfrecord_writer.ConversionError(
        f'{path}: image names {duplicated[:5]} are listed more than once')
  return names


def list_image_label_pairs(images_dir: str, labels_dir: str,
                           image_names=None) -> List[SemanticTask]:
  """Tasks for every image in `images_dir` (or `image_names`), sorted."""
  if not tf.io.gfile.isdir(images_dir):
    raise tfrecord_writer.ConversionError(f'{images_dir}: --images_dir is not '
                                          'a folder')
  if not tf.io.gfile.isdir(labels_dir):
    raise tfrecord_writer.ConversionError(f'{labels_dir}: --annotations is '
                                          'not a folder')
  if image_names is None:
    files = sorted(f for f in tf.io.gfile.listdir(images_dir)
                   if f.lower().endswith(IMAGE_EXTENSIONS))
  else:
    by_stem = {os.path.splitext(f)[0]: f
               for f in tf.io.gfile.listdir(images_dir)}
    # A listed name without its image stays a task so it is reported missing.
    files = [by_stem.get(name, name + '.jpg') for name in image_names]
  if not files:
    raise tfrecord_writer.ConversionError(f'{images_dir}: no images found')
  return [SemanticTask(
      os.path.join(images_dir, f),
      os.path.join(labels_dir, os.path.splitext(f)[0] + '.png'),
      os.path.splitext(f)[0], f) for f in files]


def convert_semantic(tasks: Sequence[SemanticTask],
                     vocabulary: Sequence[Dict[str, Any]],
                     ignore_values: Sequence[int], output_prefix: str,
                     converter_name: str, source: str, label_offset: int = 0,
                     **writer_flags) -> Dict[str, Any]:
  """Writes semantic tasks with `vocabulary` (shared by ADE / VOC / Context).

  A class's label value in the label files is its vocabulary id minus
  `label_offset` (0 for ADE / VOC, 1 for zero-based PASCAL Context files).
  `writer_flags` go to tfrecord_writer.write_sharded (num_shards, ...).
  """
  check_vocabulary_ids(vocabulary, ignore_values, source, label_offset)
  config = SemanticConfig(
      {c['id'] - label_offset: c['index'] for c in vocabulary},
      tuple(ignore_values), original_id_offset=label_offset)
  return tfrecord_writer.write_sharded(
      output_prefix, tasks,
      functools.partial(process_image, config), vocabulary,
      converter_name=converter_name,
      vocabulary_metadata={'name': os.path.basename(output_prefix),
                           'task': 'semantic', 'source': source},
      **writer_flags)
