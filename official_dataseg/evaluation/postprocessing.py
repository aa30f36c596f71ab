"""Reads semantic, panoptic and instance results out of mask proposals.

Inputs are one decoder layer's outputs: mask logits [B, N, h, w] and class
logits [B, N, C + 1] whose last column is the background ("no object")
class; padded vocabulary columns hold -1e9 and so get probability 0. All
functions are TF with static shapes, vectorised over the batch, and usable
inside a SavedModel. Thresholds are arguments: the config holds the numbers.
"""

from typing import Dict

import tensorflow as tf


def _class_and_mask_probabilities(mask_logits: tf.Tensor,
                                  class_logits: tf.Tensor):
  """Softmax over classes without background, sigmoid over masks.

  Returns:
    class_probs [B, N, C] float32 (background column dropped after the
    softmax) and mask_probs [B, N, h, w] float32.
  """
  class_probs = tf.nn.softmax(tf.cast(class_logits, tf.float32), axis=-1)
  return class_probs[..., :-1], tf.sigmoid(tf.cast(mask_logits, tf.float32))


def semantic_inference(mask_logits: tf.Tensor,
                       class_logits: tf.Tensor) -> tf.Tensor:
  """Per-class scores sum_i p_i(c) * sigmoid(m_i), background excluded.

  Args:
    mask_logits: [B, N, h, w] float32.
    class_logits: [B, N, C + 1] float32.

  Returns:
    [B, h, w, C] float32 class scores (channels last so that they can be
    resized to the original size before the argmax).
  """
  class_probs, mask_probs = _class_and_mask_probabilities(
      mask_logits, class_logits)
  return tf.einsum('bnc,bnhw->bhwc', class_probs, mask_probs)


def semantic_label_map(semantic_scores: tf.Tensor) -> tf.Tensor:
  """[..., C] float32 class scores -> [...] int32 argmax class."""
  return tf.argmax(semantic_scores, axis=-1, output_type=tf.int32)


def panoptic_inference(mask_logits: tf.Tensor,
                       class_logits: tf.Tensor,
                       is_thing: tf.Tensor,
                       confidence_threshold: float,
                       overlap_threshold: float = 0.8,
                       min_area: int = 4) -> Dict[str, tf.Tensor]:
  """Mask2Former-style panoptic fusion of mask proposals.

  1. A proposal is kept when its largest non-background class probability
     exceeds `confidence_threshold`; its class is that argmax.
  2. Each pixel goes to the kept proposal with the largest
     score * mask probability, and stays with it only where that proposal's
     mask probability is >= 0.5 (else void).
  3. A proposal is dropped when the pixels it won cover less than
     `overlap_threshold` of its own binarised mask (prob >= 0.5), or when its
     final area is below `min_area` (both per proposal, before fusion).
  4. Surviving stuff proposals of the same class fuse into one segment.

  Segments are numbered 1..S per image in order of their first proposal;
  entry s - 1 of the per-segment arrays describes segment s, and entries
  with `segment_valid` False are padding.

  Args:
    mask_logits: [B, N, h, w] float32.
    class_logits: [B, N, C + 1] float32.
    is_thing: [C] bool, True for thing classes.
    confidence_threshold: float, e.g. 0.85 (COCO) or 0.8 (ADE).
    overlap_threshold: float, minimum kept area / original area.
    min_area: int, minimum segment area in pixels at h x w.

  Returns:
    A dict with
    'segment_map': [B, h, w] int32, 0 = void, s = segment s;
    'category_map': [B, h, w] int32 class index, -1 = void;
    'instance_map': [B, h, w] int32, the segment id on thing pixels, 0 on
      stuff and void (ids are unique within an image);
    'segment_classes': [B, N] int32; 'segment_scores': [B, N] float32 (the
      largest member score for fused stuff); 'segment_is_thing': [B, N] bool;
    'segment_valid': [B, N] bool.
  """
  class_probs, mask_probs = _class_and_mask_probabilities(
      mask_logits, class_logits)
  num_queries = tf.shape(mask_probs)[1]
  scores = tf.reduce_max(class_probs, axis=-1)  # [B, N]
  labels = tf.argmax(class_probs, axis=-1, output_type=tf.int32)  # [B, N]
  keep = scores > confidence_threshold

  # Dropped proposals get -1 so that they never win a pixel.
  weighted = tf.where(keep[:, :, None, None],
                      scores[:, :, None, None] * mask_probs, -1.0)
  winner = tf.argmax(weighted, axis=1, output_type=tf.int32)  # [B, h, w]
  won = tf.logical_and(
      tf.transpose(tf.one_hot(winner, num_queries, on_value=True,
                              off_value=False, dtype=tf.bool), [0, 3, 1, 2]),
      keep[:, :, None, None])  # [B, N, h, w]
  binary = mask_probs >= 0.5
  final_masks = tf.logical_and(won, binary)
  won_area = tf.reduce_sum(tf.cast(won, tf.float32), axis=[2, 3])
  original_area = tf.reduce_sum(tf.cast(binary, tf.float32), axis=[2, 3])
  final_area = tf.reduce_sum(tf.cast(final_masks, tf.float32), axis=[2, 3])
  overlap_ratio = tf.math.divide_no_nan(won_area, original_area)
  valid = (keep & (won_area > 0) & (original_area > 0) & (final_area > 0) &
           (overlap_ratio >= overlap_threshold) &
           (final_area >= tf.cast(min_area, tf.float32)))

  proposal_is_thing = tf.gather(tf.cast(is_thing, tf.bool), labels)  # [B, N]
  valid_stuff = valid & ~proposal_is_thing
  # A stuff proposal joins the first valid stuff proposal of its class.
  same_stuff_class = (
      (labels[:, :, None] == labels[:, None, :]) &
      valid_stuff[:, :, None] & valid_stuff[:, None, :])  # [B, N, N]
  first_same = tf.argmax(tf.cast(same_stuff_class, tf.int32), axis=2,
                         output_type=tf.int32)
  representative = tf.where(valid_stuff, first_same,
                            tf.range(num_queries)[None, :])  # [B, N]
  is_representative = valid & tf.equal(representative,
                                       tf.range(num_queries)[None, :])
  segment_rank = tf.cumsum(tf.cast(is_representative, tf.int32), axis=1)
  # 1-based segment id of every query (0 for dropped queries).
  query_segment_id = tf.where(
      valid, tf.gather(segment_rank, representative, batch_dims=1), 0)

  pixel_query_valid = tf.gather(valid, winner, batch_dims=1)  # [B, h, w]
  pixel_binary = tf.reduce_any(final_masks, axis=1)
  pixel_segment = tf.where(pixel_query_valid & pixel_binary,
                           tf.gather(query_segment_id, winner, batch_dims=1), 0)
  pixel_label = tf.gather(labels, winner, batch_dims=1)
  pixel_thing = tf.gather(proposal_is_thing, winner, batch_dims=1)
  category_map = tf.where(pixel_segment > 0, pixel_label, -1)
  instance_map = tf.where(pixel_thing, pixel_segment, 0)

  # Per-segment attributes: scatter queries onto their segment slot.
  membership = tf.one_hot(query_segment_id - 1, num_queries,
                          dtype=tf.float32)  # [B, N(query), N(segment)]
  segment_valid = tf.reduce_max(membership, axis=1) > 0
  member_scores = membership * scores[:, :, None]
  segment_scores = tf.reduce_max(member_scores, axis=1)
  segment_classes = tf.cast(
      tf.reduce_max(membership * tf.cast(labels, tf.float32)[:, :, None],
                    axis=1), tf.int32)
  segment_is_thing = tf.reduce_max(
      membership * tf.cast(proposal_is_thing, tf.float32)[:, :, None],
      axis=1) > 0
  return {
      'segment_map': pixel_segment,
      'category_map': category_map,
      'instance_map': instance_map,
      'segment_classes': segment_classes,
      'segment_scores': segment_scores,
      'segment_is_thing': segment_is_thing,
      'segment_valid': segment_valid,
  }


