"""Prediction overlays for the eval summaries: thumbnail -> original image, panoptic lookup."""
import numpy as np

from official.vision.ops import preprocess_ops
from official_dataseg.tasks import summary_images


def test_original_image_inverts_normalisation_and_crops_the_padding():
  # A 40x60 image scaled by 0.5 to 20x30 inside a 32x32 input -> an 8x8 thumbnail whose valid
  # part is 5 x 7.5 (-> 5 x 8 after rounding).
  rgb = np.array([0.2, 0.5, 0.8])
  thumbnail = np.zeros([8, 8, 3], np.float32)
  thumbnail[:5, :8] = (rgb - preprocess_ops.MEAN_NORM) / preprocess_ops.STDDEV_NORM
  thumbnail[5:] = 99.0  # Padding: must be cropped away.
  info = np.array([[40, 60], [20, 30], [0.5, 0.5], [0, 0]], np.float32)
  image = summary_images.original_image(thumbnail, info)
  assert image.shape == (40, 60, 3) and image.dtype == np.uint8
  # float32 normalisation round trip: within one grey level (0.5 * 255 = 127.5 rounds either way).
  np.testing.assert_allclose(image[20, 30], rgb * 255, atol=1)
  assert np.all(image == image[0, 0])


def test_panoptic_overlay_maps_segment_ids_to_their_classes():
  image = np.full([40, 40, 3], 128, np.uint8)
  # Columns: void, segment 1 (-> entry 0), segment 2 (-> entry 1, invalid).
  segment_map = np.repeat(np.array([[0] * 10 + [1] * 20 + [2] * 10]), 40, axis=0)
  prediction = {'segment_map': segment_map, 'segment_classes': np.array([3, 5, 0]),
                'segment_valid': np.array([True, False, False])}
  overlay = summary_images.overlay('panoptic', image, prediction, ['a', 'b', 'c', 'd', 'e', 'f'])
  # Void and the invalid segment stay the image (legend box aside: rows 0.. are covered, so
  # compare the bottom row), segment 1 is painted.
  bottom = overlay[-1]
  np.testing.assert_array_equal(bottom[5], [128, 128, 128])
  np.testing.assert_array_equal(bottom[35], [128, 128, 128])
  # Each segment is drawn as its own instance (a variant of its class colour).
  color = summary_images.visualization._instance_color(3, 1).astype(float)  # pylint: disable=protected-access
  np.testing.assert_allclose(bottom[20], np.round(0.5 * 128 + 0.5 * color), atol=1)
