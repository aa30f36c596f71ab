"""Post-processing on hand-made proposals, checked against hand-derived maps."""

import numpy as np
import pytest
import tensorflow as tf

from official_dataseg.evaluation import postprocessing

_H = _W = 8
_BIG = 12.0  # sigmoid(12) ~ 1 - 6e-6: a crisp mask.


def _class_logits(probabilities):
  """Logits whose softmax is exactly `probabilities` ([N, C + 1])."""
  return np.log(np.asarray(probabilities, np.float64)).astype(np.float32)


def _mask(rows, cols):
  mask = np.full((_H, _W), -_BIG, np.float32)
  mask[rows, cols] = _BIG
  return mask


def _panoptic_proposals():
  """Classes: 0 person (thing), 1 car (thing), 2 sky (stuff); last = bg."""
  masks = np.stack([
      _mask(slice(0, 8), slice(0, 4)),   # q0 person, 32 px
      _mask(slice(0, 2), slice(4, 8)),   # q1 sky
      _mask(slice(6, 8), slice(4, 8)),   # q2 sky, fuses with q1
      _mask(slice(2, 6), slice(4, 8)),   # q3 car, too unsure
      _mask(slice(2, 6), slice(2, 6)),   # q4 car, covers 8 px of q0
      _mask(slice(4, 5), slice(7, 8)),   # q5 car, 1 px
  ])
  probabilities = [
      [0.95, 0.02, 0.01, 0.02],
      [0.01, 0.01, 0.90, 0.08],
      [0.01, 0.01, 0.92, 0.06],
      [0.10, 0.50, 0.10, 0.30],
      [0.01, 0.97, 0.01, 0.01],
      [0.02, 0.90, 0.02, 0.06],
  ]
  return masks[None], _class_logits(probabilities)[None]


def _run_panoptic(**kwargs):
  masks, logits = _panoptic_proposals()
  outputs = postprocessing.panoptic_inference(
      tf.constant(masks), tf.constant(logits),
      is_thing=tf.constant([True, True, False]), **kwargs)
  return {k: v.numpy()[0] for k, v in outputs.items()}


def test_panoptic_overlap_filter_drops_occluded_proposal():
  # q4 (score 0.97) takes 8 of q0's 32 pixels: 24 / 32 = 0.75 < 0.8, so q0
  # goes and its pixels become void; q3 is below 0.85; q5 is 1 px < 4.
  out = _run_panoptic(confidence_threshold=0.85, overlap_threshold=0.8,
                      min_area=4)
  expected_segments = np.zeros((_H, _W), np.int32)
  expected_segments[0:2, 4:8] = 1   # sky (q1 + q2), first proposal q1
  expected_segments[6:8, 4:8] = 1
  expected_segments[2:6, 2:6] = 2   # car q4
  np.testing.assert_array_equal(out['segment_map'], expected_segments)
  expected_categories = np.array([-1, 2, 1])[expected_segments]
  np.testing.assert_array_equal(out['category_map'], expected_categories)
  np.testing.assert_array_equal(out['instance_map'],
                                np.where(expected_segments == 2, 2, 0))
  np.testing.assert_array_equal(out['segment_valid'][:3], [True, True, False])
  assert not out['segment_valid'][3:].any()
  np.testing.assert_array_equal(out['segment_classes'][:2], [2, 1])
  # Fused stuff keeps the larger member score.
  np.testing.assert_allclose(out['segment_scores'][:2], [0.92, 0.97],
                             rtol=1e-5)
  np.testing.assert_array_equal(out['segment_is_thing'][:2], [False, True])


