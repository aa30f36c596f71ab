"""Training MERGE on hand-made proposals with hand-computed merged entries."""
import numpy as np
import pytest
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg import common
from official_dataseg.losses import mask_losses
from official_dataseg.losses import merge

# Four proposals over classes [c0, c1, c2, background]; argmax over the real
# classes: q0 -> c0, q1 -> c1, q2 -> c0 (background ties, but is excluded),
# q3 -> c1. Nobody predicts c2.
CLASS_PROBS = np.array([[0.5, 0.2, 0.1, 0.2],
                        [0.1, 0.6, 0.1, 0.2],
                        [0.4, 0.1, 0.1, 0.4],
                        [0.1, 0.7, 0.1, 0.1]])
# Mask probabilities of each proposal on a 1 x 2 image.
MASK_PROBS = np.array([[[0.5, 0.2]], [[0.3, 0.3]], [[0.7, 0.1]],
                       [[0.4, 0.1]]])
EPS = merge.DEFAULT_PROBABILITY_CLIP


def _proposals():
  mask_logits = np.log(MASK_PROBS / (1 - MASK_PROBS))
  return (tf.constant(mask_logits[np.newaxis], tf.float32),
          tf.constant(np.log(CLASS_PROBS)[np.newaxis], tf.float32))


def _probs(entries):
  return (tf.sigmoid(entries.mask_logits).numpy()[0],
          tf.exp(entries.class_log_probs).numpy()[0], entries.valid.numpy()[0])


def test_semantic_merge_hard_and_soft():
  mask_logits, class_logits = _proposals()
  entries = merge.build_entries(mask_logits, class_logits,
                                common.TASK_SEMANTIC, [True, False, False])
  masks, classes, valid = _probs(entries)
  np.testing.assert_array_equal(valid, [True, True, False])
  # c0 = min(1, q0 + q2) = [1, 0.3]; c1 = q1 + q3 = [0.7, 0.4].
  np.testing.assert_allclose(masks[0], [[1 - EPS, 0.3]], rtol=1e-5)
  np.testing.assert_allclose(masks[1], [[0.7, 0.4]], rtol=1e-5)
  np.testing.assert_allclose(masks[2], [[EPS, EPS]], rtol=1e-3)
  np.testing.assert_allclose(classes[0], [0.45, 0.15, 0.1, 0.3], rtol=1e-5)
  np.testing.assert_allclose(classes[1], [0.1, 0.65, 0.1, 0.15], rtol=1e-5)

  soft = merge.build_entries(mask_logits, class_logits, common.TASK_SEMANTIC,
                             [True, False, False],
                             operator=merge.MERGE_WEIGHTED_CLIPPED_SUM)
  masks, classes, _ = _probs(soft)
  # c0 = 0.5 q0 + 0.4 q2; c1 = 0.6 q1 + 0.7 q3.
  np.testing.assert_allclose(masks[0], [[0.53, 0.14]], rtol=1e-5)
  np.testing.assert_allclose(masks[1], [[0.46, 0.25]], rtol=1e-5)
  np.testing.assert_allclose(classes[1], [0.1, 0.65, 0.1, 0.15], rtol=1e-5)


def test_panoptic_merges_stuff_only():
  mask_logits, class_logits = _proposals()
  # c0 thing, c1 and c2 stuff: entries = q0..q3, then merged c1, merged c2.
  entries = merge.build_entries(mask_logits, class_logits,
                                common.TASK_PANOPTIC, [True, False, False])
  masks, classes, valid = _probs(entries)
  assert masks.shape == (6, 1, 2)
  assert merge.num_entries(common.TASK_PANOPTIC, 4, [True, False, False]) == 6
  np.testing.assert_array_equal(valid, [True, False, True, False, True, False])
  np.testing.assert_allclose(masks[:4], MASK_PROBS, rtol=1e-5)
  np.testing.assert_allclose(classes[:4], CLASS_PROBS, rtol=1e-5)
  np.testing.assert_allclose(masks[4], [[0.7, 0.4]], rtol=1e-5)
  np.testing.assert_allclose(classes[4], [0.1, 0.65, 0.1, 0.15], rtol=1e-5)


