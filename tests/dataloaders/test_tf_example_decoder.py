"""DataSegDecoder against the arrays the examples were built from."""
import numpy as np
import tensorflow as tf

from official_dataseg import common
from official_dataseg.dataloaders import tf_example_decoder
from tests.dataloaders import tfexample_helpers


def _decode(serialized, include_instance_masks=False):
  decoder = tf_example_decoder.DataSegDecoder(include_instance_masks)
  return {k: v.numpy() for k, v in decoder.decode(tf.constant(serialized)).items()}


def test_segmentation_uint8_and_uint16_values_are_exact():
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
  for max_value in (255, 300):
    segment_map = rng.integers(0, max_value + 1, (5, 7))
    segment_map[0, 0] = max_value
    serialized = tfexample_helpers.make_example(
        image, [3] * max_value, [[0, 0, 1, 1]] * max_value, segment_map)
    decoded = _decode(serialized)
    np.testing.assert_array_equal(decoded[common.DECODED_SEGMENTATION],
                                  segment_map)
    np.testing.assert_array_equal(decoded[common.DECODED_IMAGE], image)


def test_objects_and_optional_keys():
  image = np.zeros((4, 6, 3), np.uint8)
  boxes = [[0.0, 0.1, 0.5, 0.6], [0.25, 0.0, 1.0, 1.0]]
  masks = np.zeros((2, 4, 6), np.uint8)
  masks[0, :2, :3] = 1
  masks[1, 1:, 2:] = 1
  serialized = tfexample_helpers.make_example(
      image, [4, 9], boxes, is_crowd=[0, 1], instance_masks=masks,
      is_ignored=[1, 0], source_id='abc')
  decoded = _decode(serialized, include_instance_masks=True)
  np.testing.assert_array_equal(decoded[common.DECODED_CLASSES], [4, 9])
  np.testing.assert_allclose(decoded[common.DECODED_BOXES], boxes)
  np.testing.assert_array_equal(decoded[common.DECODED_IS_CROWD], [False, True])
  np.testing.assert_array_equal(decoded[common.DECODED_IS_IGNORED], [True, False])
  np.testing.assert_array_equal(decoded[common.DECODED_INSTANCE_MASKS], masks)
  np.testing.assert_array_equal(decoded[common.DECODED_SEGMENTATION],
                                np.zeros((4, 6)))
  assert decoded[common.DECODED_SOURCE_ID] == b'abc'
  assert (decoded[common.DECODED_HEIGHT], decoded[common.DECODED_WIDTH]) == (4, 6)

  # Without the optional features: all-False flags, zero masks, no objects.
  bare = tfexample_helpers.make_example(image, [], [])
  decoded = _decode(bare, include_instance_masks=True)
  assert decoded[common.DECODED_CLASSES].shape == (0,)
  assert decoded[common.DECODED_BOXES].shape == (0, 4)
  assert decoded[common.DECODED_IS_IGNORED].shape == (0,)
  assert decoded[common.DECODED_INSTANCE_MASKS].shape == (0, 4, 6)
