"""Mask cost and loss terms: sigmoid focal, dice and BoxInst projection.

Each term comes in two forms:
- pairwise ("batched", for the matching cost): every prediction entry against
  every GT of the same image, [B, P, h, w] x [B, M, h, w] -> [B, P, M];
- per pair (for the loss): predictions already aligned with their GT,
  [..., M, h, w] x [..., M, h, w] -> [..., M] (leading dims broadcast, so a
  stack of decoder layers [L, B, M, h, w] is scored in one call).

All terms take mask logits (merged entries arrive as logit(clipped merged
probability), see merge.py) and a per-pixel validity `pixel_valid`
([B, h, w] or broadcastable, 1 = pixel counts): ignored pixels (void, crowd,
padding) are removed from every term. Terms are per mask; the criterion sums
them over matched pairs and divides by the number of GT masks.
"""
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

# Dice smoothing (Mask2Former): numerator and denominator both get +1.
_DICE_SMOOTH = 1.0


def _flatten_pixels(masks: tf.Tensor) -> tf.Tensor:
  """[..., h, w] -> [..., h * w]."""
  shape = masks.shape
  leading = shape[:-2].as_list()
  if leading.count(None) > 1:
    leading = tf.shape(masks)[:-2]
    return tf.reshape(masks, tf.concat([leading, [shape[-2] * shape[-1]]], 0))
  # One unknown leading axis (gathered pairs: [K, h, w]) is inferred by -1.
  return tf.reshape(masks, [-1 if d is None else d for d in leading]
                    + [shape[-2] * shape[-1]])


def _num_valid_pixels(pixel_valid: tf.Tensor) -> tf.Tensor:
  """[..., h, w] -> [...] count of valid pixels, at least 1."""
  return tf.maximum(tf.reduce_sum(pixel_valid, axis=[-2, -1]), 1.0)


# ---------------------------------------------------------------------------
# Dice on flattened vectors (masks or projections).
# ---------------------------------------------------------------------------
def pairwise_dice(pred_probs: tf.Tensor, gt: tf.Tensor) -> tf.Tensor:
  """Dice loss between every pair of vectors.

  Args:
    pred_probs: float32 [B, P, K] probabilities in [0, 1].
    gt: float32 [B, M, K] targets in [0, 1].

  Returns:
    float32 [B, P, M]: 1 - (2 sum(p t) + 1) / (sum p + sum t + 1).
  """
  intersection = tf.einsum('bpk,bmk->bpm', pred_probs, gt)
  denominator = (tf.reduce_sum(pred_probs, -1)[:, :, tf.newaxis]
                 + tf.reduce_sum(gt, -1)[:, tf.newaxis, :])
  return 1.0 - (2.0 * intersection + _DICE_SMOOTH) / (
      denominator + _DICE_SMOOTH)


def paired_dice(pred_probs: tf.Tensor, gt: tf.Tensor) -> tf.Tensor:
  """Dice loss of aligned vectors: [..., K] x [..., K] -> [...] float32."""
  intersection = tf.reduce_sum(pred_probs * gt, -1)
  denominator = tf.reduce_sum(pred_probs, -1) + tf.reduce_sum(gt, -1)
  return 1.0 - (2.0 * intersection + _DICE_SMOOTH) / (
      denominator + _DICE_SMOOTH)


# ---------------------------------------------------------------------------
# Dice on masks.
# ---------------------------------------------------------------------------
def pairwise_mask_dice(mask_logits: tf.Tensor, gt_masks: tf.Tensor,
                       pixel_valid: tf.Tensor) -> tf.Tensor:
  """Dice cost: [B, P, h, w] logits x [B, M, h, w] targets -> [B, P, M].

  `pixel_valid` is float32 [B, h, w].
  """
  valid = pixel_valid[:, tf.newaxis]
  return pairwise_dice(_flatten_pixels(tf.sigmoid(mask_logits) * valid),
                       _flatten_pixels(gt_masks * valid))


def mask_dice(mask_logits: tf.Tensor, gt_masks: tf.Tensor,
              pixel_valid: tf.Tensor) -> tf.Tensor:
  """Dice loss of aligned masks: [..., h, w] (broadcasting) -> [...]."""
  return paired_dice(_flatten_pixels(tf.sigmoid(mask_logits) * pixel_valid),
                     _flatten_pixels(gt_masks * pixel_valid))


