"""Hungarian matching (the in-graph and the host solver) against scipy.optimize.linear_sum_assignment
and against each other."""
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


SOLVERS = pytest.mark.parametrize('host_solver', [False, True], ids=['in_graph', 'host'])


@pytest.mark.slow
@SOLVERS
@pytest.mark.parametrize('batch,size', [(40, 100), (160, 30)])
def test_total_cost_equals_scipy_on_200_problems(batch, size, host_solver):
  # 200 problems in all, batched in two size buckets to keep the solver fast. The reference
  # solves each image's valid sub-matrix, pairs through a padded GT slot's inf included.
  rng = np.random.default_rng(size)
  costs, entry_valid, gt_valid = _random_problems(rng, batch, size)
  match_fn = tf.function(lambda *args: matcher.hungarian_match(*args, host_solver=host_solver))
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


@SOLVERS
def test_rectangular_and_inverse_indices(host_solver):
  # 3 entries x 2 GT; entry 1 invalid; hand-solved optimum: e0-g1, e2-g0.
  cost = np.array([[[5., 1.], [0., 0.], [2., 4.]]], np.float32)
  result = matcher.hungarian_match(
      tf.constant(cost), tf.constant([[True, False, True]]),
      tf.constant([[True, True]]), host_solver=host_solver)
  np.testing.assert_array_equal(result.entry_matched.numpy(),
                                [[True, False, True]])
  np.testing.assert_array_equal(result.entry_to_gt.numpy()[0, [0, 2]], [1, 0])
  np.testing.assert_array_equal(result.gt_to_entry.numpy(), [[2, 0]])
  np.testing.assert_array_equal(result.gt_matched.numpy(), [[True, True]])


@SOLVERS
def test_no_valid_gt_matches_nothing(host_solver):
  cost = np.full((2, 4, 3), np.nan, np.float32)
  result = matcher.hungarian_match(
      tf.constant(cost), tf.ones((2, 4), tf.bool), tf.zeros((2, 3), tf.bool),
      host_solver=host_solver)
  assert not result.entry_matched.numpy().any()
  assert not result.gt_matched.numpy().any()


def test_fewer_entries_than_gt_leaves_the_costliest_gt_unmatched():
  # 2 valid entries x 3 GT, hand-solved: e0-g2 (1) + e1-g0 (2) = 3 beats every other pair.
  cost = np.array([[[4., 9., 1.], [2., 8., 3.]]], np.float32)
  for host_solver in (False, True):
    result = matcher.hungarian_match(tf.constant(cost), tf.ones((1, 2), tf.bool),
                                     tf.ones((1, 3), tf.bool), host_solver=host_solver)
    np.testing.assert_array_equal(result.entry_to_gt.numpy(), [[2, 0]])
    np.testing.assert_array_equal(result.gt_matched.numpy(), [[True, False, True]])
    np.testing.assert_array_equal(result.gt_to_entry.numpy()[0, [0, 2]], [1, 0])


def test_host_and_in_graph_solvers_give_the_same_assignment():
  """Untied costs have one optimum: both solvers must find it, entry for entry.

  The shapes of training: 153 entries (100 proposals + 53 merged stuff classes) x 100 GT slots,
  a few to 40 of them real, some entries invalid; one image with no valid GT and one with an
  inf cost in a padded GT slot's column.
  """
  rng = np.random.default_rng(7)
  batch, num_entries, num_gt = 6, 153, 100
  costs = rng.normal(size=(batch, num_entries, num_gt)).astype(np.float32)
  entry_valid = rng.uniform(size=(batch, num_entries)) > 0.2
  gt_valid = np.zeros((batch, num_gt), bool)
  for image, count in enumerate([10, 3, 40, 0, 25, 1]):
    gt_valid[image, rng.choice(num_gt, count, replace=False)] = True
  costs[0][:, ~gt_valid[0]] = np.inf
  inputs = [tf.constant(costs), tf.constant(entry_valid), tf.constant(gt_valid)]
  results = [tf.function(lambda *args, host=host: matcher.hungarian_match(  # pylint: disable=g-long-lambda
      *args, host_solver=host))(*inputs) for host in (False, True)]
  in_graph, host = [{name: tensor.numpy() for name, tensor in result._asdict().items()}
                    for result in results]
  np.testing.assert_array_equal(host['gt_matched'], gt_valid)
  np.testing.assert_array_equal(host['entry_matched'], in_graph['entry_matched'])
  np.testing.assert_array_equal(host['gt_matched'], in_graph['gt_matched'])
  np.testing.assert_array_equal(np.where(host['entry_matched'], host['entry_to_gt'], -1),
                                np.where(in_graph['entry_matched'], in_graph['entry_to_gt'], -1))
  np.testing.assert_array_equal(np.where(host['gt_matched'], host['gt_to_entry'], -1),
                                np.where(in_graph['gt_matched'], in_graph['gt_to_entry'], -1))
  for result in results:
    assert result.entry_to_gt.shape == (batch, num_entries)
    assert result.gt_to_entry.shape == (batch, num_gt)


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