def test_instance_keeps_proposals():
  mask_logits, class_logits = _proposals()
  entries = merge.build_entries(mask_logits, class_logits,
                                common.TASK_INSTANCE, [True, True, True])
  np.testing.assert_array_equal(entries.mask_logits.numpy(),
                                mask_logits.numpy())
  assert entries.valid.numpy().all()


def test_single_member_merge_equals_logit_losses():
  # Each class predicted by exactly one proposal: merged entries are the
  # proposals, so the losses from probabilities equal those from logits.
  rng = np.random.default_rng(0)
  num_classes, height, width = 3, 8, 8
  mask_logits = rng.normal(0.0, 3.0, (1, num_classes, height, width))
  class_logits = np.full((1, num_classes, num_classes + 1), -2.0)
  class_logits[0, np.arange(num_classes), np.arange(num_classes)] = 3.0
  entries = merge.build_entries(
      tf.constant(mask_logits, tf.float32), tf.constant(class_logits,
                                                        tf.float32),
      common.TASK_SEMANTIC, [False] * num_classes)
  gt = tf.constant(rng.integers(0, 2, (1, num_classes, height, width)),
                   tf.float32)
  valid = tf.ones([1, 1, height, width])
  raw = tf.constant(mask_logits, tf.float32)
  for fn in (mask_losses.mask_dice, mask_losses.projection):
    np.testing.assert_allclose(fn(entries.mask_logits, gt, valid).numpy(),
                               fn(raw, gt, valid).numpy(), rtol=1e-5)
  np.testing.assert_allclose(
      mask_losses.sigmoid_focal(entries.mask_logits, gt, valid, 0.25,
                                2.0).numpy(),
      mask_losses.sigmoid_focal(raw, gt, valid, 0.25, 2.0).numpy(), rtol=1e-4)
  np.testing.assert_allclose(entries.class_log_probs.numpy(),
                             tf.nn.log_softmax(class_logits).numpy(),
                             rtol=1e-5)


def _union_reference(mask_probs, groups):
  """NumPy 1 - prod over members (1 - p), clipped like merge.py: [S, h, w]."""
  merged = np.stack([1.0 - np.prod(1.0 - mask_probs[list(members)], axis=0)
                     if members else np.zeros(mask_probs.shape[1:])
                     for members in groups])
  return np.clip(merged, EPS, 1.0 - EPS)


def test_smooth_union_semantic_and_panoptic():
  mask_logits, class_logits = _proposals()
  semantic = merge.build_entries(mask_logits, class_logits,
                                 common.TASK_SEMANTIC, [True, False, False],
                                 operator=merge.MERGE_SMOOTH_UNION)
  masks, classes, valid = _probs(semantic)
  # Members: c0 = {q0, q2}, c1 = {q1, q3}, c2 = {}.
  np.testing.assert_allclose(
      masks, _union_reference(MASK_PROBS, [(0, 2), (1, 3), ()]), rtol=1e-4)
  np.testing.assert_array_equal(valid, [True, True, False])
  np.testing.assert_allclose(classes[1], [0.1, 0.65, 0.1, 0.15], rtol=1e-5)

  panoptic = merge.build_entries(mask_logits, class_logits,
                                 common.TASK_PANOPTIC, [True, False, False],
                                 operator=merge.MERGE_SMOOTH_UNION)
  masks, _, valid = _probs(panoptic)
  np.testing.assert_allclose(masks[:4], MASK_PROBS, rtol=1e-5)
  np.testing.assert_allclose(
      masks[4:], _union_reference(MASK_PROBS, [(1, 3), ()]), rtol=1e-4)
  np.testing.assert_array_equal(valid, [True, False, True, False, True, False])


