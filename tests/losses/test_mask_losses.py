"""Mask cost/loss terms against NumPy references written here."""
import numpy as np
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg.losses import mask_losses

ALPHA, GAMMA = 0.25, 2.0


def _np_sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x.astype(np.float64)))


def _np_focal(logits, target, valid):
  """Sigmoid focal loss (RetinaNet form), mean over valid pixels."""
  p = _np_sigmoid(logits)
  ce = -(target * np.log(p) + (1 - target) * np.log(1 - p))
  p_t = p * target + (1 - p) * (1 - target)
  alpha_t = ALPHA * target + (1 - ALPHA) * (1 - target)
  loss = alpha_t * (1 - p_t) ** GAMMA * ce
  return (loss * valid).sum() / max(valid.sum(), 1.0)


def _np_dice(p, t):
  return 1.0 - (2.0 * (p * t).sum() + 1.0) / (p.sum() + t.sum() + 1.0)


def _np_projection(logits, target, valid):
  p = _np_sigmoid(logits) * valid
  t = target * valid
  return (_np_dice(p.max(axis=0), t.max(axis=0))
          + _np_dice(p.max(axis=1), t.max(axis=1)))


def _inputs(seed=0, batch=2, num_pred=5, num_gt=3, height=6, width=7):
  rng = np.random.default_rng(seed)
  logits = rng.normal(0.0, 3.0, (batch, num_pred, height, width))
  gt = rng.integers(0, 2, (batch, num_gt, height, width)).astype(np.float64)
  valid = (rng.uniform(size=(batch, height, width)) > 0.3).astype(np.float64)
  return logits.astype(np.float32), gt, valid


def _tf(*arrays):
  return [tf.constant(a, tf.float32) for a in arrays]


def test_pairwise_and_paired_terms_match_numpy():
  logits, gt, valid = _inputs()
  batch, num_pred, num_gt = logits.shape[0], logits.shape[1], gt.shape[1]
  t_logits, t_gt, t_valid = _tf(logits, gt, valid)
  got_focal = mask_losses.pairwise_sigmoid_focal(t_logits, t_gt, t_valid,
                                                 ALPHA, GAMMA).numpy()
  got_dice = mask_losses.pairwise_mask_dice(t_logits, t_gt, t_valid).numpy()
  got_proj = mask_losses.pairwise_projection(t_logits, t_gt, t_valid).numpy()
  for b in range(batch):
    for p in range(num_pred):
      for m in range(num_gt):
        probs = _np_sigmoid(logits[b, p]) * valid[b]
        np.testing.assert_allclose(
            got_focal[b, p, m], _np_focal(logits[b, p], gt[b, m], valid[b]),
            rtol=1e-5)
        np.testing.assert_allclose(
            got_dice[b, p, m], _np_dice(probs, gt[b, m] * valid[b]),
            rtol=1e-5)
        np.testing.assert_allclose(
            got_proj[b, p, m],
            _np_projection(logits[b, p], gt[b, m], valid[b]), rtol=1e-5)
  # Per-pair forms on aligned pairs (pred p <-> gt p) with a layer axis.
  aligned = np.stack([logits[:, :num_gt], -logits[:, :num_gt]])  # [2,B,M,h,w]
  t_aligned = tf.constant(aligned)
  pair_valid = t_valid[:, tf.newaxis]
  focal = mask_losses.sigmoid_focal(t_aligned, t_gt, pair_valid, ALPHA,
                                    GAMMA).numpy()
  dice = mask_losses.mask_dice(t_aligned, t_gt, pair_valid).numpy()
  proj = mask_losses.projection(t_aligned, t_gt, pair_valid).numpy()
  assert focal.shape == (2, batch, num_gt)
  for layer in range(2):
    for b in range(batch):
      for m in range(num_gt):
        x = aligned[layer, b, m]
        np.testing.assert_allclose(
            focal[layer, b, m], _np_focal(x, gt[b, m], valid[b]), rtol=1e-5)
        np.testing.assert_allclose(
            dice[layer, b, m],
            _np_dice(_np_sigmoid(x) * valid[b], gt[b, m] * valid[b]),
            rtol=1e-5)
        np.testing.assert_allclose(
            proj[layer, b, m], _np_projection(x, gt[b, m], valid[b]),
            rtol=1e-5)


def test_ignored_pixels_do_not_count():
  logits, gt, _ = _inputs(seed=1, batch=1, num_pred=1, num_gt=1)
  valid = np.ones((1, 6, 7))
  valid[0, :, 4:] = 0.0
  changed = logits.copy()
  changed[0, 0, :, 4:] = 50.0  # Confidently wrong only where ignored.
  for fn in (mask_losses.mask_dice, mask_losses.projection):
    before = fn(*_tf(logits[:, 0], gt[:, 0], valid)).numpy()
    after = fn(*_tf(changed[:, 0], gt[:, 0], valid)).numpy()
    np.testing.assert_allclose(before, after, rtol=1e-6)
  before = mask_losses.sigmoid_focal(*_tf(logits[:, 0], gt[:, 0], valid),
                                     ALPHA, GAMMA).numpy()
  after = mask_losses.sigmoid_focal(*_tf(changed[:, 0], gt[:, 0], valid),
                                    ALPHA, GAMMA).numpy()
  np.testing.assert_allclose(before, after, rtol=1e-6)


def test_projection_zero_inside_box_positive_when_leaking():
  box = np.zeros((1, 16, 16), np.float32)
  box[0, 3:9, 5:12] = 1.0
  valid = np.ones((1, 16, 16), np.float32)
  # Saturated logits: probabilities exactly 0/1 in float32.
  fills_box = np.where(box > 0, 40.0, -40.0).astype(np.float32)
  exact = mask_losses.projection(*_tf(fills_box, box, valid)).numpy()
  np.testing.assert_allclose(exact, [0.0], atol=1e-6)
  # Any mask inside the box whose projections cover it is also free.
  cross = np.full((1, 16, 16), -40.0, np.float32)
  cross[0, 5, 5:12] = 40.0
  cross[0, 3:9, 8] = 40.0
  np.testing.assert_allclose(
      mask_losses.projection(*_tf(cross, box, valid)).numpy(), [0.0],
      atol=1e-6)
  leaking = fills_box.copy()
  leaking[0, 3:9, 12:14] = 40.0
  leak = mask_losses.projection(*_tf(leaking, box, valid)).numpy()[0]
  # x-projection: 9 predicted columns vs 7 in the box, y unchanged.
  np.testing.assert_allclose(leak, 1.0 - (2 * 7 + 1) / (9 + 7 + 1),
                             rtol=1e-5)
