"""Images and their ground truth from the converters' TFRecords, drawn for figures.

`predict.py --tfrecords` reads validation examples here, so that its figures can show
input | prediction | ground truth. Ground truth is drawn as the prediction is: semantic -> a class
map, panoptic -> stuff by class and things by instance, instance -> masks (box masks when the
dataset has boxes only), labelled by class name.
"""
import dataclasses
from typing import Dict, Iterator, Sequence, Tuple

import numpy as np
import tensorflow as tf

from official_dataseg import common
from official_dataseg.dataloaders import tf_example_decoder
from official_dataseg.evaluation import figures
from official_dataseg.evaluation import visualization

@dataclasses.dataclass
class Example:
  """One converted image.

  Attributes:
    source_id: the dataset's image id.
    encoded_image: the stored JPEG / PNG bytes.
    image: uint8 [H, W, 3].
    segmentation: int32 [H, W]: 0 void, k -> object k - 1.
    classes: int32 [K] vocabulary indices.
    boxes: float32 [K, 4] normalised yxyx.
    instance_masks: uint8 [K, H, W] (all 0 when the dataset stores no per-object masks).
  """
  source_id: str
  encoded_image: bytes
  image: np.ndarray
  segmentation: np.ndarray
  classes: np.ndarray
  boxes: np.ndarray
  instance_masks: np.ndarray


def read_examples(file_pattern: str, max_examples: int = 0) -> Iterator[Example]:
  """The examples of TFRecord files matching `file_pattern` (comma-separated globs), in order.

  Raises:
    FileNotFoundError: no file matches.
  """
  files = sorted(f for pattern in file_pattern.split(',') for f in tf.io.gfile.glob(pattern))
  if not files:
    raise FileNotFoundError(f'--tfrecords: no file matches {file_pattern!r}')
  decoder = tf_example_decoder.DataSegDecoder(include_instance_masks=True)
  encoded_feature = {common.TFRECORD_IMAGE_ENCODED: tf.io.FixedLenFeature((), tf.string)}
  dataset = tf.data.TFRecordDataset(files)
  if max_examples > 0:
    dataset = dataset.take(max_examples)
  for serialized in dataset:
    decoded = decoder.decode(serialized)
    encoded = tf.io.parse_single_example(serialized, encoded_feature)
    yield Example(
        source_id=decoded[common.DECODED_SOURCE_ID].numpy().decode(),
        encoded_image=encoded[common.TFRECORD_IMAGE_ENCODED].numpy(),
        image=decoded[common.DECODED_IMAGE].numpy(),
        segmentation=decoded[common.DECODED_SEGMENTATION].numpy(),
        classes=decoded[common.DECODED_CLASSES].numpy(),
        boxes=decoded[common.DECODED_BOXES].numpy(),
        instance_masks=decoded[common.DECODED_INSTANCE_MASKS].numpy())


def _object_masks(example: Example) -> np.ndarray:
  """bool [K, H, W]: the stored masks, else the segment map's, else the boxes filled."""
  height, width = example.image.shape[:2]
  if example.instance_masks.any():
    return example.instance_masks > 0
  ids = np.arange(1, len(example.classes) + 1)
  if example.segmentation.any():
    return example.segmentation[None] == ids[:, None, None]
  masks = np.zeros([len(example.classes), height, width], bool)
  for mask, (ymin, xmin, ymax, xmax) in zip(masks, example.boxes):
    mask[int(round(ymin * height)):int(round(ymax * height)),
         int(round(xmin * width)):int(round(xmax * width))] = True
  return masks


def overlay(task: str, example: Example, class_names: Sequence[str], is_thing: Sequence[bool],
            factor: int = 1) -> Tuple[np.ndarray, Dict[int, str]]:
  """Draws `example`'s ground truth for `task`, enlarged by `factor` (see `figures`).

  Args:
    task: 'semantic', 'panoptic' or 'instance'.
    example: the image and its ground truth.
    class_names: the vocabulary's names, indexed by class.
    is_thing: [C] thing flags (panoptic: things are drawn per instance).
    factor: whole enlargement factor.

  Returns:
    (uint8 [H * factor, W * factor, 3] overlay without legend, {class id: name} drawn).
  """
  image = figures.enlarge_image(example.image, factor)
  segment = example.segmentation
  lookup = np.concatenate([[-1], example.classes]).astype(np.int64)
  category_map = lookup[np.clip(segment, 0, len(example.classes))]
  if task == common.TASK_SEMANTIC:
    label_map = np.where(category_map >= 0, category_map, common.VOID_LABEL)
    drawn = figures.names_by_id(category_map, class_names)
    return visualization.overlay_semantic(image, figures.enlarge_labels(label_map, factor),
                                          class_names, legend=False), drawn
  if task == common.TASK_PANOPTIC:
    thing = np.asarray(is_thing, bool)
    is_thing_pixel = (category_map >= 0) & thing[np.clip(category_map, 0, len(thing) - 1)]
    instance_map = np.where(is_thing_pixel, segment, 0)
    drawn = figures.names_by_id(category_map, class_names)
    return visualization.overlay_panoptic(
        image, figures.enlarge_labels(category_map, factor),
        figures.enlarge_labels(instance_map, factor), class_names, legend=False), drawn
  masks = _object_masks(example)
  keep = masks.reshape(len(masks), -1).any(axis=1)
  drawn = figures.names_by_id(example.classes[keep], class_names)
  return visualization.overlay_instances(
      image, figures.enlarge_labels(masks[keep], factor), example.classes[keep], None,
      class_names, score_threshold=0.0, legend=False), drawn
