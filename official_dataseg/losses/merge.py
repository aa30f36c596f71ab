"""Training-time MERGE: turns N proposals into the entries that are matched.

DaTaSeg merges the proposals predicted as the same category into one mask
per category before matching (paper Sec. 3.2; our interpretation, see
docs/losses.md):
- grouping: each proposal belongs to the argmax of its class logits over the
  dataset's real classes (background excluded);
- merged mask probability, by operator (MERGE_OPERATORS):
  'clipped_sum' (paper, default): min(1, sum of the members' mask
  probabilities); 'weighted_clipped_sum': min(1, sum of member mask
  probability x member probability of that class); 'smooth_union':
  1 - prod over members (1 - p_n), a soft OR that, unlike the clip, keeps a
  gradient where the members overlap; 'soft_assignment': no argmax grouping:
  every proposal belongs to every group with its probability of the group's
  class, merged mask min(1, sum_n p_n(c) x mask_n) (the semantic inference's
  score, clipped), class distribution the p_n(c)-weighted mean, and every
  group is an entry, so a class that no proposal predicts is still matched
  and supervised (with argmax grouping its ground truth goes unmatched);
- merged class distribution: the mean of the members' softmax distributions
  over C classes + background;
- an entry is valid when its class has at least one member.

Entries per task:
- semantic: C merged entries, entry c = class c;
- panoptic: the N proposals (valid when their argmax class is a thing), then
  one merged entry per stuff class, in vocabulary order;
- instance: the N proposals, all valid.
With operator 'none' there is no MERGE: every task's entries are the N
proposals, all valid (Mask2Former's semantic / panoptic training).

Merged entries are returned as logits logit(clip(p, eps, 1 - eps)) and
log(clip(p, eps, 1)) so that the loss code works on logits and proposals keep
their exact logits.
"""
from typing import NamedTuple, Sequence, Tuple

import numpy as np
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg import common

DEFAULT_PROBABILITY_CLIP = 1e-6

# How member masks combine into a merged mask (see the module docstring).
MERGE_CLIPPED_SUM = 'clipped_sum'
MERGE_WEIGHTED_CLIPPED_SUM = 'weighted_clipped_sum'
MERGE_SMOOTH_UNION = 'smooth_union'
MERGE_SOFT_ASSIGNMENT = 'soft_assignment'
MERGE_NONE = 'none'
MERGE_OPERATORS = (MERGE_CLIPPED_SUM, MERGE_WEIGHTED_CLIPPED_SUM,
                   MERGE_SMOOTH_UNION, MERGE_SOFT_ASSIGNMENT, MERGE_NONE)


class PredictionEntries(NamedTuple):
  """What the matcher pairs with the GT: merged entries and/or proposals.

  Attributes:
    mask_logits: float32 [B, P, h, w].
    class_log_probs: float32 [B, P, C + 1], background last.
    valid: bool [B, P]; invalid entries are neither matched nor penalised.
  """
  mask_logits: tf.Tensor
  class_log_probs: tf.Tensor
  valid: tf.Tensor


def stuff_class_ids(is_thing: Sequence[bool]) -> Tuple[int, ...]:
  """Vocabulary indices of the stuff classes, in order."""
  return tuple(c for c, thing in enumerate(is_thing) if not thing)


def validate_operator(operator: str, field: str = 'merge_operator') -> None:
  """Raises a ValueError naming `field` for an unknown `operator`."""
  if operator not in MERGE_OPERATORS:
    raise ValueError(f'{field} must be one of {MERGE_OPERATORS}, got '
                     f'{operator!r}.')


def num_entries(task_type: str, num_queries: int, is_thing: Sequence[bool],
                operator: str = MERGE_CLIPPED_SUM) -> int:
  """P, the number of prediction entries for a task (static)."""
  if operator == MERGE_NONE:
    return num_queries
  if task_type == common.TASK_SEMANTIC:
    return len(is_thing)
  if task_type == common.TASK_PANOPTIC:
    return num_queries + len(stuff_class_ids(is_thing))
  return num_queries


