"""Reading converter output back with protobuf + PIL (independent of TF ops)."""

import glob
import io
import json

import numpy as np
from PIL import Image
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg import common


def read_examples(output_prefix):
  """All examples of `<prefix>-*-of-*.tfrecord`, in shard order, as dicts."""
  examples = []
  for path in sorted(glob.glob(output_prefix + '-*-of-*.tfrecord')):
    for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
      examples.append(to_dict(tf.train.Example.FromString(record)))
  return examples


def to_dict(example):
  out = {}
  for key, feature in example.features.feature.items():
    kind = feature.WhichOneof('kind')
    out[key] = list(getattr(feature, kind).value)
  return out


def decode_png(data):
  return np.asarray(Image.open(io.BytesIO(data)))


def segment_map(example):
  return decode_png(example[common.TFRECORD_SEGMENTATION_ENCODED][0])


def boxes(example):
  return np.stack([example[common.TFRECORD_OBJECT_YMIN],
                   example[common.TFRECORD_OBJECT_XMIN],
                   example[common.TFRECORD_OBJECT_YMAX],
                   example[common.TFRECORD_OBJECT_XMAX]], axis=-1).reshape(-1, 4)


def read_json(path):
  with open(path) as f:
    return json.load(f)


def reference_box(mask):
  """(ymin, xmin, ymax, xmax) pixel edges of a boolean mask, max exclusive."""
  ys, xs = np.nonzero(mask)
  return np.array([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1], float)
