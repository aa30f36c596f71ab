"""Parsed training images per second per CPU core, DaTaSeg parsers vs Model Garden Mask R-CNN.

Writes small synthetic COCO-style TFRecords (DaTaSeg schema, which Model
Garden's TfExampleDecoder also reads), then times decode + parse on one
thread (tf.data private thread pool of 1, one intra-op thread) for:
  semantic, panoptic, instance (boxes) with `DataSegParser`, and
  `official.vision.dataloaders.maskrcnn_input.Parser` (with masks) on the
  panoptic-style records' per-object masks.

Usage:
  python tools/benchmark_input_pipeline.py --output_size=1024 --num_images=16
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Before TensorFlow is imported: Keras 2 (tf_keras) and no C++ start-up lines.
from official_dataseg.utils import (  # pylint: disable=g-import-not-at-top,unused-import
    quiet_tensorflow)

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf, tf_keras  # pylint: disable=g-import-not-at-top,unused-import

from official.vision.dataloaders import maskrcnn_input  # pylint: disable=g-import-not-at-top
from official.vision.dataloaders import tf_example_decoder as mg_decoder
from official_dataseg import common
from official_dataseg.dataloaders import dataseg_parser
from official_dataseg.dataloaders import tf_example_decoder
from tests.dataloaders import tfexample_helpers


def _synthetic_examples(num_images, height, width, num_objects, seed=0):
  """Serialized examples with a segment map, per-object masks and boxes."""
  rng = np.random.default_rng(seed)
  examples = []
  for index in range(num_images):
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    segment_map = np.zeros((height, width), np.int32)
    boxes, masks = [], []
    for k in range(num_objects):
      y0, x0 = rng.integers(0, height - 40), rng.integers(0, width - 40)
      y1 = y0 + rng.integers(20, min(200, height - y0))
      x1 = x0 + rng.integers(20, min(200, width - x0))
      segment_map[y0:y1, x0:x1] = k + 1
      boxes.append([y0 / height, x0 / width, y1 / height, x1 / width])
    for k in range(num_objects):
      masks.append((segment_map == k + 1).astype(np.uint8))
    examples.append(tfexample_helpers.make_example(
        image, list(rng.integers(1, 80, num_objects)), boxes, segment_map,
        instance_masks=np.stack(masks), source_id=str(index),
        image_format='jpeg'))
  return examples


def _images_per_second(path, map_fn, num_images, repeats):
  options = tf.data.Options()
  options.threading.private_threadpool_size = 1
  options.threading.max_intra_op_parallelism = 1
  dataset = (tf.data.TFRecordDataset(path).repeat(repeats)
             .map(map_fn, num_parallel_calls=1).with_options(options))
  iterator = iter(dataset)
  next(iterator)  # tracing and warm-up
  start = time.perf_counter()
  count = 0
  for _ in iterator:
    count += 1
  return count / (time.perf_counter() - start)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output_size', type=int, default=1024)
  parser.add_argument('--num_images', type=int, default=8)
  parser.add_argument('--repeats', type=int, default=2)
  parser.add_argument('--num_objects', type=int, default=15)
  parser.add_argument('--image_height', type=int, default=480)
  parser.add_argument('--image_width', type=int, default=640)
  args = parser.parse_args()
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)

  path = os.path.join(tempfile.mkdtemp(), 'coco_style.tfrecord')
  tfexample_helpers.write_tfrecord(path, _synthetic_examples(
      args.num_images, args.image_height, args.image_width, args.num_objects))
  size = [args.output_size, args.output_size]
  total = args.num_images * args.repeats
  print(f'{total} parses of {args.image_height}x{args.image_width} JPEGs '
        f'with {args.num_objects} objects into {size[0]}x{size[1]}, one core')

  for task, scale_min in ((common.TASK_SEMANTIC, 0.5),
                          (common.TASK_PANOPTIC, 0.1),
                          (common.TASK_INSTANCE, 0.1)):
    decoder = tf_example_decoder.DataSegDecoder()
    dataseg = dataseg_parser.DataSegParser(task, 0, size, 100, [2048, 2048],
                                           aug_scale_min=scale_min,
                                           aug_scale_max=2.0)
    parse = dataseg.parse_fn(is_training=True)
    rate = _images_per_second(path, lambda s: parse(decoder.decode(s)),
                              args.num_images, args.repeats)
    print(f'DaTaSeg {task:9s} parser: {rate:7.2f} images/s/core')

  mg_parse = maskrcnn_input.Parser(
      output_size=size, min_level=2, max_level=6, num_scales=1,
      aspect_ratios=[0.5, 1.0, 2.0], anchor_size=8, aug_rand_hflip=True,
      aug_scale_min=0.1, aug_scale_max=2.0, include_mask=True,
      max_num_instances=100).parse_fn(is_training=True)
  mg_decode = mg_decoder.TfExampleDecoder(include_mask=True).decode
  rate = _images_per_second(path, lambda s: mg_parse(mg_decode(s)),
                            args.num_images, args.repeats)
  print(f'Model Garden Mask R-CNN parser: {rate:7.2f} images/s/core')


if __name__ == '__main__':
  main()
