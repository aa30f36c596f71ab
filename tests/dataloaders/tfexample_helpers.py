"""Builds small DaTaSeg tf.Examples (schema in `common.TFRECORD_*`) for tests."""
from typing import List, Optional, Sequence

import numpy as np
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg import common
from official_dataseg.dataloaders import record_set


def _int64(values):
  return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _float(values):
  return tf.train.Feature(float_list=tf.train.FloatList(value=list(values)))


def _bytes(values):
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=list(values)))


def encode_png(array: np.ndarray) -> bytes:
  """PNG bytes of uint8/uint16 [H, W] or [H, W, C]."""
  if array.ndim == 2:
    array = array[:, :, None]
  return tf.io.encode_png(tf.constant(array)).numpy()


def make_example(image: np.ndarray,
                 classes: Sequence[int],
                 boxes: Sequence[Sequence[float]],
                 segment_map: Optional[np.ndarray] = None,
                 is_crowd: Optional[Sequence[int]] = None,
                 instance_masks: Optional[np.ndarray] = None,
                 is_ignored: Optional[Sequence[int]] = None,
                 source_id: str = '0',
                 image_format: str = 'png') -> bytes:
  """Serialized tf.Example.

  Args:
    image: uint8 [H, W, 3].
    classes: [K] vocabulary indices.
    boxes: [K, 4] normalised yxyx.
    segment_map: optional int [H, W] (0 void, k -> object k-1); uint16 PNG
      when its max exceeds 255.
    is_crowd: optional [K].
    instance_masks: optional uint8 [K, H, W] 0/1.
    is_ignored: optional [K].
    source_id: image id.
    image_format: 'png' or 'jpeg'.
  """
  height, width = image.shape[:2]
  if image_format == 'png':
    encoded = encode_png(image)
  else:
    encoded = tf.io.encode_jpeg(tf.constant(image), quality=95).numpy()
  boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
  classes = list(classes)
  feature = {
      common.TFRECORD_IMAGE_ENCODED: _bytes([encoded]),
      common.TFRECORD_IMAGE_FORMAT: _bytes([image_format.encode()]),
      common.TFRECORD_IMAGE_HEIGHT: _int64([height]),
      common.TFRECORD_IMAGE_WIDTH: _int64([width]),
      common.TFRECORD_IMAGE_SOURCE_ID: _bytes([source_id.encode()]),
      common.TFRECORD_IMAGE_FILENAME: _bytes([f'{source_id}.{image_format}'.encode()]),
      common.TFRECORD_OBJECT_CLASS: _int64(classes),
      common.TFRECORD_OBJECT_ORIGINAL_ID: _int64([c + 1 for c in classes]),
      common.TFRECORD_OBJECT_YMIN: _float(boxes[:, 0]),
      common.TFRECORD_OBJECT_XMIN: _float(boxes[:, 1]),
      common.TFRECORD_OBJECT_YMAX: _float(boxes[:, 2]),
      common.TFRECORD_OBJECT_XMAX: _float(boxes[:, 3]),
      common.TFRECORD_OBJECT_IS_CROWD: _int64(
          is_crowd if is_crowd is not None else [0] * len(classes)),
      common.TFRECORD_OBJECT_AREA: _float([1.0] * len(classes)),
  }
  if segment_map is not None:
    dtype = np.uint16 if segment_map.max() > 255 else np.uint8
    feature[common.TFRECORD_SEGMENTATION_ENCODED] = _bytes(
        [encode_png(segment_map.astype(dtype))])
  if instance_masks is not None:
    feature[common.TFRECORD_OBJECT_MASK] = _bytes(
        [encode_png(m.astype(np.uint8)) for m in instance_masks])
  if is_ignored is not None:
    feature[common.TFRECORD_OBJECT_IS_IGNORED] = _int64(is_ignored)
  example = tf.train.Example(features=tf.train.Features(feature=feature))
  return example.SerializeToString()


def write_tfrecord(path: str, serialized_examples: Sequence[bytes]) -> str:
  """Writes the examples to one TFRecord file; returns `path`."""
  with tf.io.TFRecordWriter(path) as writer:
    for serialized in serialized_examples:
      writer.write(serialized)
  return path


def write_record_set(prefix: str, shards: Sequence[Sequence[bytes]],
                     vocabulary_file: Optional[str] = None) -> List[str]:
  """Writes `PREFIX-0000i-of-0000N.tfrecord` (shards[i]) and the manifest the input pipeline
  needs, as a converter does; returns the shard paths."""
  paths = record_set.shard_paths(prefix, len(shards))
  for path, examples in zip(paths, shards):
    write_tfrecord(path, examples)
  record_set.write_manifest(prefix, paths, [len(e) for e in shards], 'tests',
                            vocabulary_file)
  return paths
