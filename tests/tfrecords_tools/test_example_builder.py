"""Segment-map encoding and box / area measurement against NumPy."""

import numpy as np
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from tests.tfrecords_tools import helpers
from tfrecords_tools import example_builder


def test_boxes_and_areas_against_numpy():
  rng = np.random.default_rng(0)
  segment_map = rng.integers(0, 6, (9, 11)).astype(np.int32)
  segment_map[segment_map == 4] = 0  # Segment 4 absent.
  boxes, areas = example_builder.segment_boxes_and_areas(segment_map, 5)
  for k in range(1, 6):
    mask = segment_map == k
    assert areas[k - 1] == mask.sum()
    if mask.any():
      np.testing.assert_array_equal(boxes[k - 1], helpers.reference_box(mask))
  np.testing.assert_array_equal(boxes[3], [0, 0, 0, 0])


def test_more_than_255_segments_use_uint16():
  segment_map = np.arange(300 * 4, dtype=np.int32).reshape(20, 60) % 301
  encoded = example_builder.encode_segment_map(segment_map, 300)
  np.testing.assert_array_equal(helpers.decode_png(encoded), segment_map)
  decoded = tf.io.decode_png(encoded, dtype=tf.uint16).numpy()[..., 0]
  np.testing.assert_array_equal(decoded, segment_map)
  small = example_builder.encode_segment_map(segment_map % 200, 255)
  assert tf.io.decode_png(small).dtype == tf.uint8
  np.testing.assert_array_equal(helpers.decode_png(small), segment_map % 200)
