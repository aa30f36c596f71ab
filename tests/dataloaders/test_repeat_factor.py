"""Repeat-factor sampling against the LVIS formula on a hand-made table."""
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from official_dataseg.dataloaders import repeat_factor
from tests.dataloaders import tfexample_helpers


def test_category_factors_match_lvis_formula():
  # 100 images; t = 0.1. f = [0.5, 0.1, 0.01, 0.0].
  factors = repeat_factor.category_repeat_factors(
      np.array([50, 10, 1, 0]), 100, 0.1)
  np.testing.assert_allclose(factors, [1.0, 1.0, math.sqrt(10.0), 1.0])


def test_image_factor_is_max_over_classes():
  category = tf.constant([1.0, 2.5, 1.5])
  assert repeat_factor.image_repeat_factor(
      tf.constant([0, 2, 2]), category).numpy() == pytest.approx(1.5)
  assert repeat_factor.image_repeat_factor(
      tf.constant([1, 0]), category).numpy() == pytest.approx(2.5)
  assert repeat_factor.image_repeat_factor(
      tf.zeros([0], tf.int32), category).numpy() == 1.0


def test_stochastic_rounding_mean():
  counts = [repeat_factor.stochastic_round(tf.constant(2.3),
                                           tf.constant([5, i])).numpy()
            for i in range(2000)]
  assert set(counts) == {2, 3}
  assert abs(np.mean(counts) - 2.3) < 0.04


def test_load_both_formats_and_errors(tmp_path):
  simple = tmp_path / 'a-category_frequency.json'
  simple.write_text(json.dumps({'num_images': 4, 'image_count': [4, 1]}))
  num_images, counts = repeat_factor.load_category_frequency(str(simple))
  assert num_images == 4 and counts.tolist() == [4, 1]
  rich = tmp_path / 'b-category_frequency.json'
  rich.write_text(json.dumps({'num_images': 4, 'classes': [
      {'index': 1, 'image_count': 2}, {'index': 0, 'image_count': 3}]}))
  assert repeat_factor.load_category_frequency(str(rich))[1].tolist() == [3, 2]
  bad = tmp_path / 'c.json'
  bad.write_text(json.dumps({'num_images': 4}))
  with pytest.raises(ValueError, match='c.json.*image_count'):
    repeat_factor.load_category_frequency(str(bad))
  assert repeat_factor.default_category_frequency_path(
      str(tmp_path / 'a-00000-of-00002.tfrecord')) == str(simple)


def test_repeat_by_factor_counts_copies():
  # Class 1 has factor 3 (integral: no rounding noise), class 0 factor 1.
  image = np.zeros((2, 2, 3), np.uint8)
  examples = [tfexample_helpers.make_example(image, [c], [[0, 0, 1, 1]],
                                             source_id=str(i))
              for i, c in enumerate([0, 1, 0])]
  dataset = repeat_factor.repeat_by_factor(
      tf.data.Dataset.from_tensor_slices(examples), np.array([1.0, 3.0]), 0)
  assert [e == examples[1] for e in dataset.as_numpy_iterator()].count(True) == 3
  assert len(list(dataset)) == 5