def test_smooth_union_single_member_keeps_logits_and_random_groups():
  rng = np.random.default_rng(1)
  num_queries, num_classes = 6, 3
  mask_logits = rng.normal(0.0, 4.0, (1, num_queries, 5, 7))
  class_logits = rng.normal(0.0, 2.0, (1, num_queries, num_classes + 1))
  entries = merge.build_entries(
      tf.constant(mask_logits, tf.float32),
      tf.constant(class_logits, tf.float32), common.TASK_SEMANTIC,
      [False] * num_classes, operator=merge.MERGE_SMOOTH_UNION)
  owner = class_logits[0, :, :num_classes].argmax(-1)
  groups = [tuple(np.flatnonzero(owner == c)) for c in range(num_classes)]
  expected = _union_reference(1.0 / (1.0 + np.exp(-mask_logits[0])), groups)
  np.testing.assert_allclose(tf.sigmoid(entries.mask_logits).numpy()[0],
                             expected, rtol=1e-4, atol=1e-6)
  assert np.isfinite(entries.mask_logits.numpy()).all()


def test_smooth_union_has_gradient_where_clipped_sum_saturates():
  # Two members, p = 0.7 and 0.6: the clipped sum is 1 (no gradient), the
  # union 1 - 0.3 * 0.4 = 0.88 with d/dp0 = 1 - p1 = 0.4 and d/dp1 = 0.3.
  probs = np.array([0.7, 0.6])
  mask_logits = tf.Variable(
      np.log(probs / (1 - probs)).reshape(1, 2, 1, 1), dtype=tf.float32)
  class_logits = tf.constant(np.log([[[0.8, 0.2], [0.9, 0.1]]]), tf.float32)
  gradients = {}
  for operator in (merge.MERGE_CLIPPED_SUM, merge.MERGE_SMOOTH_UNION):
    with tf.GradientTape() as tape:
      entries = merge.build_entries(mask_logits, class_logits,
                                    common.TASK_SEMANTIC, [False],
                                    operator=operator)
      merged = tf.sigmoid(entries.mask_logits)[0, 0, 0, 0]
    gradients[operator] = (merged.numpy(),
                           tape.gradient(merged, mask_logits).numpy().ravel())
  merged, gradient = gradients[merge.MERGE_CLIPPED_SUM]
  np.testing.assert_allclose(merged, 1 - EPS, rtol=1e-6)
  np.testing.assert_array_equal(gradient, [0.0, 0.0])
  merged, gradient = gradients[merge.MERGE_SMOOTH_UNION]
  np.testing.assert_allclose(merged, 0.88, rtol=1e-5)
  # d merged / d logit_n = (prod of the other members' 1 - p) * p_n (1 - p_n).
  np.testing.assert_allclose(
      gradient, [0.4 * 0.7 * 0.3, 0.3 * 0.6 * 0.4], rtol=1e-4)


def test_empty_group_smooth_union_gradient_is_finite():
  mask_logits = tf.Variable(tf.zeros([1, 2, 1, 2]))
  # Both proposals predict c0: c1 has no members.
  class_logits = tf.constant([[[2.0, 0.0, 0.0], [2.0, 0.0, 0.0]]])
  with tf.GradientTape() as tape:
    entries = merge.build_entries(mask_logits, class_logits,
                                  common.TASK_SEMANTIC, [False, False],
                                  operator=merge.MERGE_SMOOTH_UNION)
    total = tf.reduce_sum(entries.mask_logits)
  assert np.isfinite(tape.gradient(total, mask_logits).numpy()).all()
  np.testing.assert_array_equal(entries.valid.numpy(), [[True, False]])


