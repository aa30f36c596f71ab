"""Image sizes read from headers (before decoding) against PIL, and the large-image test files."""
import io

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from official_dataseg.serving import image_header
from tests.serving import large_images


def _encode(image_format, **options):
  buffer = io.BytesIO()
  Image.new('RGB', (53, 37), (10, 200, 30)).save(buffer, format=image_format, **options)
  return buffer.getvalue()


@pytest.mark.parametrize('data', [
    _encode('JPEG'), _encode('JPEG', progressive=True, exif=b'Exif\0\0' + b'x' * 200),
    _encode('PNG'), _encode('GIF'), _encode('BMP'),
    large_images.uniform_png(37, 53), large_images.uniform_jpeg(37, 53)])
def test_size_of_small_images_matches_pil(data):
  height, width = 37, 53
  assert Image.open(io.BytesIO(data)).size == (width, height)
  size = tf.function(image_header.image_size)(tf.constant(data))
  assert size.numpy().tolist() == [height, width]


def test_large_image_files_declare_their_size_and_decode_at_small_sizes():
  # The generators make valid files: PIL decodes small ones to the expected pixels.
  png = np.asarray(Image.open(io.BytesIO(large_images.uniform_png(20, 12))))
  np.testing.assert_array_equal(png, np.zeros([20, 12, 3], np.uint8))
  jpeg = np.asarray(Image.open(io.BytesIO(large_images.uniform_jpeg(20, 12))))
  np.testing.assert_array_equal(jpeg, np.full([20, 12], 128, np.uint8))
  for data, size in [(large_images.uniform_png(12000, 12000), [12000, 12000]),
                     (large_images.uniform_jpeg(65535, 65535), [65535, 65535])]:
    assert image_header.image_size(tf.constant(data)).numpy().tolist() == size


def test_other_strings_give_zero():
  for data in (b'', b'hello', b'\xff\xd8\xff', b'\x89PNG'):
    assert image_header.image_size(tf.constant(data)).numpy().tolist() == [0, 0]
