"""DataSegLoss: per-dataset matching + loss with deep supervision.

One criterion per training dataset, configured by static Python (task type,
vocabulary size, thing/stuff flags, LossWeights). For every decoder layer it
builds the prediction entries (MERGE, merge.py), matches the LAST layer's
entries to the padded GT once (matcher.py), and applies that matching to every
layer (paper appendix G). Losses are computed in float32 whatever the model's
mixed-precision policy.

Scaling (DETR convention in Model Garden): each term is
    sum over this replica's pairs / (global count over all replicas),
with the global count obtained by an all-reduce in a replica context. The
returned loss of one replica is therefore 1/R-th of the global-batch loss
(exactly, whatever the split), and summing the replicas' gradients (what the
optimizer's all-reduce does) gives the gradient of the global-batch loss. A
Task must NOT divide it by num_replicas_in_sync again; for logging the global
value, multiply by num_replicas_in_sync.

The computation is split in two so that a multi-dataset Task can select the
batch's criterion with `tf.switch_case` and still normalise across replicas
(an all-reduce under MirroredStrategy is a merge_call, which cannot run inside
a `switch_case` branch): `DataSegLoss.local_sums` (no cross-replica
communication, same structure for every criterion), then `normalise_sums`
(one all-reduce). `DataSegLoss.__call__` is the two in sequence.
"""
from typing import Dict, Mapping, Optional, Sequence

import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg import common
from official_dataseg.configs import losses as losses_config
from official_dataseg.losses import class_losses
from official_dataseg.losses import mask_losses
from official_dataseg.losses import matcher
from official_dataseg.losses import merge

LOSS_CE = 'ce'
LOSS_FOCAL = 'focal'
LOSS_DICE = 'dice'
LOSS_PROJECTION = 'projection'
LOSS_TOTAL = 'total'
NUM_MATCHED = 'num_matched'


MASK_LOSSES = (LOSS_FOCAL, LOSS_DICE, LOSS_PROJECTION)
# How a semantic dataset's merged entries are paired with its GT masks.
SEMANTIC_MATCHING_HUNGARIAN = 'hungarian'
SEMANTIC_MATCHING_BY_CLASS = 'by_class'
SEMANTIC_MATCHINGS = (SEMANTIC_MATCHING_HUNGARIAN, SEMANTIC_MATCHING_BY_CLASS)
LOSS_TERMS = (LOSS_CE,) + MASK_LOSSES
# Keys of `DataSegLoss.local_sums`, besides the MASK_LOSSES numerators.
CE_SUMS = 'ce_sums'
CE_WEIGHT_SUMS = 'ce_weight_sums'
NUM_MASKS = 'num_masks'


def _global_sum(values: tf.Tensor) -> tf.Tensor:
  """Sums a float32 [K] vector over replicas (identity outside a replica)."""
  replica_context = tf.distribute.get_replica_context()
  if replica_context is None or replica_context.num_replicas_in_sync == 1:
    return values
  return replica_context.all_reduce(tf.distribute.ReduceOp.SUM, values)


