"""Repeat-factor sampling (LVIS, Gupta et al. 2019) on serialized examples.

Category factor r(c) = max(1, sqrt(t / f(c))), f(c) = fraction of training
images that contain class c; image factor r(I) = max over its classes (1 for an
image without objects). Each pass over the data emits an image
floor(r) + Bernoulli(frac(r)) times (stochastic rounding), drawn statelessly
from (seed, position in the stream) so that a restored iterator replays it.

Category frequency file (`<prefix>-category_frequency.json`, written beside the
shards by `tfrecords_tools/`):
  {"num_images": N, "image_count": [n_0, n_1, ...]}
with n_c the number of images containing class index c. The converters' richer
form {"num_images": N, "classes": [{"index": c, "image_count": n_c, ...}]} is
read too.
"""
import json
from typing import Tuple

import numpy as np
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official.core import input_reader
from official_dataseg import common
from official_dataseg.dataloaders import record_set


def default_category_frequency_path(input_path: str) -> str:
  """`<prefix>-category_frequency.json` of the first shard of `input_path`.

  Raises:
    ValueError: the first file is not named like a converter's shard.
  """
  first_shard = sorted(input_reader.match_files(input_path))[0]
  prefix = record_set.prefix_of_shard(first_shard)
  if prefix is None:
    raise ValueError(f'{first_shard} is not named PREFIX-iiiii-of-nnnnn.tfrecord: set '
                     'DatasetConfig.category_frequency_file')
  return prefix + record_set.CATEGORY_FREQUENCY_SUFFIX


def load_category_frequency(path: str) -> Tuple[int, np.ndarray]:
  """Reads a category frequency file.

  Args:
    path: the JSON file (format in the module docstring).

  Returns:
    num_images: N.
    image_count: int64 [C] images containing each class index.

  Raises:
    ValueError: naming the file and the missing or bad field.
  """
  if not tf.io.gfile.exists(path):
    raise ValueError(f'Category frequency file {path} does not exist '
                     '(needed by repeat_factor_threshold > 0).')
  with tf.io.gfile.GFile(path) as f:
    content = json.load(f)
  num_images = content.get('num_images')
  if not isinstance(num_images, int) or num_images <= 0:
    raise ValueError(f'{path}: "num_images" must be a positive integer, got '
                     f'{num_images!r}')
  if 'image_count' in content:
    image_count = np.asarray(content['image_count'], np.int64)
  elif 'classes' in content:
    classes = content['classes']
    image_count = np.zeros([len(classes)], np.int64)
    for entry in classes:
      image_count[int(entry['index'])] = int(entry['image_count'])
  else:
    raise ValueError(f'{path}: expected "image_count" (a list, one count per '
                     'class index) or "classes"; found keys '
                     f'{sorted(content)}')
  if image_count.ndim != 1 or np.any(image_count < 0) or np.any(
      image_count > num_images):
    raise ValueError(f'{path}: "image_count" must be a list of counts in '
                     f'[0, num_images={num_images}]')
  return num_images, image_count


def category_repeat_factors(image_count: np.ndarray, num_images: int,
                            threshold: float) -> np.ndarray:
  """r(c) = max(1, sqrt(t / f(c))); classes in no image get 1.

  Args:
    image_count: [C] images containing each class.
    num_images: N.
    threshold: t.

  Returns:
    float64 [C].
  """
  fraction = np.asarray(image_count, np.float64) / num_images
  with np.errstate(divide='ignore'):
    factors = np.sqrt(threshold / fraction)
  return np.where(fraction > 0, np.maximum(1.0, factors), 1.0)


def image_repeat_factor(classes: tf.Tensor,
                        category_factors: tf.Tensor) -> tf.Tensor:
  """float32 []: max of the factors of `classes` (int32 [K]); 1 when K = 0.

  Raises (when run):
    InvalidArgumentError: a class index outside [0, C): the records index another class list
      than the category frequency file.
  """
  num_categories = tf.shape(category_factors, out_type=classes.dtype)[0]
  in_range = tf.debugging.Assert(
      tf.reduce_all((classes >= 0) & (classes < num_categories)),
      ['repeat-factor sampling: a class index of the record is outside [0, number of classes '
       'of the category frequency file); classes:', classes, 'number of classes:',
       num_categories])
  with tf.control_dependencies([in_range]):
    factors = tf.gather(category_factors, classes)
  return tf.reduce_max(tf.concat([[1.0], factors], axis=0))


def stochastic_round(value: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """int64 []: floor(value) + 1 with probability frac(value)."""
  floor = tf.floor(value)
  bump = tf.random.stateless_uniform([], seed) < value - floor
  return tf.cast(floor, tf.int64) + tf.cast(bump, tf.int64)


def _classes_of_serialized(serialized: tf.Tensor) -> tf.Tensor:
  """int32 [K]: the class list of a serialized example, without decoding images."""
  parsed = tf.io.parse_single_example(
      serialized,
      {common.TFRECORD_OBJECT_CLASS: tf.io.VarLenFeature(tf.int64)})
  return tf.cast(parsed[common.TFRECORD_OBJECT_CLASS].values, tf.int32)


def repeat_by_factor(dataset: tf.data.Dataset, category_factors: np.ndarray,
                     seed: int) -> tf.data.Dataset:
  """Repeats each serialized example of `dataset` by its stochastic image factor.

  Args:
    dataset: serialized tf.Examples.
    category_factors: [C] r(c).
    seed: stateless seed; the element position supplies the second half.

  Returns:
    The dataset of serialized examples with repeats (adjacent; shuffle after).
  """
  factors = tf.constant(category_factors, tf.float32)

  def num_copies(position, serialized):
    factor = image_repeat_factor(_classes_of_serialized(serialized), factors)
    count = stochastic_round(factor, tf.stack(
        [tf.constant(seed, tf.int64), position]))
    return tf.data.Dataset.from_tensors(serialized).repeat(count)

  return dataset.enumerate().flat_map(num_copies)
