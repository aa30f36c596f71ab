"""DataSegLoss end to end against a NumPy/SciPy reference, plus invariances."""
import numpy as np
import pytest
from scipy import optimize
import tensorflow as tf, tf_keras

from official_dataseg import common
from official_dataseg.configs import losses as losses_config
from official_dataseg.losses import criterion
from official_dataseg.losses import merge

EPS = 1e-6
IS_THING = (True, False, True, False, False)
NUM_CLASSES = len(IS_THING)
# Every term on, in matching and in the loss, so each is exercised.
ALL_TERMS = losses_config.LossWeights(
    matching_ce=1.0, matching_focal=2.0, matching_dice=1.5,
    matching_projection=0.5, ce=1.0, focal=20.0, dice=5.0, projection=2.0)


# ---------------------------------------------------------------------------
# NumPy reference (float64), written from the interpretation in docs/losses.md.
# ---------------------------------------------------------------------------
def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _dice(p, t):
  return 1.0 - (2.0 * (p * t).sum() + 1.0) / (p.sum() + t.sum() + 1.0)


def _mask_terms(probs, target, valid, alpha=0.25, gamma=2.0):
  """(focal, dice, projection) of one mask probability map vs one target."""
  p = np.clip(probs, 1e-12, 1 - 1e-12)
  ce = -(target * np.log(p) + (1 - target) * np.log(1 - p))
  p_t = p * target + (1 - p) * (1 - target)
  alpha_t = alpha * target + (1 - alpha) * (1 - target)
  focal = (alpha_t * (1 - p_t) ** gamma * ce * valid).sum() / max(
      valid.sum(), 1.0)
  pv, tv = probs * valid, target * valid
  dice = _dice(pv, tv)
  proj = _dice(pv.max(0), tv.max(0)) + _dice(pv.max(1), tv.max(1))
  return focal, dice, proj


def _np_entries(mask_logits, class_logits, task):
  """One image, one layer -> (mask probs [P,h,w], log probs [P,C+1], valid,
  is_proposal)."""
  logits = np.concatenate([class_logits[:, :NUM_CLASSES], class_logits[:, -1:]],
                          -1)
  log_probs = _log_softmax(logits)
  mask_probs = _sigmoid(mask_logits)
  num_queries = mask_logits.shape[0]
  if task == common.TASK_INSTANCE:
    return mask_probs, log_probs, np.ones(num_queries, bool), np.ones(
        num_queries, bool)
  group = logits[:, :NUM_CLASSES].argmax(-1)
  merged_classes = (range(NUM_CLASSES) if task == common.TASK_SEMANTIC else
                    [c for c in range(NUM_CLASSES) if not IS_THING[c]])
  masks, lps, valid = [], [], []
  for c in merged_classes:
    members = group == c
    # The model holds merged probabilities in float32: near the 1 - EPS clip
    # the float32 rounding of p changes log(1 - p) by up to 6%, so the
    # reference starts from the same float32 value.
    merged = np.clip(mask_probs[members].sum(0), EPS, 1 - EPS).astype(
        np.float32).astype(np.float64)
    mean_probs = np.exp(log_probs[members]).sum(0) / max(members.sum(), 1)
    masks.append(merged if members.any() else np.full_like(mask_probs[0], EPS))
    lps.append(np.log(np.maximum(mean_probs, EPS)))
    valid.append(members.any())
  masks, lps, valid = np.array(masks), np.array(lps), np.array(valid, bool)
  if task == common.TASK_SEMANTIC:
    return masks, lps, valid, np.zeros(len(valid), bool)
  thing_valid = np.array([IS_THING[g] for g in group])
  return (np.concatenate([mask_probs, masks]), np.concatenate([log_probs, lps]),
          np.concatenate([thing_valid, valid]),
          np.arange(num_queries + len(valid)) < num_queries)


