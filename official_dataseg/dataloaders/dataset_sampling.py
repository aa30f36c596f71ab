"""Which dataset each training step draws: one stateless draw per batch index.

Batch b comes from dataset i when u_b = stateless_uniform(seed=(seed, b)) falls
in [cdf_i-1, cdf_i) of the normalised sampling weights: the same rule as Model
Garden's multitask interleaving trainer (which seeds with (0, global_step)).
The draw depends only on (seed, b), so every replica and every restart agrees.
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


def draw_dataset_index(cdf: tf.Tensor, seed: int,
                       batch_index: tf.Tensor) -> tf.Tensor:
  """int64 []: the dataset of batch `batch_index` (int64 [])."""
  draw = tf.random.stateless_uniform(
      [], tf.stack([tf.constant(seed, tf.int64),
                    tf.cast(batch_index, tf.int64)]))
  index = tf.searchsorted(cdf, draw[None], side='right')[0]
  return tf.minimum(tf.cast(index, tf.int64), tf.cast(tf.size(cdf) - 1,
                                                      tf.int64))


def dataset_choice_dataset(weights: Sequence[float],
                           seed: int) -> tf.data.Dataset:
  """Infinite int64 dataset of dataset indices, batch 0, 1, 2, ... in order.

  Args:
    weights: [D] sampling weights.
    seed: the stateless seed.

  Returns:
    A dataset for `tf.data.Dataset.choose_from_datasets`.
  """
  cdf = tf.constant(cumulative_weights(weights))
  return tf.data.Dataset.counter().map(
      lambda batch_index: draw_dataset_index(cdf, seed, batch_index))
