"""Class cost and loss: softmax cross-entropy over a dataset's vocabulary.

Predictions carry log-probabilities over the dataset's C real classes plus
background (index C), so that merged entries (mean of softmax distributions)
and plain proposals (log-softmax of logits, exact) share one code path.
"""
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

CLASS_COST_CROSS_ENTROPY = 'cross_entropy'  # -log p(class): the loss itself.
CLASS_COST_NEG_PROB = 'neg_prob'            # -p(class): Mask2Former's cost.
CLASS_COST_TYPES = (CLASS_COST_CROSS_ENTROPY, CLASS_COST_NEG_PROB)


def dataset_class_logits(class_logits: tf.Tensor,
                         num_classes: int) -> tf.Tensor:
  """Keeps the dataset's classes and the background column.

  Args:
    class_logits: float [..., C_pad + 1], last column = background, columns
      C..C_pad-1 are vocabulary padding.
    num_classes: C, the dataset's vocabulary size (static), C <= C_pad.

  Returns:
    float [..., C + 1], background last.
  """
  return tf.concat([class_logits[..., :num_classes], class_logits[..., -1:]],
                   axis=-1)


def pairwise_class_cost(class_log_probs: tf.Tensor, gt_classes: tf.Tensor,
                        cost_type: str = CLASS_COST_CROSS_ENTROPY
                        ) -> tf.Tensor:
  """Class cost of every (entry, GT) pair.

  Args:
    class_log_probs: float32 [B, P, C + 1].
    gt_classes: int32 [B, M] in [0, C).
    cost_type: one of CLASS_COST_TYPES.

  Returns:
    float32 [B, P, M].
  """
  log_prob_of_gt = tf.gather(class_log_probs, gt_classes, axis=2,
                             batch_dims=1)
  if cost_type == CLASS_COST_CROSS_ENTROPY:
    return -log_prob_of_gt
  if cost_type == CLASS_COST_NEG_PROB:
    return -tf.exp(log_prob_of_gt)
  raise ValueError(f'class cost type must be one of {CLASS_COST_TYPES}, '
                   f'got {cost_type!r}.')


def cross_entropy(class_log_probs: tf.Tensor,
                  target_classes: tf.Tensor) -> tf.Tensor:
  """Per-entry cross-entropy -log p(target).

  Args:
    class_log_probs: float32 [..., P, C + 1].
    target_classes: int32 [..., P] in [0, C] (C = background); leading dims
      must equal those of `class_log_probs`.

  Returns:
    float32 [..., P].
  """
  num_columns = class_log_probs.shape[-1]
  return -tf.reduce_sum(
      class_log_probs * tf.one_hot(target_classes, num_columns), axis=-1)