def _np_reference(mask_logits, class_logits, labels, task, weights):
  mask_logits = mask_logits.astype(np.float64)
  class_logits = class_logits.astype(np.float64)
  num_layers, batch = mask_logits.shape[:2]
  gt_masks = labels[common.GT_MASKS].astype(np.float64)
  gt_classes = labels[common.GT_CLASSES]
  gt_valid = labels[common.GT_VALID] > 0
  pixel_valid = 1.0 - labels[common.IGNORE_MASK].astype(np.float64)
  entries = [[_np_entries(mask_logits[l, b], class_logits[l, b], task)
              for b in range(batch)] for l in range(num_layers)]
  pairs = []  # per image: list of (entry, gt)
  for b in range(batch):
    masks, log_probs, valid, _ = entries[-1][b]
    rows, cols = np.nonzero(valid)[0], np.nonzero(gt_valid[b])[0]
    cost = np.zeros((len(rows), len(cols)))
    for i, r in enumerate(rows):
      for j, c in enumerate(cols):
        focal, dice, proj = _mask_terms(masks[r], gt_masks[b, c],
                                        pixel_valid[b])
        cost[i, j] = (-weights.matching_ce * log_probs[r, gt_classes[b, c]]
                      + weights.matching_focal * focal
                      + weights.matching_dice * dice
                      + weights.matching_projection * proj)
    r_idx, c_idx = optimize.linear_sum_assignment(cost)
    pairs.append({rows[i]: cols[j] for i, j in zip(r_idx, c_idx)})
  num_masks = max(gt_valid.sum(), 1)
  totals = dict(ce=0.0, focal=0.0, dice=0.0, projection=0.0)
  for l in range(num_layers):
    ce_sum, ce_weight = 0.0, 0.0
    for b in range(batch):
      masks, log_probs, valid, is_proposal = entries[l][b]
      for e in range(len(valid)):
        matched = e in pairs[b]
        if not (valid[e] or (matched and is_proposal[e])):
          continue
        target = gt_classes[b, pairs[b][e]] if matched else NUM_CLASSES
        w = 1.0 if matched else weights.background_weight
        ce_sum += -w * log_probs[e, target]
        ce_weight += w
        if matched:
          focal, dice, proj = _mask_terms(masks[e], gt_masks[b, pairs[b][e]],
                                          pixel_valid[b])
          totals['focal'] += weights.focal * focal / num_masks
          totals['dice'] += weights.dice * dice / num_masks
          totals['projection'] += weights.projection * proj / num_masks
    totals['ce'] += weights.ce * ce_sum / ce_weight if ce_weight else 0.0
  return totals


# ---------------------------------------------------------------------------
def _inputs(seed, num_layers=2, batch=2, queries=7, height=8, width=10,
            max_gt=5, num_valid=(3, 2), padded_classes=2):
  rng = np.random.default_rng(seed)
  mask_logits = rng.normal(0.0, 2.0, (num_layers, batch, queries, height,
                                      width)).astype(np.float32)
  class_logits = rng.normal(0.0, 2.0, (num_layers, batch, queries,
                                       NUM_CLASSES + padded_classes + 1))
  class_logits[..., NUM_CLASSES:-1] = -1e9
  gt_valid = np.zeros((batch, max_gt), np.float32)
  for b, n in enumerate(num_valid):
    gt_valid[b, :n] = 1.0
  labels = {
      common.GT_MASKS: rng.integers(0, 2, (batch, max_gt, height, width)
                                    ).astype(np.uint8),
      common.GT_CLASSES: rng.integers(0, NUM_CLASSES, (batch, max_gt)
                                      ).astype(np.int32),
      common.GT_VALID: gt_valid,
      common.GT_BOXES: np.zeros((batch, max_gt, 4), np.float32),
      common.IGNORE_MASK: (rng.uniform(size=(batch, height, width)) > 0.8
                           ).astype(np.uint8),
  }
  return mask_logits, class_logits.astype(np.float32), labels


def _run(task, mask_logits, class_logits, labels, weights=ALL_TERMS,
         gather_matched_pairs=False, merge_operator=merge.MERGE_CLIPPED_SUM,
         host_matching=False):
  loss = criterion.DataSegLoss(task, NUM_CLASSES, IS_THING, weights,
                               merge_operator=merge_operator,
                               gather_matched_pairs=gather_matched_pairs,
                               host_matching=host_matching)
  out = loss(tf.constant(mask_logits), tf.constant(class_logits),
             {k: tf.constant(v) for k, v in labels.items()})
  return {k: float(v) for k, v in out.items()}


# (gather_matched_pairs, host_matching): the static form of TPU / XLA, and the default off them.
STATIC_AND_DYNAMIC = pytest.mark.parametrize(
    'gather_matched_pairs,host_matching', [(False, False), (True, True)],
    ids=['static', 'gathered_host_matching'])


