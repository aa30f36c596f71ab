"""mIoU of SemanticEvaluator and of the file-based command against NumPy."""

import numpy as np
import pytest
from PIL import Image

from official_dataseg.evaluation import evaluate
from official_dataseg import common
from official_dataseg.evaluation import semantic_metrics


def _reference_miou(gts, preds, num_classes, ignore_label, ignore_classes=()):
  """Per-pixel loops over a dense confusion matrix, mIoU on present classes."""
  confusion = np.zeros((num_classes, num_classes))
  missed = np.zeros(num_classes)
  for gt, pred in zip(gts, preds):
    for g, p in zip(gt.ravel(), pred.ravel()):
      if g == ignore_label or g in ignore_classes:
        continue
      if 0 <= p < num_classes:
        confusion[g, p] += 1
      else:
        missed[g] += 1
  ious = []
  for c in range(num_classes):
    tp = confusion[c, c]
    union = confusion[c, :].sum() + missed[c] + confusion[:, c].sum() - tp
    if union > 0 and c not in ignore_classes:
      ious.append(tp / union)
  accuracy = np.trace(confusion) / (confusion.sum() + missed.sum())
  return np.mean(ious), accuracy, len(ious)


def _random_pairs(rng, num_classes, ignore_label):
  gts, preds = [], []
  for shape in ((7, 9), (5, 6)):
    gt = rng.integers(0, num_classes - 1, size=shape)  # last class absent
    gt[rng.random(shape) < 0.2] = ignore_label
    pred = np.where(rng.random(shape) < 0.6, gt, rng.integers(0, 4, size=shape))
    pred[pred == ignore_label] = 0
    pred[0, 0] = -1  # a "void" prediction: a miss, not a false positive
    gts.append(gt)
    preds.append(pred)
  return gts, preds


@pytest.mark.parametrize('ignore_classes', [(), (0,)])
def test_miou_matches_numpy(ignore_classes):
  rng = np.random.default_rng(0)
  num_classes, ignore_label = 6, 255
  gts, preds = _random_pairs(rng, num_classes, ignore_label)
  evaluator = semantic_metrics.SemanticEvaluator(
      num_classes, ignore_label, ignore_classes=ignore_classes)
  for gt, pred in zip(gts, preds):
    evaluator.update(gt, pred)
  result = evaluator.result()
  miou, accuracy, used = _reference_miou(gts, preds, num_classes, ignore_label,
                                         ignore_classes)
  assert result['mIoU'] == pytest.approx(miou, abs=1e-12)
  assert result['pixel_accuracy'] == pytest.approx(accuracy, abs=1e-12)
  assert result['num_classes_used'] == used
  # Class 5 occurs nowhere: it is not averaged.
  assert result['per_class_iou'][5] is None


def test_hand_computed_case():
  evaluator = semantic_metrics.SemanticEvaluator(3, ignore_label=255)
  evaluator.update(np.array([[0, 0, 1, 255]]), np.array([[0, 1, 1, 2]]))
  result = evaluator.result()
  # class 0: TP 1, FN 1 -> 1/2; class 1: TP 1, FP 1 -> 1/2; class 2 unused.
  assert result['per_class_iou'][:2] == [0.5, 0.5]
  assert result['mIoU'] == pytest.approx(0.5)
  assert result['pixel_accuracy'] == pytest.approx(2 / 3)


def test_file_command_matches_numpy(tmp_path):
  rng = np.random.default_rng(1)
  gts, preds = _random_pairs(rng, 5, 255)
  preds = [np.where(p < 0, 255, p) for p in preds]  # PNGs are unsigned
  for folder, maps in (('gt', gts), ('pred', preds)):
    (tmp_path / folder).mkdir()
    for i, label_map in enumerate(maps):
      Image.fromarray(label_map.astype(np.uint8)).save(
          tmp_path / folder / f'{i}.png')
  results = evaluate.main([
      '--task', 'semantic', '--gt', str(tmp_path / 'gt'),
      '--pred', str(tmp_path / 'pred'), '--num_classes', '5'])
  miou, accuracy, _ = _reference_miou(gts, preds, 5, 255)
  assert results['mIoU'] == pytest.approx(miou, abs=1e-12)
  assert results['pixel_accuracy'] == pytest.approx(accuracy, abs=1e-12)


def test_label_out_of_range_is_an_error():
  evaluator = semantic_metrics.SemanticEvaluator(3)
  with pytest.raises(ValueError, match='outside'):
    evaluator.update(np.array([[7]]), np.array([[0]]))


def test_label_map_from_segments():
  segment_map = np.array([[0, 1], [2, 2]])
  np.testing.assert_array_equal(
      semantic_metrics.label_map_from_segments(segment_map, [5, 3]),
      [[common.VOID_LABEL, 5], [3, 3]])
