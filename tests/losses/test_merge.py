"""Training MERGE on hand-made proposals with hand-computed merged entries."""
import numpy as np
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
                             [True, False, False], soft_merge=True)
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