def num_proposal_entries(task_type: str, num_queries: int,
                         operator: str = MERGE_CLIPPED_SUM) -> int:
  """How many leading entries are single proposals (not merged)."""
  if operator == MERGE_NONE:
    return num_queries
  return 0 if task_type == common.TASK_SEMANTIC else num_queries


def _probability_to_logit(probs: tf.Tensor, probability_clip: float
                          ) -> tf.Tensor:
  """logit(clip(p, eps, 1 - eps)) of float32 probabilities, same shape."""
  probs = tf.clip_by_value(probs, probability_clip, 1.0 - probability_clip)
  return tf.math.log(probs) - tf.math.log1p(-probs)


def _smooth_union_logits(mask_logits: tf.Tensor, membership: tf.Tensor,
                         probability_clip: float) -> tf.Tensor:
  """Logit of 1 - prod_n (1 - p_n) over each group's members, in log space.

  With log(1 - sigmoid(x)) = -softplus(x), S = sum_n membership_n *
  softplus(x_n) and the union is 1 - exp(-S), whose logit is
  log(-expm1(-S)) + S. S is floored at eps (probability ~eps) so that an empty
  group has a finite logit and no 0 * inf gradient.

  Args:
    mask_logits: float32 [B, N, h, w] proposal mask logits.
    membership: float32 [B, N, S] group membership.
    probability_clip: eps; the result is clipped to [logit(eps),
      logit(1 - eps)] like the other operators.

  Returns:
    float32 [B, S, h, w] merged mask logits.
  """
  neg_log_complement = tf.maximum(
      tf.einsum('bns,bnhw->bshw', membership, tf.nn.softplus(mask_logits)),
      probability_clip)
  logits = (tf.math.log(-tf.math.expm1(-neg_log_complement))
            + neg_log_complement)
  bound = float(np.log((1.0 - probability_clip) / probability_clip))
  return tf.clip_by_value(logits, -bound, bound)


def merge_by_class(mask_logits: tf.Tensor, class_probs: tf.Tensor,
                   membership: tf.Tensor, member_class_probs: tf.Tensor,
                   operator: str = MERGE_CLIPPED_SUM,
                   probability_clip: float = DEFAULT_PROBABILITY_CLIP):
  """Merges proposals into one mask and one class distribution per group.

  Args:
    mask_logits: float32 [B, N, h, w] proposal mask logits.
    class_probs: float32 [B, N, C + 1] proposal class distributions.
    membership: float32 [B, N, S], 1 where proposal n belongs to group s
      (its probability of group s's class for 'soft_assignment').
    member_class_probs: float32 [B, N, S], each proposal's probability of
      group s's class (used by 'weighted_clipped_sum' only).
    operator: one of MERGE_OPERATORS except MERGE_NONE.
    probability_clip: eps; merged mask probabilities are clipped to
      [eps, 1 - eps] before the logit.

  Returns:
    merged_mask_logits: float32 [B, S, h, w], logits of probabilities in
      [eps, 1 - eps].
    merged_class_probs: float32 [B, S, C + 1].
    num_members: float32 [B, S].
  """
  if operator == MERGE_SMOOTH_UNION:
    merged_mask_logits = _smooth_union_logits(mask_logits, membership,
                                              probability_clip)
  elif operator in (MERGE_CLIPPED_SUM, MERGE_WEIGHTED_CLIPPED_SUM,
                    MERGE_SOFT_ASSIGNMENT):
    mask_weights = (membership * member_class_probs
                    if operator == MERGE_WEIGHTED_CLIPPED_SUM else membership)
    merged_mask_probs = tf.minimum(
        tf.einsum('bns,bnhw->bshw', mask_weights, tf.sigmoid(mask_logits)),
        1.0)
    merged_mask_logits = _probability_to_logit(merged_mask_probs,
                                               probability_clip)
  else:
    raise ValueError(f'merge_by_class operator must be one of '
                     f'{MERGE_OPERATORS[:-1]}, got {operator!r}.')
  num_members = tf.reduce_sum(membership, axis=1)
  merged_class_probs = (tf.einsum('bns,bnk->bsk', membership, class_probs)
                        / tf.maximum(num_members, 1.0)[..., tf.newaxis])
  return merged_mask_logits, merged_class_probs, num_members


