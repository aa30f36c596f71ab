"""Builds the DaTaSeg tf.Example (schema in docs/datasets.md) from arrays.

Segment maps: pixel value k in 1..K belongs to object k-1, 0 is void. Boxes
and areas of segment-map objects are measured on the map itself, so they
always agree with the pixels the model is trained on.
"""

import dataclasses
from typing import List, Optional, Sequence

import numpy as np
from scipy import ndimage
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official.vision.data import tfrecord_lib
from official_dataseg import common
from tfrecords_tools import image_io


@dataclasses.dataclass
class ObjectRecord:
  """One object (segment, class region or box) of an image.

  Attributes:
    class_index: 0-based index into the dataset vocabulary.
    original_id: the dataset's own category id.
    box: absolute pixel box (ymin, xmin, ymax, xmax), max edges exclusive.
    area: pixels (or the annotation's own area for box-only data).
    is_crowd: 1 for crowd regions.
    mask: optional uint8 [H, W] 0/1 instance mask.
    is_ignored: 1 for rater-skipped annotations.
  """
  class_index: int
  original_id: int
  box: Sequence[float]
  area: float
  is_crowd: int = 0
  mask: Optional[np.ndarray] = None
  is_ignored: int = 0


def segment_boxes_and_areas(segment_map: np.ndarray, num_segments: int):
  """Tight boxes and pixel counts of segments 1..K of a segment map.

  Args:
    segment_map: int [H, W], values in 0..K.
    num_segments: K.

  Returns:
    boxes: float64 [K, 4] absolute (ymin, xmin, ymax, xmax), max exclusive;
      zeros for absent segments.
    areas: int64 [K] pixel counts.
  """
  boxes = np.zeros((num_segments, 4), np.float64)
  areas = np.bincount(segment_map.ravel(),
                      minlength=num_segments + 1)[1:num_segments + 1]
  for k, slices in enumerate(ndimage.find_objects(segment_map,
                                                  max_label=num_segments)):
    if slices is not None:
      boxes[k] = (slices[0].start, slices[1].start, slices[0].stop,
                  slices[1].stop)
  return boxes, areas.astype(np.int64)


def encode_segment_map(segment_map: np.ndarray, num_segments: int) -> bytes:
  """PNG bytes of the segment map: uint8 when K <= 255, else uint16."""
  if num_segments > 65535:
    raise ValueError(f'{num_segments} segments do not fit a uint16 PNG')
  dtype = np.uint8 if num_segments <= 255 else np.uint16
  return image_io.encode_png(segment_map.astype(dtype))


def build_example(image: image_io.EncodedImage,
                  source_id: str,
                  filename: str,
                  objects: List[ObjectRecord],
                  segment_map: Optional[np.ndarray] = None,
                  include_masks: bool = False,
                  include_is_ignored: bool = False) -> tf.train.Example:
  """Assembles one tf.Example.

  Args:
    image: the encoded image.
    source_id: the dataset's image id.
    filename: the image file name (relative).
    objects: K objects; with a segment map, object k-1 owns value k.
    segment_map: optional int [H, W] segment-index map (0..K).
    include_masks: write `image/object/mask` (each object needs `mask`).
    include_is_ignored: write `image/object/is_ignored`.

  Returns:
    The tf.train.Example.
  """
  features = tfrecord_lib.image_info_to_feature_dict(
      image.height, image.width, filename, source_id, image.encoded,
      image.image_format)
  boxes = np.array([o.box for o in objects], np.float64).reshape(-1, 4)
  scale = np.array([image.height, image.width, image.height, image.width],
                   np.float64)
  boxes = np.clip(boxes / scale, 0.0, 1.0)
  to_feature = tfrecord_lib.convert_to_feature
  features.update({
      common.TFRECORD_OBJECT_CLASS: to_feature(
          [o.class_index for o in objects], 'int64_list'),
      common.TFRECORD_OBJECT_ORIGINAL_ID: to_feature(
          [o.original_id for o in objects], 'int64_list'),
      common.TFRECORD_OBJECT_YMIN: to_feature(boxes[:, 0].tolist(),
                                              'float_list'),
      common.TFRECORD_OBJECT_XMIN: to_feature(boxes[:, 1].tolist(),
                                              'float_list'),
      common.TFRECORD_OBJECT_YMAX: to_feature(boxes[:, 2].tolist(),
                                              'float_list'),
      common.TFRECORD_OBJECT_XMAX: to_feature(boxes[:, 3].tolist(),
                                              'float_list'),
      common.TFRECORD_OBJECT_IS_CROWD: to_feature(
          [o.is_crowd for o in objects], 'int64_list'),
      common.TFRECORD_OBJECT_AREA: to_feature(
          [float(o.area) for o in objects], 'float_list'),
  })
  if segment_map is not None:
    features[common.TFRECORD_SEGMENTATION_ENCODED] = to_feature(
        encode_segment_map(segment_map, len(objects)), 'bytes')
  if include_masks:
    features[common.TFRECORD_OBJECT_MASK] = to_feature(
        [tfrecord_lib.encode_mask_as_png(o.mask.astype(np.uint8))
         for o in objects], 'bytes_list')
  if include_is_ignored:
    features[common.TFRECORD_OBJECT_IS_IGNORED] = to_feature(
        [o.is_ignored for o in objects], 'int64_list')
  return tf.train.Example(features=tf.train.Features(feature=features))


def serialize(example: tf.train.Example) -> bytes:
  """The record bytes of `example`, the same in every process.

  A feature map's serialized order is otherwise up to the protobuf runtime
  (it differed between Beam worker processes): keys are sorted instead.
  """
  return example.SerializeToString(deterministic=True)


def objects_from_segment_map(segment_map: np.ndarray,
                             class_indices: Sequence[int],
                             original_ids: Sequence[int],
                             is_crowd: Optional[Sequence[int]] = None
                             ) -> List[ObjectRecord]:
  """ObjectRecords of segments 1..K with boxes and areas measured on the map.

  Args:
    segment_map: int [H, W] values 0..K.
    class_indices: [K] vocabulary indices.
    original_ids: [K] dataset category ids.
    is_crowd: optional [K] crowd flags.
  """
  num_segments = len(class_indices)
  boxes, areas = segment_boxes_and_areas(segment_map, num_segments)
  crowd = is_crowd if is_crowd is not None else [0] * num_segments
  return [ObjectRecord(int(class_indices[k]), int(original_ids[k]),
                       boxes[k].tolist(), float(areas[k]), int(crowd[k]))
          for k in range(num_segments)]
