"""Per-batch dataset draws: ratio, determinism."""
import numpy as np
import pytest
import tensorflow as tf

from official_dataseg.dataloaders import dataset_sampling


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_ratio_over_9000_steps_matches_1_4_4(seed):
  draws = np.array(list(dataset_sampling.dataset_choice_dataset(
      [1.0, 4.0, 4.0], seed=seed).take(9000).as_numpy_iterator()))
  fractions = np.bincount(draws, minlength=3) / 9000
  # Within 2% of each dataset's share (relative), for every seed.
  np.testing.assert_allclose(fractions, [1 / 9, 4 / 9, 4 / 9], rtol=0.02)
  # Any window of 900 steps keeps the ratio too (counts within 2 draws of 100 / 400 / 400).
  for start in range(0, 9000, 900):
    counts = np.bincount(draws[start:start + 900], minlength=3)
    np.testing.assert_allclose(counts, [100, 400, 400], atol=2)


def test_random_draws_are_independent_and_match_the_ratio_loosely():
  draws = np.array(list(dataset_sampling.dataset_choice_dataset(
      [1.0, 4.0, 4.0], seed=0, stratified=False).take(9000).as_numpy_iterator()))
  fractions = np.bincount(draws, minlength=3) / 9000
  # Binomial standard deviation of a share over 9000 draws is <= 0.0053.
  np.testing.assert_allclose(fractions, [1 / 9, 4 / 9, 4 / 9], atol=0.02)


def test_draws_depend_only_on_seed_and_batch_index():
  first = list(dataset_sampling.dataset_choice_dataset(
      [1, 1], seed=7).take(50).as_numpy_iterator())
  again = list(dataset_sampling.dataset_choice_dataset(
      [1, 1], seed=7).take(50).as_numpy_iterator())
  other = list(dataset_sampling.dataset_choice_dataset(
      [1, 1], seed=8).take(50).as_numpy_iterator())
  assert first == again and first != other
  cdf = tf.constant(dataset_sampling.cumulative_weights([1, 1]))
  assert dataset_sampling.draw_dataset_index(cdf, 7, 10).numpy() == first[10]


def test_zero_weight_never_drawn():
  draws = list(dataset_sampling.dataset_choice_dataset(
      [0, 1, 1], seed=0).take(300).as_numpy_iterator())
  assert 0 not in draws


def test_local_replicas_of_a_step_share_its_draw():
  per_step = list(dataset_sampling.dataset_choice_dataset(
      [1.0, 4.0, 4.0], seed=5).take(30).as_numpy_iterator())
  per_replica = list(dataset_sampling.dataset_choice_dataset(
      [1.0, 4.0, 4.0], seed=5, batches_per_step=4).take(120).as_numpy_iterator())
  assert per_replica == [d for d in per_step for _ in range(4)]