def instance_inference(mask_logits: tf.Tensor,
                       class_logits: tf.Tensor,
                       top_k: int = 100,
                       score_threshold: float = 0.0,
                       min_area: int = 4) -> Dict[str, tf.Tensor]:
  """Top-k (query, class) pairs scored by class probability x mask score.

  The mask score is the mean mask probability inside the binarised mask
  (prob > 0.5). A pair is valid when its score > `score_threshold` and its
  binarised mask has at least `min_area` pixels at h x w.

  Args:
    mask_logits: [B, N, h, w] float32.
    class_logits: [B, N, C + 1] float32.
    top_k: K, number of pairs kept (<= N * C).
    score_threshold: float.
    min_area: int, in pixels at h x w.

  Returns:
    A dict with 'masks' [B, K, h, w] bool, 'mask_probs' [B, K, h, w] float32
    (to resize to the original size before binarising), 'scores' [B, K]
    float32, 'classes' [B, K] int32, 'query_indices' [B, K] int32 and
    'valid' [B, K] bool. Pairs are sorted by class probability.
  """
  class_probs, mask_probs = _class_and_mask_probabilities(
      mask_logits, class_logits)
  num_classes = tf.shape(class_probs)[2]
  batch_size = tf.shape(class_probs)[0]
  flat_probs = tf.reshape(class_probs, [batch_size, -1])
  top_probs, top_indices = tf.math.top_k(flat_probs, k=top_k)
  query_indices = top_indices // num_classes
  classes = top_indices % num_classes
  top_mask_probs = tf.gather(mask_probs, query_indices, batch_dims=1)
  masks = top_mask_probs > 0.5
  masks_float = tf.cast(masks, tf.float32)
  area = tf.reduce_sum(masks_float, axis=[2, 3])
  mask_scores = tf.math.divide_no_nan(
      tf.reduce_sum(top_mask_probs * masks_float, axis=[2, 3]), area)
  scores = top_probs * mask_scores
  valid = (scores > score_threshold) & (area >= tf.cast(min_area, tf.float32))
  return {
      'masks': masks,
      'mask_probs': top_mask_probs,
      'scores': scores,
      'classes': classes,
      'query_indices': query_indices,
      'valid': valid,
  }
