"""Class cost/loss against NumPy."""
import numpy as np
import pytest
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg.losses import class_losses


def _np_log_softmax(x):
  x = x.astype(np.float64)
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_dataset_columns_costs_and_cross_entropy():
  rng = np.random.default_rng(0)
  # 4 dataset classes, padded vocabulary of 6 (+ background).
  logits = rng.normal(size=(2, 3, 7)).astype(np.float32)
  logits[..., 4:6] = -1e9
  sliced = class_losses.dataset_class_logits(tf.constant(logits), 4).numpy()
  np.testing.assert_array_equal(sliced, logits[..., [0, 1, 2, 3, 6]])
  log_probs = _np_log_softmax(sliced)
  gt_classes = np.array([[0, 3], [2, 2]], np.int32)
  t_log_probs = tf.nn.log_softmax(tf.constant(sliced))
  cost = class_losses.pairwise_class_cost(t_log_probs, tf.constant(gt_classes))
  neg_prob = class_losses.pairwise_class_cost(
      t_log_probs, tf.constant(gt_classes), class_losses.CLASS_COST_NEG_PROB)
  for b in range(2):
    for p in range(3):
      for m in range(2):
        np.testing.assert_allclose(
            cost[b, p, m], -log_probs[b, p, gt_classes[b, m]], rtol=1e-5)
        np.testing.assert_allclose(neg_prob[b, p, m],
                                   -np.exp(log_probs[b, p, gt_classes[b, m]]),
                                   rtol=1e-5)
  targets = np.array([[4, 0, 3], [1, 4, 2]], np.int32)
  ce = class_losses.cross_entropy(t_log_probs, tf.constant(targets)).numpy()
  expected = -np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
  np.testing.assert_allclose(ce, expected, rtol=1e-5)


def test_unknown_cost_type_is_rejected():
  with pytest.raises(ValueError, match='class cost type'):
    class_losses.pairwise_class_cost(tf.zeros([1, 2, 3]),
                                     tf.zeros([1, 1], tf.int32), 'l1')