def build_entries(mask_logits: tf.Tensor, class_logits: tf.Tensor,
                  task_type: str, is_thing: Sequence[bool],
                  operator: str = MERGE_CLIPPED_SUM,
                  probability_clip: float = DEFAULT_PROBABILITY_CLIP
                  ) -> PredictionEntries:
  """Builds the prediction entries of one decoder layer (or a stack of them).

  Args:
    mask_logits: float32 [B, N, h, w] proposal mask logits.
    class_logits: float32 [B, N, C + 1], the dataset's classes then
      background (see class_losses.dataset_class_logits).
    task_type: common.TASK_SEMANTIC | TASK_PANOPTIC | TASK_INSTANCE.
    is_thing: [C] python bools.
    operator: one of MERGE_OPERATORS; MERGE_NONE returns the proposals for
      every task.
    probability_clip: eps of the clip applied before the logs of merged
      probabilities.

  Returns:
    PredictionEntries with P = num_entries(task_type, N, is_thing, operator).
  """
  validate_operator(operator, 'operator')
  num_classes = len(is_thing)
  if class_logits.shape[-1] != num_classes + 1:
    raise ValueError(
        f'class_logits must have {num_classes} + 1 columns (dataset classes '
        f'+ background), got shape {class_logits.shape}.')
  if task_type not in common.TASK_TYPES:
    raise ValueError(f'task_type must be one of {common.TASK_TYPES}, got '
                     f'{task_type!r}.')
  proposal_log_probs = tf.nn.log_softmax(class_logits, axis=-1)
  batch_size, num_queries = mask_logits.shape[0], mask_logits.shape[1]
  if task_type == common.TASK_INSTANCE or operator == MERGE_NONE:
    return PredictionEntries(
        mask_logits=mask_logits, class_log_probs=proposal_log_probs,
        valid=tf.ones([batch_size, num_queries], tf.bool))

  class_probs = tf.exp(proposal_log_probs)
  predicted_class = tf.argmax(class_logits[..., :num_classes], axis=-1,
                              output_type=tf.int32)
  class_one_hot = tf.one_hot(predicted_class, num_classes)
  if task_type == common.TASK_SEMANTIC:
    group_ids = tuple(range(num_classes))
  else:
    group_ids = stuff_class_ids(is_thing)
  member_class_probs = tf.gather(class_probs, group_ids, axis=-1)
  if operator == MERGE_SOFT_ASSIGNMENT:
    membership = member_class_probs
  else:
    membership = tf.gather(class_one_hot, group_ids, axis=-1)
  merged_mask_logits, merged_class_probs, num_members = merge_by_class(
      mask_logits, class_probs, membership, member_class_probs,
      operator=operator, probability_clip=probability_clip)
  if operator == MERGE_SOFT_ASSIGNMENT:
    # A weighted mean: the weights p_n(c) may sum to less than 1.
    merged_class_probs = (
        tf.einsum('bns,bnk->bsk', membership, class_probs)
        / tf.maximum(num_members, probability_clip)[..., tf.newaxis])
    valid = tf.ones_like(num_members, tf.bool)
  else:
    valid = num_members > 0.0
  merged = PredictionEntries(
      mask_logits=merged_mask_logits,
      class_log_probs=tf.math.log(
          tf.maximum(merged_class_probs, probability_clip)),
      valid=valid)
  if task_type == common.TASK_SEMANTIC:
    return merged

  proposal_is_thing = tf.gather(tf.constant(list(is_thing), tf.bool),
                                predicted_class)
  return PredictionEntries(
      mask_logits=tf.concat([mask_logits, merged.mask_logits], axis=1),
      class_log_probs=tf.concat([proposal_log_probs, merged.class_log_probs],
                                axis=1),
      valid=tf.concat([proposal_is_thing, merged.valid], axis=1))