@STATIC_AND_DYNAMIC
@pytest.mark.parametrize('task', common.TASK_TYPES)
def test_matches_numpy_reference(task, gather_matched_pairs, host_matching):
  for seed in range(2):
    mask_logits, class_logits, labels = _inputs(seed)
    got = _run(task, mask_logits, class_logits, labels,
               gather_matched_pairs=gather_matched_pairs,
               host_matching=host_matching)
    expected = _np_reference(mask_logits, class_logits, labels, task,
                             ALL_TERMS)
    for name, value in expected.items():
      np.testing.assert_allclose(got[name], value, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(got['total'], sum(expected.values()),
                               rtol=1e-5)


@pytest.mark.parametrize('task', common.TASK_TYPES)
def test_permuting_queries_and_gt_and_padding_change_nothing(task):
  mask_logits, class_logits, labels = _inputs(3)
  base = _run(task, mask_logits, class_logits, labels)
  rng = np.random.default_rng(1)
  query_order = rng.permutation(mask_logits.shape[2])
  permuted = _run(task, mask_logits[:, :, query_order],
                  class_logits[:, :, query_order], labels)
  gt_order = rng.permutation(labels[common.GT_VALID].shape[1])
  gt_permuted = {k: (v[:, gt_order] if k != common.IGNORE_MASK else v)
                 for k, v in labels.items()}
  gt_permuted_out = _run(task, mask_logits, class_logits, gt_permuted)
  # Four more padded GT slots filled with garbage.
  padded = {}
  for key, value in labels.items():
    if key == common.IGNORE_MASK:
      padded[key] = value
      continue
    garbage = rng.integers(0, 2, value[:, :4].shape).astype(value.dtype)
    if key == common.GT_VALID:
      garbage = np.zeros_like(garbage)
    padded[key] = np.concatenate([value, garbage], axis=1)
  padded_out = _run(task, mask_logits, class_logits, padded)
  for name in ('ce', 'focal', 'dice', 'projection', 'total', 'num_matched'):
    for other in (permuted, gt_permuted_out, padded_out):
      np.testing.assert_allclose(other[name], base[name], rtol=1e-5,
                                 err_msg=name)


@pytest.mark.parametrize('host_matching', [False, True])
@pytest.mark.parametrize('task', common.TASK_TYPES)
def test_gathered_pairs_give_the_static_form_losses_and_gradients(task, host_matching):
  """The dynamic [K, h, w] mask losses equal the static [L, B, M, h, w] ones, and the host
  solver's matching gives the in-graph solver's losses and gradients."""
  mask_logits, class_logits, labels = _inputs(6, num_layers=3, queries=9,
                                              max_gt=8, num_valid=(5, 1))
  labels = {k: tf.constant(v) for k, v in labels.items()}
  results = []
  for gather in (False, True):
    loss = criterion.DataSegLoss(task, NUM_CLASSES, IS_THING, ALL_TERMS,
                                 gather_matched_pairs=gather,
                                 host_matching=gather and host_matching)
    mask_var = tf.Variable(mask_logits)
    class_var = tf.Variable(class_logits)
    with tf.GradientTape() as tape:
      out = loss(mask_var, class_var, labels)
    results.append((out, tape.gradient(out['total'], [mask_var, class_var])))
  (static, static_grads), (gathered, gathered_grads) = results
  assert float(static['num_matched']) >= 3.0
  assert float(gathered['num_matched']) == float(static['num_matched'])
  for name in ('ce', 'focal', 'dice', 'projection', 'total'):
    np.testing.assert_allclose(gathered[name], static[name], rtol=1e-6,
                               atol=1e-7, err_msg=name)
  for static_grad, gathered_grad in zip(static_grads, gathered_grads):
    assert np.abs(static_grad.numpy()).max() > 0.0
    np.testing.assert_allclose(gathered_grad.numpy(), static_grad.numpy(),
                               rtol=1e-5, atol=1e-8)


@STATIC_AND_DYNAMIC
@pytest.mark.parametrize('task', common.TASK_TYPES)
def test_no_gt_gives_finite_loss_and_gradients(task, gather_matched_pairs, host_matching):
  mask_logits, class_logits, labels = _inputs(4, num_valid=(0, 2))
  loss = criterion.DataSegLoss(task, NUM_CLASSES, IS_THING, ALL_TERMS,
                               gather_matched_pairs=gather_matched_pairs,
                               host_matching=host_matching)
  for valid in (labels[common.GT_VALID],
                np.zeros_like(labels[common.GT_VALID])):
    labels[common.GT_VALID] = valid
    mask_var = tf.Variable(mask_logits)
    class_var = tf.Variable(class_logits)
    with tf.GradientTape() as tape:
      out = loss(mask_var, class_var,
                 {k: tf.constant(v) for k, v in labels.items()})
    grads = tape.gradient(out['total'], [mask_var, class_var])
    assert np.isfinite(out['total'].numpy())
    for grad in grads:
      assert grad is not None and np.isfinite(grad.numpy()).all()
  # No GT anywhere: only the background CE remains.
  assert out['num_matched'].numpy() == 0.0
  assert out['focal'].numpy() == 0.0 and out['ce'].numpy() > 0.0


def test_mixed_bfloat16_same_assignment_and_finite_loss():
  mask_logits, class_logits, labels = _inputs(5, queries=12)
  mask_bf16 = tf.cast(mask_logits, tf.bfloat16)
  class_bf16 = tf.cast(class_logits, tf.bfloat16)
  tf_labels = {k: tf.constant(v) for k, v in labels.items()}
  tf_keras.mixed_precision.set_global_policy('mixed_bfloat16')
  try:
    for task in common.TASK_TYPES:
      loss = criterion.DataSegLoss(task, NUM_CLASSES, IS_THING, ALL_TERMS)
      low = loss.match(mask_bf16, class_bf16, tf_labels)
      high = loss.match(tf.cast(mask_bf16, tf.float32),
                        tf.cast(class_bf16, tf.float32), tf_labels)
      for got, expected in zip(low, high):
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
      out = loss(mask_bf16, class_bf16, tf_labels)
      assert out['total'].dtype == tf.float32
      assert np.isfinite(out['total'].numpy())
  finally:
    tf_keras.mixed_precision.set_global_policy('float32')


def test_bad_inputs_raise_clear_errors():
  mask_logits, class_logits, labels = _inputs(6)
  loss = criterion.DataSegLoss(common.TASK_PANOPTIC, NUM_CLASSES, IS_THING,
                               ALL_TERMS)
  tf_labels = {k: tf.constant(v) for k, v in labels.items()}
  with pytest.raises(ValueError, match=common.CLASS_LOGITS):
    loss(tf.constant(mask_logits), tf.constant(class_logits[..., :4]),
         tf_labels)
  with pytest.raises(ValueError, match=common.GT_MASKS):
    loss(tf.constant(mask_logits[..., :4]), tf.constant(class_logits),
         tf_labels)
  del tf_labels[common.IGNORE_MASK]
  with pytest.raises(KeyError, match=common.IGNORE_MASK):
    loss(tf.constant(mask_logits), tf.constant(class_logits), tf_labels)
  with pytest.raises(ValueError, match='is_thing'):
    criterion.DataSegLoss(common.TASK_PANOPTIC, 3, IS_THING, ALL_TERMS)
  with pytest.raises(ValueError, match='task_type'):
    criterion.DataSegLoss('detection', NUM_CLASSES, IS_THING, ALL_TERMS)
  with pytest.raises(ValueError, match='merge_operator'):
    criterion.DataSegLoss(common.TASK_PANOPTIC, NUM_CLASSES, IS_THING,
                          ALL_TERMS, merge_operator='soft')


@pytest.mark.parametrize('gather_matched_pairs', [False, True])
@pytest.mark.parametrize('task', [common.TASK_SEMANTIC, common.TASK_PANOPTIC])
def test_no_merge_is_the_proposal_matching_of_the_instance_task(
    task, gather_matched_pairs):
  # merge_operator='none': every entry is a valid proposal, supervised at
  # every layer, which is exactly the instance task's reference.
  mask_logits, class_logits, labels = _inputs(8)
  got = _run(task, mask_logits, class_logits, labels,
             gather_matched_pairs=gather_matched_pairs,
             merge_operator=merge.MERGE_NONE)
  expected = _np_reference(mask_logits, class_logits, labels,
                           common.TASK_INSTANCE, ALL_TERMS)
  for name, value in expected.items():
    np.testing.assert_allclose(got[name], value, rtol=1e-5, err_msg=name)


@pytest.mark.parametrize('task', [common.TASK_SEMANTIC, common.TASK_PANOPTIC])
def test_smooth_union_loss_is_finite_and_differs(task):
  mask_logits, class_logits, labels = _inputs(9)
  union = _run(task, mask_logits, class_logits, labels,
               merge_operator=merge.MERGE_SMOOTH_UNION)
  clipped = _run(task, mask_logits, class_logits, labels)
  assert np.isfinite(union['total'])
  assert union['total'] != clipped['total']


@pytest.mark.slow
def test_jit_compiles_at_full_resolution():
  # 100 queries, 1024 x 1024 input -> 256 x 256 masks, batch 1, 2 layers.
  mask_logits, class_logits, labels = _inputs(
      7, num_layers=2, batch=1, queries=100, height=256, width=256,
      max_gt=20, num_valid=(12,))
  loss = criterion.DataSegLoss(common.TASK_PANOPTIC, NUM_CLASSES, IS_THING,
                               ALL_TERMS)
  mask_var = tf.Variable(mask_logits)
  class_var = tf.Variable(class_logits)
  tf_labels = {k: tf.constant(v) for k, v in labels.items()}

  @tf.function(jit_compile=True)
  def loss_and_grads():
    with tf.GradientTape() as tape:
      out = loss(mask_var, class_var, tf_labels)
    return out, tape.gradient(out['total'], [mask_var, class_var])

  out, grads = loss_and_grads()
  eager = loss(mask_var, class_var, tf_labels)
  np.testing.assert_allclose(out['total'].numpy(), eager['total'].numpy(),
                             rtol=1e-4)
  assert out['num_matched'].numpy() == 12.0
  assert all(np.isfinite(g.numpy()).all() for g in grads)


def test_by_class_semantic_matching_pairs_each_merged_entry_with_its_own_class():
  mask_logits, class_logits, labels = _inputs(6, queries=9)
  mask_logits, class_logits = tf.constant(mask_logits), tf.constant(class_logits)
  tf_labels = {k: tf.constant(v) for k, v in labels.items()}
  hungarian = criterion.DataSegLoss(common.TASK_SEMANTIC, NUM_CLASSES, IS_THING, ALL_TERMS)
  by_class = criterion.DataSegLoss(common.TASK_SEMANTIC, NUM_CLASSES, IS_THING, ALL_TERMS,
                                   semantic_matching=criterion.SEMANTIC_MATCHING_BY_CLASS)
  match = by_class.match(mask_logits, class_logits, tf_labels)
  entries = hungarian.build_entries(mask_logits, class_logits)
  entry_valid = entries.valid.numpy()[-1]
  for b in range(labels[common.GT_VALID].shape[0]):
    seen = set()
    for m in np.flatnonzero(labels[common.GT_VALID][b]):
      gt_class = labels[common.GT_CLASSES][b, m]
      # Entry c is class c: a GT is matched exactly when its class has a valid entry (the
      # first GT slot of a class; the random labels may repeat a class).
      expected = bool(entry_valid[b, gt_class]) and gt_class not in seen
      seen.add(gt_class)
      assert match.gt_matched.numpy()[b, m] == expected
      if expected:
        assert match.gt_to_entry.numpy()[b, m] == gt_class
        assert match.entry_to_gt.numpy()[b, gt_class] == m
  assert match.gt_matched.numpy().sum() >= 2  # The case is not vacuous.
  # The instance task and 'none' keep the Hungarian matching.
  for task, operator in ((common.TASK_INSTANCE, merge.MERGE_CLIPPED_SUM),
                         (common.TASK_SEMANTIC, merge.MERGE_NONE)):
    kwargs = dict(merge_operator=operator)
    got = criterion.DataSegLoss(task, NUM_CLASSES, IS_THING, ALL_TERMS,
                                semantic_matching=criterion.SEMANTIC_MATCHING_BY_CLASS,
                                **kwargs).match(mask_logits, class_logits, tf_labels)
    expected = criterion.DataSegLoss(task, NUM_CLASSES, IS_THING, ALL_TERMS,
                                     **kwargs).match(mask_logits, class_logits, tf_labels)
    for a, b in zip(got, expected):
      np.testing.assert_array_equal(a.numpy(), b.numpy())
  with pytest.raises(ValueError, match='semantic_matching'):
    criterion.DataSegLoss(common.TASK_SEMANTIC, NUM_CLASSES, IS_THING, ALL_TERMS,
                          semantic_matching='nearest')