def test_no_merge_matches_proposals_for_every_task():
  mask_logits, class_logits = _proposals()
  for task_type in (common.TASK_SEMANTIC, common.TASK_PANOPTIC,
                    common.TASK_INSTANCE):
    entries = merge.build_entries(mask_logits, class_logits, task_type,
                                  [True, False, False],
                                  operator=merge.MERGE_NONE)
    assert merge.num_entries(task_type, 4, [True, False, False],
                             merge.MERGE_NONE) == 4
    assert merge.num_proposal_entries(task_type, 4, merge.MERGE_NONE) == 4
    assert entries.mask_logits.shape == (1, 4, 1, 2)
    np.testing.assert_array_equal(entries.mask_logits.numpy(),
                                  mask_logits.numpy())
    np.testing.assert_allclose(tf.exp(entries.class_log_probs).numpy()[0],
                               CLASS_PROBS, rtol=1e-5)
    assert entries.valid.numpy().all()


def test_unknown_operator_raises():
  mask_logits, class_logits = _proposals()
  with pytest.raises(ValueError, match='operator'):
    merge.build_entries(mask_logits, class_logits, common.TASK_SEMANTIC,
                        [True, False, False], operator='max')
  with pytest.raises(ValueError, match='merge_operator'):
    merge.validate_operator('soft')


def test_soft_assignment_weights_every_proposal_by_its_class_probability():
  # NumPy reference: mask_c = min(1, sum_n p_n(c) m_n); class distribution of entry c =
  # sum_n p_n(c) p_n(.) / sum_n p_n(c); every class is an entry, members or not.
  rng = np.random.default_rng(3)
  num_queries, num_classes = 5, 3
  mask_logits = rng.normal(0.0, 2.0, (2, num_queries, 4, 6))
  class_logits = rng.normal(0.0, 2.0, (2, num_queries, num_classes + 1))
  class_logits[:, :, 2] -= 20.0  # No proposal predicts class 2: still a (valid) entry.
  entries = merge.build_entries(
      tf.constant(mask_logits, tf.float32), tf.constant(class_logits, tf.float32),
      common.TASK_SEMANTIC, [False] * num_classes, operator=merge.MERGE_SOFT_ASSIGNMENT)
  probs = np.exp(class_logits) / np.exp(class_logits).sum(-1, keepdims=True)
  masks = 1.0 / (1.0 + np.exp(-mask_logits))
  expected_masks = np.clip(np.einsum('bnc,bnhw->bchw', probs[..., :num_classes], masks),
                           EPS, 1.0 - EPS)
  weights = probs[..., :num_classes]
  # The weights' sum is floored at EPS: class 2's (about 1e-9) gives a near-zero distribution.
  expected_classes = (np.einsum('bnc,bnk->bck', weights, probs)
                      / np.maximum(weights.sum(1), EPS)[..., np.newaxis])
  np.testing.assert_allclose(tf.sigmoid(entries.mask_logits).numpy(), expected_masks,
                             rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(np.exp(entries.class_log_probs.numpy()),
                             np.maximum(expected_classes, EPS), rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(entries.valid.numpy(), np.ones((2, num_classes), bool))
  # Argmax grouping leaves class 2 without an entry.
  hard = merge.build_entries(
      tf.constant(mask_logits, tf.float32), tf.constant(class_logits, tf.float32),
      common.TASK_SEMANTIC, [False] * num_classes, operator=merge.MERGE_CLIPPED_SUM)
  assert not hard.valid.numpy()[:, 2].any()


def test_soft_assignment_passes_gradient_to_the_class_logits():
  mask_logits = tf.constant(np.full((1, 2, 1, 1), -1.0), tf.float32)
  class_logits = tf.Variable(np.zeros((1, 2, 3)), dtype=tf.float32)
  with tf.GradientTape() as tape:
    entries = merge.build_entries(mask_logits, class_logits, common.TASK_SEMANTIC,
                                  [False, False], operator=merge.MERGE_SOFT_ASSIGNMENT)
    merged = tf.reduce_sum(tf.sigmoid(entries.mask_logits))
  gradient = tape.gradient(merged, class_logits).numpy()
  assert np.abs(gradient).max() > 1e-3  # The hard grouping's argmax passes none.