def test_panoptic_lower_overlap_threshold_and_min_area_keep_more():
  out = _run_panoptic(confidence_threshold=0.85, overlap_threshold=0.7,
                      min_area=1)
  expected = np.zeros((_H, _W), np.int32)
  expected[:, 0:4] = 1              # person q0 minus what q4 won
  expected[0:2, 4:8] = 2            # sky q1 + q2
  expected[6:8, 4:8] = 2
  expected[2:6, 2:6] = 3            # car q4
  expected[4, 7] = 4                # car q5 (1 px, min_area 1)
  np.testing.assert_array_equal(out['segment_map'], expected)
  np.testing.assert_array_equal(out['segment_classes'][:4], [0, 2, 1, 1])
  np.testing.assert_array_equal(out['instance_map'],
                                np.where(np.isin(expected, [1, 3, 4]),
                                         expected, 0))


def test_panoptic_confidence_threshold():
  # Only q0 (0.95) and q4 (0.97) pass 0.93; q0 still loses to the overlap.
  out = _run_panoptic(confidence_threshold=0.93, overlap_threshold=0.7,
                      min_area=4)
  expected = np.zeros((_H, _W), np.int32)
  expected[:, 0:4] = 1
  expected[2:6, 2:6] = 2
  np.testing.assert_array_equal(out['segment_map'], expected)
  assert out['segment_valid'].sum() == 2


def test_semantic_inference_matches_numpy():
  rng = np.random.default_rng(0)
  mask_logits = rng.normal(size=(2, 5, 3, 4)).astype(np.float32)
  class_logits = rng.normal(size=(2, 5, 7)).astype(np.float32)
  class_logits[..., 4:6] = -1e9  # padded vocabulary columns
  probs = np.exp(class_logits) / np.exp(class_logits).sum(-1, keepdims=True)
  expected = np.zeros((2, 3, 4, 6))
  for b in range(2):
    for n in range(5):
      for c in range(6):
        expected[b, :, :, c] += probs[b, n, c] / (1 + np.exp(-mask_logits[b, n]))
  scores = postprocessing.semantic_inference(mask_logits, class_logits)
  np.testing.assert_allclose(scores.numpy(), expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(
      postprocessing.semantic_label_map(scores).numpy(), expected.argmax(-1))


def _logit(p):
  return np.log(p / (1 - p))


def test_instance_inference_scores_and_filters():
  mask_probs = np.full((3, _H, _W), 0.1)
  mask_probs[0, 0, 0:4] = 0.9     # q0: 4 px at 0.9 + 2 px at 0.6
  mask_probs[0, 1, 0:2] = 0.6
  mask_probs[1, 5, 5:7] = 0.95    # q1: 2 px only, below min_area 4
  mask_probs[2, 2:5, 2:5] = 0.8   # q2: 9 px at 0.8
  probabilities = [[0.70, 0.20, 0.10],
                   [0.10, 0.60, 0.30],
                   [0.05, 0.45, 0.50]]
  out = postprocessing.instance_inference(
      _logit(mask_probs)[None].astype(np.float32),
      _class_logits(probabilities)[None], top_k=4, score_threshold=0.0,
      min_area=4)
  out = {k: v.numpy()[0] for k, v in out.items()}
  # Top 4 (query, class) pairs by class probability.
  np.testing.assert_array_equal(out['query_indices'], [0, 1, 2, 0])
  np.testing.assert_array_equal(out['classes'], [0, 1, 1, 1])
  mask_score_q0 = (4 * 0.9 + 2 * 0.6) / 6
  mask_score_q1 = 0.95
  mask_score_q2 = 0.8
  np.testing.assert_allclose(
      out['scores'], [0.70 * mask_score_q0, 0.60 * mask_score_q1,
                      0.45 * mask_score_q2, 0.20 * mask_score_q0], rtol=1e-5)
  np.testing.assert_array_equal(out['valid'], [True, False, True, True])
  np.testing.assert_array_equal(out['masks'][0], mask_probs[0] > 0.5)
  # A score threshold between the two q0 pairs drops the weaker one.
  strict = postprocessing.instance_inference(
      _logit(mask_probs)[None].astype(np.float32),
      _class_logits(probabilities)[None], top_k=4, score_threshold=0.3,
      min_area=4)
  np.testing.assert_array_equal(strict['valid'].numpy()[0],
                                [True, False, True, False])