# ---------------------------------------------------------------------------
# Sigmoid focal loss on masks (mean over valid pixels).
# ---------------------------------------------------------------------------
def pairwise_sigmoid_focal(mask_logits: tf.Tensor, gt_masks: tf.Tensor,
                           pixel_valid: tf.Tensor, alpha: float,
                           gamma: float) -> tf.Tensor:
  """Focal cost: [B, P, h, w] logits x [B, M, h, w] 0/1 targets -> [B, P, M].

  For a binary target the per-pixel focal loss is `positive` where t = 1 and
  `negative` where t = 0, so the pairwise sum is two matrix products.
  `pixel_valid` is float32 [B, h, w].
  """
  probs = tf.sigmoid(mask_logits)
  valid = pixel_valid[:, tf.newaxis]
  # -log(p) = softplus(-x), -log(1 - p) = softplus(x): stable for any logit.
  positive = alpha * tf.pow(1.0 - probs, gamma) * tf.nn.softplus(-mask_logits)
  negative = (1.0 - alpha) * tf.pow(probs, gamma) * tf.nn.softplus(mask_logits)
  gt = _flatten_pixels(gt_masks)
  cost = (tf.einsum('bpk,bmk->bpm', _flatten_pixels(positive * valid), gt)
          + tf.einsum('bpk,bmk->bpm', _flatten_pixels(negative * valid),
                      1.0 - gt))
  return cost / _num_valid_pixels(pixel_valid)[:, tf.newaxis, tf.newaxis]


def sigmoid_focal(mask_logits: tf.Tensor, gt_masks: tf.Tensor,
                  pixel_valid: tf.Tensor, alpha: float,
                  gamma: float) -> tf.Tensor:
  """Focal loss of aligned masks: [..., h, w] (broadcasting) -> [...].

  loss = alpha_t (1 - p_t)^gamma CE(p, t), averaged over valid pixels.
  """
  probs = tf.sigmoid(mask_logits)
  cross_entropy = (gt_masks * tf.nn.softplus(-mask_logits)
                   + (1.0 - gt_masks) * tf.nn.softplus(mask_logits))
  prob_of_target = probs * gt_masks + (1.0 - probs) * (1.0 - gt_masks)
  alpha_t = alpha * gt_masks + (1.0 - alpha) * (1.0 - gt_masks)
  focal = alpha_t * tf.pow(1.0 - prob_of_target, gamma) * cross_entropy
  return (tf.reduce_sum(focal * pixel_valid, axis=[-2, -1])
          / _num_valid_pixels(pixel_valid))


# ---------------------------------------------------------------------------
# BoxInst projection loss.
# ---------------------------------------------------------------------------
def max_projections(masks: tf.Tensor):
  """Max-projections of [..., h, w] masks: ([..., w] on x, [..., h] on y)."""
  return tf.reduce_max(masks, axis=-2), tf.reduce_max(masks, axis=-1)


def pairwise_projection(mask_logits: tf.Tensor, gt_masks: tf.Tensor,
                        pixel_valid: tf.Tensor) -> tf.Tensor:
  """Projection cost: [B, P, h, w] logits x [B, M, h, w] box masks -> [B, P, M].

  dice(proj_x(pred), proj_x(box)) + dice(proj_y(pred), proj_y(box)).
  `pixel_valid` is float32 [B, h, w].
  """
  valid = pixel_valid[:, tf.newaxis]
  pred_x, pred_y = max_projections(tf.sigmoid(mask_logits) * valid)
  gt_x, gt_y = max_projections(gt_masks * valid)
  return pairwise_dice(pred_x, gt_x) + pairwise_dice(pred_y, gt_y)


def projection(mask_logits: tf.Tensor, gt_masks: tf.Tensor,
               pixel_valid: tf.Tensor) -> tf.Tensor:
  """Projection loss of aligned masks: [..., h, w] (broadcasting) -> [...]."""
  pred_x, pred_y = max_projections(tf.sigmoid(mask_logits) * pixel_valid)
  gt_x, gt_y = max_projections(gt_masks * pixel_valid)
  return paired_dice(pred_x, gt_x) + paired_dice(pred_y, gt_y)
