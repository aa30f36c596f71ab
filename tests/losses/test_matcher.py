"""Hungarian matching against scipy.optimize.linear_sum_assignment."""
import numpy as np
import pytest
from scipy import optimize
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg.losses import matcher


def _random_problems(rng, batch, size):
  """Random costs with random valid rows/columns; a third use tied integers."""
  costs = rng.uniform(0.0, 3.0, size=(batch, size, size)).astype(np.float32)
  ties = rng.integers(0, 4, size=(batch, size, size)).astype(np.float32)
  use_ties = (np.arange(batch) % 3 == 0)[:, None, None]
  costs = np.where(use_ties, ties, costs)
  entry_valid = np.zeros((batch, size), bool)
  gt_valid = np.zeros((batch, size), bool)
  for b in range(batch):
    num_entries = rng.integers(1, size + 1)
    num_gt = rng.integers(0, size + 1)
    entry_valid[b, rng.choice(size, num_entries, replace=False)] = True
    gt_valid[b, rng.choice(size, num_gt, replace=False)] = True
  # Non-finite costs of padded GT must not matter.
  costs[:, :, 0] = np.where(gt_valid[:, None, 0], costs[:, :, 0], np.inf)
  return costs, entry_valid, gt_valid


def _scipy_total(cost, entry_valid, gt_valid):
  sub = cost[entry_valid][:, gt_valid]
  if sub.size == 0:
    return 0.0, 0
  rows, cols = optimize.linear_sum_assignment(sub)
  return float(sub[rows, cols].sum()), len(rows)


@pytest.mark.slow
@pytest.mark.parametrize('batch,size', [(40, 100), (160, 30)])
def test_total_cost_equals_scipy_on_200_problems(batch, size):
  # 200 problems in all, batched in two size buckets to keep the solver fast.
  rng = np.random.default_rng(size)
  costs, entry_valid, gt_valid = _random_problems(rng, batch, size)
  match_fn = tf.function(matcher.hungarian_match)
  result = match_fn(tf.constant(costs), tf.constant(entry_valid),
                    tf.constant(gt_valid))
  entry_to_gt = result.entry_to_gt.numpy()
  entry_matched = result.entry_matched.numpy()
  gt_to_entry = result.gt_to_entry.numpy()
  for b in range(batch):
    expected_total, expected_pairs = _scipy_total(
        costs[b], entry_valid[b], gt_valid[b])
    rows = np.nonzero(entry_matched[b])[0]
    cols = entry_to_gt[b, rows]
    assert len(set(cols)) == len(cols)
    assert gt_valid[b, cols].all() and entry_valid[b, rows].all()
    np.testing.assert_array_equal(gt_to_entry[b, cols], rows)
    assert len(rows) == expected_pairs
    np.testing.assert_allclose(costs[b, rows, cols].sum(), expected_total,
                               rtol=1e-5, atol=1e-3)


def test_rectangular_and_inverse_indices():
  # 3 entries x 2 GT; entry 1 invalid; hand-solved optimum: e0-g1, e2-g0.
  cost = np.array([[[5., 1.], [0., 0.], [2., 4.]]], np.float32)
  result = matcher.hungarian_match(
      tf.constant(cost), tf.constant([[True, False, True]]),
      tf.constant([[True, True]]))
  np.testing.assert_array_equal(result.entry_matched.numpy(),
                                [[True, False, True]])
  np.testing.assert_array_equal(result.entry_to_gt.numpy()[0, [0, 2]], [1, 0])
  np.testing.assert_array_equal(result.gt_to_entry.numpy(), [[2, 0]])
  np.testing.assert_array_equal(result.gt_matched.numpy(), [[True, True]])


def test_no_valid_gt_matches_nothing():
  cost = np.full((2, 4, 3), np.nan, np.float32)
  result = matcher.hungarian_match(
      tf.constant(cost), tf.ones((2, 4), tf.bool), tf.zeros((2, 3), tf.bool))
  assert not result.entry_matched.numpy().any()
  assert not result.gt_matched.numpy().any()


def test_match_by_class_pairs_entry_c_with_the_gt_of_class_c():
  # Image 0: GT slots of classes 2, 0, (padding); entry 1 invalid, no GT of class 1 anyway.
  # Image 1: GT of class 1 whose entry is invalid -> unmatched; GT of class 3 matched.
  entry_valid = tf.constant([[True, False, True, True], [True, False, True, True]])
  gt_classes = tf.constant([[2, 0, 0], [1, 3, 0]], tf.int32)
  gt_valid = tf.constant([[True, True, False], [True, True, False]])
  result = matcher.match_by_class(entry_valid, gt_classes, gt_valid)
  np.testing.assert_array_equal(result.entry_matched.numpy(),
                                [[True, False, True, False], [False, False, False, True]])
  np.testing.assert_array_equal(result.entry_to_gt.numpy()[0, [0, 2]], [1, 0])
  np.testing.assert_array_equal(result.entry_to_gt.numpy()[1, 3], 1)
  np.testing.assert_array_equal(result.gt_matched.numpy(),
                                [[True, True, False], [False, True, False]])
  np.testing.assert_array_equal(result.gt_to_entry.numpy()[0, :2], [2, 0])
  np.testing.assert_array_equal(result.gt_to_entry.numpy()[1, 1], 3)


def test_match_by_class_matches_only_the_first_of_two_slots_of_one_class():
  result = matcher.match_by_class(tf.constant([[True, True]]),
                                  tf.constant([[1, 1]], tf.int32), tf.constant([[True, True]]))
  np.testing.assert_array_equal(result.gt_matched.numpy(), [[True, False]])
  np.testing.assert_array_equal(result.entry_matched.numpy(), [[False, True]])
  assert int(result.entry_to_gt[0, 1]) == 0