def normalise_sums(sums: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
  """Divides this replica's loss numerators by their counts over all replicas.

  Must run in a replica context outside any `tf.switch_case`/`tf.cond` branch
  when the strategy's all-reduce is a merge_call (Mirrored, MultiWorker).

  Args:
    sums: `DataSegLoss.local_sums` of this replica.

  Returns:
    Scalars float32: 'ce', 'focal', 'dice', 'projection' (lambda-weighted,
    summed over layers), 'total' (their sum) and 'num_matched' (matched pairs
    on this replica, for logging).
  """
  # One all-reduce for every normaliser: [num GT masks, CE weight per layer].
  global_counts = _global_sum(tf.concat(
      [sums[NUM_MASKS][tf.newaxis], sums[CE_WEIGHT_SUMS]], axis=0))
  num_masks = tf.maximum(global_counts[0], 1.0)
  losses = {LOSS_CE: tf.reduce_sum(
      tf.math.divide_no_nan(sums[CE_SUMS], global_counts[1:]))}
  for loss_name in MASK_LOSSES:
    losses[loss_name] = sums[loss_name] / num_masks
  losses[LOSS_TOTAL] = tf.add_n([losses[n] for n in LOSS_TERMS])
  losses[NUM_MATCHED] = sums[NUM_MATCHED]
  return losses


class DataSegLoss(tf.Module):
  """Hungarian matching and DaTaSeg losses for one training dataset."""

  def __init__(self,
               task_type: str,
               num_classes: int,
               is_thing: Sequence[bool],
               weights: losses_config.LossWeights,
               background_weight: Optional[float] = None,
               focal_alpha: Optional[float] = None,
               focal_gamma: Optional[float] = None,
               merge_operator: str = merge.MERGE_CLIPPED_SUM,
               class_cost_type: str = class_losses.CLASS_COST_CROSS_ENTROPY,
               probability_clip: float = merge.DEFAULT_PROBABILITY_CLIP,
               semantic_matching: str = SEMANTIC_MATCHING_HUNGARIAN,
               gather_matched_pairs: bool = False,
               host_matching: bool = False,
               name: Optional[str] = None):
    """Initialises the criterion.

    Args:
      task_type: common.TASK_SEMANTIC | TASK_PANOPTIC | TASK_INSTANCE.
      num_classes: C, the dataset's vocabulary size.
      is_thing: [C] thing/stuff flags (the panoptic MERGE merges stuff only).
      weights: mu (matching) and lambda (loss) weights.
      background_weight: CE weight of the background class; None takes
        `weights.background_weight`. Same for focal_alpha and focal_gamma.
      focal_alpha: alpha of the sigmoid focal loss.
      focal_gamma: gamma of the sigmoid focal loss.
      merge_operator: one of merge.MERGE_OPERATORS. 'clipped_sum' (the
        paper's), 'weighted_clipped_sum' and 'smooth_union' say how member
        masks combine into a merged mask; 'none' skips MERGE: every task
        matches the N proposals directly.
      class_cost_type: class_losses.CLASS_COST_TYPES: '-log p' (default) or
        Mask2Former's '-p' as the class matching cost.
      probability_clip: eps before the logs of merged probabilities.
      semantic_matching: SEMANTIC_MATCHINGS: how a semantic dataset's merged
        entries (one per class) are paired with its GT masks (one per class):
        'hungarian' (the matching cost decides, as for proposals) or
        'by_class' (entry c with the GT of class c). No effect with
        merge_operator 'none' or on other tasks.
      gather_matched_pairs: compute the mask losses only on the supervised
        (layer, image, GT) pairs, gathered into a dynamic [K, h, w] batch.
        Same values as the static [L, B, M, h, w] form (which scores every GT
        slot, padding included, and zeroes the inactive ones), several times
        faster when most slots are padding; not for XLA / TPU, which need
        static shapes.
      host_matching: solve the Hungarian matching with SciPy on the host
        (`matcher.hungarian_match(host_solver=True)`) instead of Model
        Garden's in-graph solver on the padded square: the same assignment
        (they can differ only on tied costs); the in-graph solver took 0.19 s
        of a 512x512 COCO step on a 2-core CPU; not for XLA / TPU.
      name: tf.Module name.
    """
    super().__init__(name=name)
    if task_type not in common.TASK_TYPES:
      raise ValueError(f'task_type must be one of {common.TASK_TYPES}, got '
                       f'{task_type!r}.')
    if len(is_thing) != num_classes:
      raise ValueError(f'is_thing must have num_classes={num_classes} flags, '
                       f'got {len(is_thing)}.')
    merge.validate_operator(merge_operator, 'merge_operator')
    if class_cost_type not in class_losses.CLASS_COST_TYPES:
      raise ValueError(f'class_cost_type must be one of '
                       f'{class_losses.CLASS_COST_TYPES}, got '
                       f'{class_cost_type!r}.')
    self._task_type = task_type
    self._num_classes = num_classes
    self._is_thing = tuple(bool(t) for t in is_thing)
    self._weights = weights
    self._background_weight = (weights.background_weight
                               if background_weight is None
                               else background_weight)
    self._focal_alpha = (weights.focal_alpha if focal_alpha is None
                         else focal_alpha)
    self._focal_gamma = (weights.focal_gamma if focal_gamma is None
                         else focal_gamma)
    if semantic_matching not in SEMANTIC_MATCHINGS:
      raise ValueError(f'semantic_matching must be one of {SEMANTIC_MATCHINGS}, '
                       f'got {semantic_matching!r}.')
    self._merge_operator = merge_operator
    self._semantic_matching = semantic_matching
    self._class_cost_type = class_cost_type
    self._probability_clip = probability_clip
    self._gather_matched_pairs = gather_matched_pairs
    self._host_matching = host_matching

  @property
  def merge_operator(self) -> str:
    """The MERGE operator, one of merge.MERGE_OPERATORS."""
    return self._merge_operator

  @property
  def class_cost_type(self) -> str:
    """The class matching cost, one of class_losses.CLASS_COST_TYPES."""
    return self._class_cost_type

  # -------------------------------------------------------------------------
  def build_entries(self, mask_logits: tf.Tensor,
                    class_logits: tf.Tensor) -> merge.PredictionEntries:
    """MERGE for a stack of layers.

    Args:
      mask_logits: float [L, B, N, h, w].
      class_logits: float [L, B, N, C_pad + 1].

    Returns:
      PredictionEntries with [L, B, P, ...] tensors.
    """
    num_layers, batch_size = mask_logits.shape[0], mask_logits.shape[1]
    mask_logits = tf.cast(mask_logits, tf.float32)
    class_logits = class_losses.dataset_class_logits(
        tf.cast(class_logits, tf.float32), self._num_classes)
    # Layers and images are merged independently: fold L into the batch.
    flat = merge.build_entries(
        tf.reshape(mask_logits, [-1] + mask_logits.shape[2:].as_list()),
        tf.reshape(class_logits, [-1] + class_logits.shape[2:].as_list()),
        self._task_type, self._is_thing, operator=self._merge_operator,
        probability_clip=self._probability_clip)
    unflatten = lambda t: tf.reshape(  # pylint: disable=g-long-lambda
        t, [num_layers, batch_size] + t.shape[1:].as_list())
    return merge.PredictionEntries(*[unflatten(t) for t in flat])

  def matching_cost(self, entries: merge.PredictionEntries,
                    gt_masks: tf.Tensor, gt_classes: tf.Tensor,
                    pixel_valid: tf.Tensor) -> tf.Tensor:
    """mu-weighted cost [B, P, M] float32 of one layer's [B, P, ...] entries."""
    weights = self._weights
    cost = weights.matching_ce * class_losses.pairwise_class_cost(
        entries.class_log_probs, gt_classes, self._class_cost_type)
    if weights.matching_focal:
      cost += weights.matching_focal * mask_losses.pairwise_sigmoid_focal(
          entries.mask_logits, gt_masks, pixel_valid, self._focal_alpha,
          self._focal_gamma)
    if weights.matching_dice:
      cost += weights.matching_dice * mask_losses.pairwise_mask_dice(
          entries.mask_logits, gt_masks, pixel_valid)
    if weights.matching_projection:
      cost += weights.matching_projection * mask_losses.pairwise_projection(
          entries.mask_logits, gt_masks, pixel_valid)
    return cost

  def _match_last_layer(self, entries, gt_masks, gt_classes, gt_valid,
                        pixel_valid) -> matcher.MatchResult:
    last_layer = merge.PredictionEntries(
        *[tf.stop_gradient(t[-1]) for t in entries])
    if (self._semantic_matching == SEMANTIC_MATCHING_BY_CLASS
        and self._task_type == common.TASK_SEMANTIC
        and self._merge_operator != merge.MERGE_NONE):
      return matcher.match_by_class(last_layer.valid, gt_classes, gt_valid)
    return matcher.hungarian_match(
        self.matching_cost(last_layer, gt_masks, gt_classes, pixel_valid),
        last_layer.valid, gt_valid, host_solver=self._host_matching)

  def match(self, mask_logits: tf.Tensor, class_logits: tf.Tensor,
            labels: Mapping[str, tf.Tensor]) -> matcher.MatchResult:
    """The matching that __call__ uses (last layer's entries to the GT).

    Args: as __call__.

    Returns:
      matcher.MatchResult over P entries and M GT slots.
    """
    self._validate(mask_logits, class_logits, labels)
    entries = self.build_entries(mask_logits, class_logits)
    gt_masks, gt_classes, gt_valid, pixel_valid = self._read_labels(labels)
    return self._match_last_layer(entries, gt_masks, gt_classes, gt_valid,
                                  pixel_valid)

  # -------------------------------------------------------------------------
  @staticmethod
  def _read_labels(labels):
    """-> gt_masks f32 [B,M,h,w], gt_classes i32 [B,M], gt_valid bool [B,M],
    pixel_valid f32 [B,h,w]."""
    return (tf.cast(labels[common.GT_MASKS], tf.float32),
            tf.cast(labels[common.GT_CLASSES], tf.int32),
            tf.cast(labels[common.GT_VALID], tf.float32) > 0.0,
            1.0 - tf.cast(labels[common.IGNORE_MASK], tf.float32))

  def _validate(self, mask_logits, class_logits, labels):
    for key in (common.GT_MASKS, common.GT_CLASSES, common.GT_VALID,
                common.IGNORE_MASK):
      if key not in labels:
        raise KeyError(f'labels lack {key!r} (have {sorted(labels)}).')
    if mask_logits.shape.rank != 5 or not mask_logits.shape.is_fully_defined():
      raise ValueError(f'{common.MASK_LOGITS} must be static [L, B, N, h, w], '
                       f'got {mask_logits.shape}.')
    if (class_logits.shape.rank != 4
        or class_logits.shape[:3] != mask_logits.shape[:3]
        or class_logits.shape[-1] < self._num_classes + 1):
      raise ValueError(
          f'{common.CLASS_LOGITS} must be [L, B, N, C_pad + 1] with C_pad >= '
          f'{self._num_classes} and [L, B, N] = {mask_logits.shape[:3]}, got '
          f'{class_logits.shape}.')
    gt_masks_shape = labels[common.GT_MASKS].shape
    if (gt_masks_shape.rank != 4 or gt_masks_shape[0] != mask_logits.shape[1]
        or gt_masks_shape[2:] != mask_logits.shape[3:]):
      raise ValueError(
          f'{common.GT_MASKS} must be [B, M, h, w] = [{mask_logits.shape[1]}, '
          f'M, {mask_logits.shape[3]}, {mask_logits.shape[4]}] to match '
          f'{common.MASK_LOGITS}, got {gt_masks_shape}.')
    if labels[common.IGNORE_MASK].shape != (
        [gt_masks_shape[0]] + gt_masks_shape[2:].as_list()):
      raise ValueError(f'{common.IGNORE_MASK} must be [B, h, w], got '
                       f'{labels[common.IGNORE_MASK].shape}.')

  def __call__(self, mask_logits: tf.Tensor, class_logits: tf.Tensor,
               labels: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Matches the last layer, scores every layer, normalises over replicas.

    Args:
      mask_logits: float [L, B, N, h, w] (any float dtype; cast to float32).
      class_logits: float [L, B, N, C_pad + 1], background last.
      labels: parser dict with GT_MASKS uint8 [B, M, h, w], GT_CLASSES int32
        [B, M], GT_VALID float32 [B, M], IGNORE_MASK uint8 [B, h, w].

    Returns:
      As `normalise_sums`.
    """
    return normalise_sums(self.local_sums(mask_logits, class_logits, labels))

  def local_sums(self, mask_logits: tf.Tensor, class_logits: tf.Tensor,
                 labels: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """This replica's lambda-weighted loss numerators and their counts.

    No cross-replica communication, and the same structure for every
    criterion with the same number of layers L (so `tf.switch_case` can pick
    one).

    Args: as __call__.

    Returns:
      float32: 'ce_sums' [L] (weighted CE per layer), 'ce_weight_sums' [L]
      (their CE weights), 'focal', 'dice', 'projection' (scalar sums over
      matched pairs and layers), 'num_masks' (valid GT) and 'num_matched'.
    """
    self._validate(mask_logits, class_logits, labels)
    num_layers = mask_logits.shape[0]
    num_queries = mask_logits.shape[2]
    entries = self.build_entries(mask_logits, class_logits)

    gt_masks, gt_classes, gt_valid, pixel_valid = self._read_labels(labels)

    match = self._match_last_layer(entries, gt_masks, gt_classes, gt_valid,
                                   pixel_valid)

    # A matched proposal is the same query at every layer, so it is
    # supervised at every layer; a merged entry only where its class has
    # members at that layer (otherwise it is empty and has no gradient).
    # With merge_operator 'none' every entry is a proposal.
    num_proposals = merge.num_proposal_entries(
        self._task_type, num_queries, self._merge_operator)
    num_entries = entries.valid.shape[2]
    is_proposal = tf.range(num_entries) < num_proposals        # [P]
    matched_proposal = match.entry_matched & is_proposal        # [B, P]
    entry_active = entries.valid | matched_proposal[tf.newaxis]  # [L, B, P]

    # Class loss on every active entry: matched -> GT class (weight 1),
    # unmatched -> background (weight background_weight).
    target_classes = tf.where(
        match.entry_matched,
        tf.gather(gt_classes, match.entry_to_gt, batch_dims=1),
        self._num_classes)
    ce_weights = tf.cast(entry_active, tf.float32) * tf.where(
        match.entry_matched, 1.0, self._background_weight)[tf.newaxis]
    ce_per_entry = class_losses.cross_entropy(
        entries.class_log_probs,
        tf.broadcast_to(target_classes, entries.valid.shape))
    ce_sums = tf.reduce_sum(ce_weights * ce_per_entry, axis=[1, 2])  # [L]

    # Mask losses in GT order: the entry matched to each GT, at each layer.
    layer_gt_to_entry = tf.broadcast_to(
        match.gt_to_entry, [num_layers] + match.gt_to_entry.shape.as_list())
    pair_active = (match.gt_matched[tf.newaxis]
                   & tf.gather(entry_active, layer_gt_to_entry, axis=2,
                               batch_dims=2))                    # [L, B, M]
    if self._gather_matched_pairs:
      mask_terms = self._mask_loss_sums_of_active_pairs(
          entries.mask_logits, layer_gt_to_entry, pair_active, gt_masks,
          pixel_valid)
    else:
      mask_terms = self._mask_loss_sums_of_all_slots(
          entries.mask_logits, layer_gt_to_entry, pair_active, gt_masks,
          pixel_valid)

    sums = {
        CE_SUMS: self._weights.ce * ce_sums,
        CE_WEIGHT_SUMS: tf.reduce_sum(ce_weights, axis=[1, 2]),
        NUM_MASKS: tf.reduce_sum(tf.cast(gt_valid, tf.float32)),
        NUM_MATCHED: tf.reduce_sum(tf.cast(match.gt_matched, tf.float32)),
    }
    for loss_name in MASK_LOSSES:
      sums[loss_name] = mask_terms.get(loss_name, tf.constant(0.0, tf.float32))
    return sums

  def _mask_terms(self, pred_masks: tf.Tensor, gt_masks: tf.Tensor,
                  pixel_valid: tf.Tensor) -> Dict[str, tf.Tensor]:
    """lambda-weighted mask losses of aligned [..., h, w] masks -> [...]."""
    weights = self._weights
    mask_terms = {}
    if weights.focal:
      mask_terms[LOSS_FOCAL] = weights.focal * mask_losses.sigmoid_focal(
          pred_masks, gt_masks, pixel_valid, self._focal_alpha,
          self._focal_gamma)
    if weights.dice:
      mask_terms[LOSS_DICE] = weights.dice * mask_losses.mask_dice(
          pred_masks, gt_masks, pixel_valid)
    if weights.projection:
      mask_terms[LOSS_PROJECTION] = weights.projection * mask_losses.projection(
          pred_masks, gt_masks, pixel_valid)
    return mask_terms

  def _mask_loss_sums_of_all_slots(self, mask_logits, layer_gt_to_entry,
                                   pair_active, gt_masks, pixel_valid):
    """Static shapes: scores all [L, B, M] slots, sums the active ones.

    Args:
      mask_logits: float32 [L, B, P, h, w] entries.
      layer_gt_to_entry: int32 [L, B, M] entry of each GT slot.
      pair_active: bool [L, B, M] supervised (layer, image, GT) pairs.
      gt_masks: float32 [B, M, h, w].
      pixel_valid: float32 [B, h, w].

    Returns:
      {mask loss name: float32 [] sum over active pairs}.
    """
    pred_masks = tf.gather(mask_logits, layer_gt_to_entry, axis=2,
                           batch_dims=2)                     # [L, B, M, h, w]
    terms = self._mask_terms(pred_masks, gt_masks, pixel_valid[:, tf.newaxis])
    active = tf.cast(pair_active, tf.float32)
    return {name: tf.reduce_sum(term * active) for name, term in terms.items()}

  def _mask_loss_sums_of_active_pairs(self, mask_logits, layer_gt_to_entry,
                                      pair_active, gt_masks, pixel_valid):
    """Dynamic shapes: gathers the K active pairs, scores only them.

    Args and returns: as `_mask_loss_sums_of_all_slots`.
    """
    pair_indices = tf.cast(tf.where(pair_active), tf.int32)  # [K, 3]: l, b, m
    layer_image = pair_indices[:, :2]
    image_gt = pair_indices[:, 1:]
    entry = tf.gather_nd(layer_gt_to_entry, pair_indices)          # [K]
    pred_masks = tf.gather_nd(
        mask_logits, tf.concat([layer_image, entry[:, tf.newaxis]], axis=1))
    terms = self._mask_terms(pred_masks, tf.gather_nd(gt_masks, image_gt),
                             tf.gather(pixel_valid, pair_indices[:, 1]))
    return {name: tf.reduce_sum(term) for name, term in terms.items()}
