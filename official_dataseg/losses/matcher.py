"""Hungarian matching of prediction entries to padded ground truth.

Two solvers give the same assignment (the minimum-cost one; they can differ
only where costs tie):

- In the graph, static shapes (TPU, XLA): Model Garden's DETR solver
  (`hungarian_matching`, square matrices only). A rectangular [P, M] cost
  with validity flags is padded to a square [K, K], K = max(P, M): every cell
  that involves an invalid entry, a padded GT, a pad row/column or a
  non-finite cost gets one bounded pad cost just above the largest real cost
  of the image. A pad cell costs more than any real cell, and every valid
  entry may pair with every valid GT, so the optimum pairs as many (valid
  entry, valid GT) as possible and, among those, minimises the real cost: it
  equals the rectangular assignment of the valid sub-matrix. (A huge pad cost
  such as 1e9 breaks the float32 solver.) It is a `tf.while_loop` of small
  ops over the whole [K, K] square: ~0.2 s per batch of two 153 x 153
  problems on a 2-core CPU.
- On the host (`host_solver=True`, CPU / GPU training): SciPy's
  `linear_sum_assignment` on each image's valid [P_valid, M_valid]
  sub-matrix, through `tf.numpy_function` (~1 ms for the same batch).
"""
from typing import NamedTuple

import numpy as np
from scipy import optimize
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official.projects.detr.ops import matchers


class MatchResult(NamedTuple):
  """One-to-one matching between P prediction entries and M GT slots.

  Attributes:
    entry_to_gt: int32 [B, P], the GT index of each entry (meaningful only
      where `entry_matched`).
    entry_matched: bool [B, P], the entry is valid and paired with a valid GT.
    gt_to_entry: int32 [B, M], the entry index of each GT (meaningful only
      where `gt_matched`).
    gt_matched: bool [B, M], the GT is valid and paired with a valid entry.
  """
  entry_to_gt: tf.Tensor
  entry_matched: tf.Tensor
  gt_to_entry: tf.Tensor
  gt_matched: tf.Tensor


def pad_cost_matrix(cost: tf.Tensor, entry_valid: tf.Tensor,
                    gt_valid: tf.Tensor) -> tf.Tensor:
  """Pads a rectangular cost to the square, bounded one the solver needs.

  Args:
    cost: float32 [B, P, M], cost of pairing entry p with GT m.
    entry_valid: bool [B, P].
    gt_valid: bool [B, M].

  Returns:
    float32 [B, K, K], K = max(P, M): real costs where both sides are valid
    and the cost is finite, elsewhere max(real costs of the image) + 1.
  """
  num_entries, num_gt = cost.shape[1], cost.shape[2]
  size = max(num_entries, num_gt)
  real = (entry_valid[:, :, tf.newaxis] & gt_valid[:, tf.newaxis, :]
          & tf.math.is_finite(cost))
  largest_real = tf.reduce_max(
      tf.where(real, cost, tf.float32.min), axis=[1, 2], keepdims=True)
  any_real = tf.reduce_any(real, axis=[1, 2], keepdims=True)
  pad_cost = tf.where(any_real, largest_real, 0.0) + 1.0
  cost = tf.where(real, cost, pad_cost)
  cost = tf.pad(cost, [[0, 0], [0, size - num_entries], [0, size - num_gt]])
  in_rectangle = tf.pad(
      tf.ones_like(real), [[0, 0], [0, size - num_entries],
                           [0, size - num_gt]])
  return tf.where(in_rectangle, cost, pad_cost)


def _solve_valid_submatrices(cost: np.ndarray, entry_valid: np.ndarray,
                             gt_valid: np.ndarray):
  """NumPy body of the host solver; arguments and results as `MatchResult`'s.

  Non-finite cells of the valid sub-matrix cost one more than its largest
  finite cell, as in the in-graph solver's padding.
  """
  batch_size, num_entries = entry_valid.shape
  num_gt = gt_valid.shape[1]
  entry_to_gt = np.zeros([batch_size, num_entries], np.int32)
  entry_matched = np.zeros([batch_size, num_entries], bool)
  gt_to_entry = np.zeros([batch_size, num_gt], np.int32)
  gt_matched = np.zeros([batch_size, num_gt], bool)
  for image in range(batch_size):
    rows = np.flatnonzero(entry_valid[image])
    cols = np.flatnonzero(gt_valid[image])
    if not rows.size or not cols.size:
      continue
    sub = cost[image][np.ix_(rows, cols)]
    finite = np.isfinite(sub)
    if not finite.all():
      pad_cost = (sub[finite].max() if finite.any() else 0.0) + 1.0
      sub = np.where(finite, sub, pad_cost)
    row_index, col_index = optimize.linear_sum_assignment(sub)
    entries, gts = rows[row_index], cols[col_index]
    entry_to_gt[image, entries] = gts
    entry_matched[image, entries] = True
    gt_to_entry[image, gts] = entries
    gt_matched[image, gts] = True
  return entry_to_gt, entry_matched, gt_to_entry, gt_matched


