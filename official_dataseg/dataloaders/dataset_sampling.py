"""Which dataset each training step draws: one stateless draw per batch index.

Batch b comes from dataset i when u_b falls in [cdf_i-1, cdf_i) of the
normalised sampling weights. u_b depends only on (seed, b), so every replica and
every restart agrees.

- stratified (default): u_b = frac(o + b * phi) with phi = (sqrt(5) - 1) / 2 and
  a seeded offset o, a low-discrepancy (Weyl) sequence. Each step still draws
  one dataset with the configured probabilities, but the counts over any window
  of K steps are within a few draws of K * p_i (over 9,000 steps the 1:4:4
  ratio is met to ~0.1%), where independent draws wander by ~sqrt(K p_i).
- random: u_b = stateless_uniform(seed=(seed, b)), the rule of Model Garden's
  multitask interleaving trainer (which seeds with (0, global_step)).
"""
from typing import Sequence

import numpy as np
import tensorflow as tf, tf_keras  # pylint: disable=unused-import


def cumulative_weights(weights: Sequence[float]) -> np.ndarray:
  """float32 [D]: the CDF of the normalised weights (last entry 1).

  Raises:
    ValueError: on a negative weight or an all-zero list.
  """
  weights = np.asarray(weights, np.float64)
  if weights.ndim != 1 or weights.size == 0 or np.any(weights < 0) or (
      weights.sum() <= 0):
    raise ValueError('sampling_weight must be >= 0 with a positive sum, got '
                     f'{weights.tolist()}')
  cdf = np.cumsum(weights / weights.sum())
  cdf[-1] = 1.0
  return cdf.astype(np.float32)


_GOLDEN_FRACTION = (np.sqrt(5.0) - 1.0) / 2.0


def draw_dataset_index(cdf: tf.Tensor, seed: int, batch_index: tf.Tensor,
                       stratified: bool = True) -> tf.Tensor:
  """int64 []: the dataset of batch `batch_index` (int64 [])."""
  if stratified:
    offset = tf.random.stateless_uniform(
        [], tf.constant([seed, 0], tf.int64), dtype=tf.float64)
    # float64 keeps frac(b * phi) exact to ~1e-6 for b up to ~1e9.
    position = offset + tf.cast(batch_index, tf.float64) * _GOLDEN_FRACTION
    draw = tf.cast(position - tf.floor(position), tf.float32)
  else:
    draw = tf.random.stateless_uniform(
        [], tf.stack([tf.constant(seed, tf.int64),
                      tf.cast(batch_index, tf.int64)]))
  index = tf.searchsorted(cdf, draw[None], side='right')[0]
  return tf.minimum(tf.cast(index, tf.int64), tf.cast(tf.size(cdf) - 1,
                                                      tf.int64))


def dataset_choice_dataset(weights: Sequence[float], seed: int,
                           stratified: bool = True,
                           batches_per_step: int = 1) -> tf.data.Dataset:
  """Infinite int64 dataset of dataset indices, batch 0, 1, 2, ... in order.

  Args:
    weights: [D] sampling weights.
    seed: the stateless seed.
    stratified: low-discrepancy draws (see the module docstring) or i.i.d.
    batches_per_step: per-replica batches this input pipeline yields per training step (its
      number of local replicas): they all get the step's draw, so the whole global batch of a
      step comes from one dataset.

  Returns:
    A dataset for `tf.data.Dataset.choose_from_datasets`.
  """
  cdf = tf.constant(cumulative_weights(weights))
  if batches_per_step < 1:
    raise ValueError(f'batches_per_step must be >= 1, got {batches_per_step}')
  return tf.data.Dataset.counter().map(
      lambda batch_index: draw_dataset_index(cdf, seed, batch_index // batches_per_step,
                                             stratified))
