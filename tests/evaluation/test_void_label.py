"""PASCAL Context 459 has a class with index 255: it must be scored, not taken for void.

A 459-class semantic image whose ground truth holds classes 0, 17, 255 and 458 and void pixels,
scored through the in-training evaluator (ground truth packed by the evaluation parser's codec)
and through the file evaluator (16-bit label PNGs, void 65535), against a NumPy confusion-matrix
mIoU written here.
"""
import os

import numpy as np
import pytest
from PIL import Image

from official_dataseg import common
from official_dataseg.configs import data as data_config
from official_dataseg.evaluation import dataset_evaluator
from official_dataseg.evaluation import evaluate
from official_dataseg.evaluation import semantic_metrics
from official_dataseg.ops import groundtruth_codec

NUM_CLASSES = 459
HEIGHT, WIDTH = 40, 48
STRIDE = 4


def _scene():
  """Segment map (0 void, k -> segment k-1) and segment classes; void in a band."""
  segment_map = np.zeros((HEIGHT, WIDTH), np.int32)
  segment_map[:20, :24] = 1
  segment_map[:20, 24:] = 2
  segment_map[20:, :24] = 3
  segment_map[20:, 24:] = 4
  segment_map[18:22, :] = 0  # Void.
  return segment_map, np.array([255, 0, 458, 17], np.int32)


def _numpy_miou(gt_labels, pred_labels, void):
  """mIoU over classes with a non-zero union; void ground-truth pixels left out."""
  keep = gt_labels != void
  gt, pred = gt_labels[keep], pred_labels[keep]
  confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
  np.add.at(confusion, (gt, pred), 1)
  intersection = np.diag(confusion)
  union = confusion.sum(0) + confusion.sum(1) - intersection
  used = union > 0
  return float(np.mean(intersection[used] / union[used])), used


def _logits(segment_map, classes):
  """Queries predicting each segment on the stride-4 grid; segment 3 is called class 255 too."""
  grid = segment_map[STRIDE // 2::STRIDE, STRIDE // 2::STRIDE]
  num_queries = 6
  mask_logits = np.full((num_queries, HEIGHT // STRIDE, WIDTH // STRIDE), -6.0, np.float32)
  class_logits = np.full((num_queries, NUM_CLASSES + 1), -4.0, np.float32)
  class_logits[:, -1] = 6.0
  for k, label in enumerate(classes):
    mask_logits[k][grid == k + 1] = 6.0
    class_logits[k] = -4.0
    class_logits[k, 255 if k == 2 else label] = 6.0
  return mask_logits, class_logits


def test_class_255_is_scored_in_training_and_from_files(tmp_path):
  segment_map, classes = _scene()
  gt_labels = np.where(segment_map > 0, np.concatenate([[0], classes])[segment_map], -1)
  mask_logits, class_logits = _logits(segment_map, classes)
  config = data_config.DatasetConfig(name='pascal_context_459', task_type=common.TASK_SEMANTIC)
  evaluator = dataset_evaluator.DatasetEvaluator(
      config, [f'class {i}' for i in range(NUM_CLASSES)], [False] * NUM_CLASSES,
      keep_examples=1)
  groundtruth = groundtruth_codec.encode_groundtruth(
      segment_map, classes, np.zeros(4, bool), np.zeros(4, bool), np.zeros((4, 4), np.float32))
  evaluator.update({
      dataset_evaluator.PREDICTED_MASK_LOGITS: mask_logits[None],
      dataset_evaluator.PREDICTED_CLASS_LOGITS: class_logits[None],
      common.IMAGE_INFO: np.array([[[HEIGHT, WIDTH], [HEIGHT, WIDTH], [1, 1], [0, 0]]],
                                  np.float32),
      common.EVAL_GROUNDTRUTH: np.array([groundtruth.numpy()]),
  })
  predicted = evaluator.examples[0]['prediction']['label_map']
  expected, used = _numpy_miou(gt_labels, predicted, void=-1)
  assert used[255] and used[458] and used[0] and used[17]
  # Taking 255 for void (the old behaviour) would give another number.
  assert _numpy_miou(np.where(gt_labels == 255, -1, gt_labels), predicted, -1)[0] != (
      pytest.approx(expected, abs=1e-3))
  assert evaluator.result()['mIoU'] == pytest.approx(100.0 * expected, abs=1e-6)

  # The same through 16-bit label files, void 65535.
  for folder, labels in (('gt', np.where(gt_labels < 0, 65535, gt_labels)), ('pred', predicted)):
    os.makedirs(tmp_path / folder)
    Image.fromarray(labels.astype(np.uint16)).save(tmp_path / folder / 'image.png')
  results = evaluate.evaluate_semantic(str(tmp_path / 'gt'), str(tmp_path / 'pred'),
                                       NUM_CLASSES, ignore_label=65535)
  assert results['mIoU'] == pytest.approx(expected, abs=1e-6)
  with pytest.raises(ValueError, match='ignore_label 255 is a class value'):
    evaluate.evaluate_semantic(str(tmp_path / 'gt'), str(tmp_path / 'pred'), NUM_CLASSES,
                               ignore_label=255)


def test_void_value_inside_the_vocabulary_is_rejected():
  with pytest.raises(ValueError, match='ignore_label 255 is a class index'):
    semantic_metrics.SemanticEvaluator(NUM_CLASSES, ignore_label=255)


def test_reduce_zero_label_reads_raw_ade_files(tmp_path):
  # Raw ADE20K: 0 = "other" (void), class c stored as c + 1; 255 never occurs.
  raw = np.array([[0, 1, 2], [150, 150, 1]])
  expected_labels = np.array([[-1, 0, 1], [149, 149, 0]])
  np.testing.assert_array_equal(
      evaluate.semantic_label_map(raw, 150, 255, reduce_zero_label=True), expected_labels)
  os.makedirs(tmp_path / 'gt')
  os.makedirs(tmp_path / 'pred')
  Image.fromarray(raw.astype(np.uint8)).save(tmp_path / 'gt' / 'a.png')
  Image.fromarray(np.array([[5, 0, 1], [149, 3, 0]], np.uint8)).save(tmp_path / 'pred' / 'a.png')
  results = evaluate.main(['--task', 'semantic', '--gt', str(tmp_path / 'gt'), '--pred',
                           str(tmp_path / 'pred'), '--num_classes', '150',
                           '--reduce_zero_label'])
  # Classes 0: IoU 2/2; 1: 1/1; 149: 1/2 (one pixel predicted 3); 3: 0/1 (a false positive).
  assert results['mIoU'] == pytest.approx((1.0 + 1.0 + 0.5 + 0.0) / 4, abs=1e-9)