def _host_hungarian_match(cost: tf.Tensor, entry_valid: tf.Tensor,
                          gt_valid: tf.Tensor) -> MatchResult:
  """`hungarian_match` by SciPy on the host; float32 cost, static [B, P, M]."""
  results = tf.numpy_function(
      _solve_valid_submatrices, [cost, entry_valid, gt_valid],
      [tf.int32, tf.bool, tf.int32, tf.bool], stateful=False,
      name='host_hungarian_match')
  shapes = [entry_valid.shape, entry_valid.shape, gt_valid.shape,
            gt_valid.shape]
  for result, shape in zip(results, shapes):
    result.set_shape(shape)
  return MatchResult(*results)


def hungarian_match(cost: tf.Tensor, entry_valid: tf.Tensor,
                    gt_valid: tf.Tensor,
                    host_solver: bool = False) -> MatchResult:
  """Minimum-cost one-to-one matching, vectorised over the batch.

  Args:
    cost: float [B, P, M] matching cost (cast to float32; no gradient flows).
    entry_valid: bool [B, P], False for entries that may not be matched.
    gt_valid: bool [B, M], False for padded GT.
    host_solver: solve with SciPy on the host instead of in the graph (the
      same assignment, far faster on CPU; not for TPU or XLA compilation).

  Returns:
    A `MatchResult`.
  """
  cost = tf.stop_gradient(tf.cast(cost, tf.float32))
  entry_valid = tf.convert_to_tensor(entry_valid, tf.bool)
  gt_valid = tf.convert_to_tensor(gt_valid, tf.bool)
  if host_solver:
    return _host_hungarian_match(cost, entry_valid, gt_valid)
  num_entries, num_gt = cost.shape[1], cost.shape[2]
  square_cost = pad_cost_matrix(cost, entry_valid, gt_valid)
  # Model Garden returns (adjusted_weights, assignment); rows = entries.
  _, assignment = matchers.hungarian_matching(square_cost)
  assignment = tf.stop_gradient(assignment)

  entry_to_gt = tf.argmax(
      tf.cast(assignment[:, :num_entries, :], tf.int32), axis=2,
      output_type=tf.int32)
  gt_to_entry = tf.argmax(
      tf.cast(assignment[:, :, :num_gt], tf.int32), axis=1,
      output_type=tf.int32)
  # Pad rows/columns of the square have indices >= P or >= M: not a match.
  entry_hits_real_gt = entry_to_gt < num_gt
  gt_hits_real_entry = gt_to_entry < num_entries
  entry_to_gt = tf.minimum(entry_to_gt, num_gt - 1)
  gt_to_entry = tf.minimum(gt_to_entry, num_entries - 1)
  entry_matched = (entry_valid & entry_hits_real_gt
                   & tf.gather(gt_valid, entry_to_gt, batch_dims=1))
  gt_matched = (gt_valid & gt_hits_real_entry
                & tf.gather(entry_valid, gt_to_entry, batch_dims=1))
  return MatchResult(entry_to_gt=entry_to_gt, entry_matched=entry_matched,
                     gt_to_entry=gt_to_entry, gt_matched=gt_matched)


def match_by_class(entry_valid: tf.Tensor, gt_classes: tf.Tensor,
                   gt_valid: tf.Tensor) -> MatchResult:
  """Pairs entry c with the GT of class c (semantic MERGE: entry c IS class c).

  Args:
    entry_valid: bool [B, C], one entry per class of the vocabulary.
    gt_classes: int32 [B, M] class index of each GT slot.
    gt_valid: bool [B, M], False for padded GT.

  Returns:
    MatchResult; a GT whose class entry is invalid stays unmatched, and of two
    GT slots of one class only the first is matched.
  """
  num_entries = entry_valid.shape[1]
  same_class = (tf.equal(gt_classes[:, tf.newaxis, :],
                         tf.range(num_entries)[tf.newaxis, :, tf.newaxis])
                & gt_valid[:, tf.newaxis, :])                     # [B, C, M]
  entry_to_gt = tf.argmax(tf.cast(same_class, tf.int32), axis=2,
                          output_type=tf.int32)
  entry_matched = entry_valid & tf.reduce_any(same_class, axis=2)
  gt_to_entry = tf.clip_by_value(gt_classes, 0, num_entries - 1)
  first_of_class = tf.equal(
      tf.gather(entry_to_gt, gt_to_entry, batch_dims=1),
      tf.range(gt_classes.shape[1])[tf.newaxis])
  gt_matched = (gt_valid & first_of_class
                & tf.gather(entry_valid, gt_to_entry, batch_dims=1))
  return MatchResult(entry_to_gt=entry_to_gt, entry_matched=entry_matched,
                     gt_to_entry=gt_to_entry, gt_matched=gt_matched)
