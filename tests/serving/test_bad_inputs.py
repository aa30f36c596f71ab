"""Each bad input to the exported SavedModel gets a clear error naming the input, and the model
keeps serving afterwards (no crash of the serving process, no silent wrong output)."""
import numpy as np
import pytest
import tensorflow as tf

from tests.serving.conftest import random_image

MAX_IMAGE_SIZE = 1024  # The fixture exports with --max_image_size=1024.


def _assert_error(function, expected_message, **inputs):
  with pytest.raises(tf.errors.InvalidArgumentError, match=expected_message):
    function(**inputs)


def _good_image():
  return tf.constant(random_image(40, 30, seed=0)[None])


@pytest.mark.slow
@pytest.mark.parametrize('images,message', [
    (np.zeros([40, 30, 3], np.uint8), 'images: wrong rank'),
    (np.zeros([1, 1, 40, 30, 3], np.uint8), 'images: wrong rank'),
    (np.zeros([1, 40, 30, 4], np.uint8), 'images: wrong channel count'),
    (np.zeros([1, 40, 30, 1], np.uint8), 'images: wrong channel count'),
    (np.zeros([0, 40, 30, 3], np.uint8), 'images: empty batch'),
    (np.zeros([1, 0, 30, 3], np.uint8), 'images: empty image'),
    (np.zeros([1, MAX_IMAGE_SIZE + 1, 8, 3], np.uint8), 'images: image too large'),
])
def test_bad_image_tensor(serving_setup, images, message):
  signatures = serving_setup.tensor_model.signatures
  for name in ('panoptic', 'semantic', 'instance'):
    _assert_error(signatures[name], message, images=tf.constant(images))
  # The limit is documented in the message.
  with pytest.raises(tf.errors.InvalidArgumentError, match=f'H, W <= {MAX_IMAGE_SIZE}'):
    signatures['semantic'](images=tf.constant(images))
  # Still serving.
  assert signatures['semantic'](images=_good_image())['class_map'].shape == (1, 40, 30)


@pytest.mark.slow
@pytest.mark.parametrize('dtype', [tf.float32, tf.int32, tf.uint16])
def test_wrong_image_dtype_is_refused(serving_setup, dtype):
  signature = serving_setup.tensor_model.signatures['panoptic']
  # The runtime's own message: 'input #0 ... was expected to be a uint8 tensor but is a ...'.
  with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError),
                     match='expected to be a uint8 tensor'):
    signature(images=tf.zeros([1, 8, 8, 3], dtype))


@pytest.mark.slow
@pytest.mark.parametrize('image_bytes,message', [
    (b'', 'image_bytes: empty string'),
    (b'hello, not an image', 'image_bytes: not an image'),
    (b'{"json": 1}' * 10, 'image_bytes: not an image'),
])
def test_bad_image_bytes(serving_setup, image_bytes, message):
  signature = serving_setup.bytes_model.signatures['panoptic']
  _assert_error(signature, message, image_bytes=tf.constant(image_bytes))


@pytest.mark.slow
def test_truncated_and_oversized_image_bytes(serving_setup):
  signature = serving_setup.bytes_model.signatures['semantic']
  png = tf.io.encode_png(random_image(20, 20, seed=1)).numpy()
  # A PNG cut short: the decoder's own error, still an InvalidArgumentError, not a crash.
  with pytest.raises(tf.errors.InvalidArgumentError):
    signature(image_bytes=tf.constant(png[:len(png) // 2]))
  large = tf.io.encode_png(np.zeros([MAX_IMAGE_SIZE + 1, 4, 3], np.uint8)).numpy()
  _assert_error(signature, 'image_bytes: image too large', image_bytes=tf.constant(large))
  assert signature(image_bytes=tf.constant(png))['class_map'].shape == (1, 20, 20)


@pytest.mark.slow
def test_bad_vocabulary(serving_setup):
  signatures = serving_setup.tensor_model.signatures
  embedding_dim = serving_setup.params.task.model.classifier_head.text_embedding_dim
  vectors = np.random.default_rng(0).normal(size=[3, embedding_dim]).astype(np.float32)
  names = ['a', 'b', 'c']
  semantic = signatures['semantic_with_vocabulary']
  image = _good_image()
  _assert_error(semantic, 'class_embeddings: wrong width D', images=image,
                class_embeddings=tf.constant(vectors[:, :10]), class_names=tf.constant(names))
  _assert_error(semantic, 'class_embeddings: wrong rank', images=image,
                class_embeddings=tf.constant(vectors[0]), class_names=tf.constant(names[:1]))
  _assert_error(semantic, 'class_embeddings: no classes', images=image,
                class_embeddings=tf.zeros([0, embedding_dim]),
                class_names=tf.constant([], tf.string))
  _assert_error(semantic, 'class_names: count differs', images=image,
                class_embeddings=tf.constant(vectors), class_names=tf.constant(names[:2]))
  nan_vectors = vectors.copy()
  nan_vectors[1, 5] = np.nan
  _assert_error(semantic, 'class_embeddings: not finite', images=image,
                class_embeddings=tf.constant(nan_vectors), class_names=tf.constant(names))
  _assert_error(signatures['panoptic_with_vocabulary'], 'is_thing: count differs',
                images=image, class_embeddings=tf.constant(vectors),
                class_names=tf.constant(names), is_thing=tf.constant([True, False]))
  result = semantic(images=image, class_embeddings=tf.constant(vectors),
                    class_names=tf.constant(names))
  assert int(tf.reduce_max(result['class_map'])) < 3
