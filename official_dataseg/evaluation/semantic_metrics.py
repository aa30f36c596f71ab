"""Semantic-segmentation metrics (mIoU, pixel accuracy) on the host.

A confusion matrix accumulates over images; IoU of class c is
TP / (TP + FP + FN). mIoU averages over the classes whose union is non-zero
(present in the ground truth or the prediction), as mmsegmentation does: a
class that is only predicted counts with IoU 0. detectron2's SemSegEvaluator
averages over the classes present in the ground truth only (`pos_gt > 0`),
which leaves such false-positive-only classes out and can be higher.
"""

from typing import Any, Dict, Sequence

import numpy as np

from official_dataseg import common


class SemanticEvaluator:
  """Accumulates a confusion matrix of class labels.

  Ground-truth pixels equal to `ignore_label` (void) or in `ignore_classes`
  are not counted; `ignore_label` must be a value no class index takes
  (negative, or >= num_classes: PASCAL Context 459 has a class 255); so, for PASCAL VOC with "background ignored" (paper Table 6), pass
  `ignore_classes=(background_index,)`, and that class is also left out of
  the mean. Predicted labels outside [0, num_classes) (e.g. -1 for "void")
  count as a miss of the ground-truth class and as no class's false positive.
  """

  def __init__(self, num_classes: int, ignore_label: int = common.VOID_LABEL,
               ignore_classes: Sequence[int] = ()):
    if num_classes <= 0:
      raise ValueError(
          f'SemanticEvaluator: num_classes must be positive, got {num_classes}.')
    if 0 <= ignore_label < num_classes:
      raise ValueError(
          f'SemanticEvaluator: ignore_label {ignore_label} is a class index of '
          f'the {num_classes}-class vocabulary; the void value must be '
          f'negative or >= {num_classes} (16-bit label files: 65535).')
    for c in ignore_classes:
      if not 0 <= c < num_classes:
        raise ValueError(
            f'SemanticEvaluator: ignore_classes entry {c} is outside '
            f'[0, {num_classes}).')
    self.num_classes = num_classes
    self.ignore_label = ignore_label
    self.ignore_classes = tuple(int(c) for c in ignore_classes)
    self.reset()

  def reset(self) -> None:
    # Row = ground truth, column = prediction; the extra column collects
    # predictions that are no class.
    self._confusion = np.zeros(
        (self.num_classes, self.num_classes + 1), np.int64)

  def update(self, gt_label_map: np.ndarray,
             pred_label_map: np.ndarray) -> None:
    """Adds one image.

    Args:
      gt_label_map: [H, W] int class index, `ignore_label` = not evaluated.
      pred_label_map: [H, W] int class index.

    Raises:
      ValueError: on shape mismatch or ground-truth labels out of range.
    """
    gt = np.asarray(gt_label_map).astype(np.int64).ravel()
    pred = np.asarray(pred_label_map).astype(np.int64).ravel()
    if np.shape(gt_label_map) != np.shape(pred_label_map):
      raise ValueError(
          f'SemanticEvaluator: ground truth is {np.shape(gt_label_map)} but '
          f'prediction is {np.shape(pred_label_map)}.')
    evaluated = gt != self.ignore_label
    for c in self.ignore_classes:
      evaluated &= gt != c
    gt, pred = gt[evaluated], pred[evaluated]
    if gt.size and (gt.min() < 0 or gt.max() >= self.num_classes):
      raise ValueError(
          f'SemanticEvaluator: ground-truth label {gt.min()}..{gt.max()} '
          f'outside [0, {self.num_classes}) and not ignore_label '
          f'{self.ignore_label}.')
    pred = np.where((pred >= 0) & (pred < self.num_classes), pred,
                    self.num_classes)
    self._confusion += np.bincount(
        gt * (self.num_classes + 1) + pred,
        minlength=self.num_classes * (self.num_classes + 1)).reshape(
            self._confusion.shape)

  @property
  def confusion_matrix(self) -> np.ndarray:
    """[num_classes, num_classes + 1] int64; last column = no-class preds."""
    return self._confusion.copy()

  def result(self) -> Dict[str, Any]:
    """Returns {'mIoU', 'pixel_accuracy', 'per_class_iou', 'num_classes_used'}.

    mIoU and pixel accuracy are fractions; per_class_iou is a [num_classes]
    list of floats, None for classes left out of the mean (JSON-friendly).
    """
    tp = np.diag(self._confusion[:, :self.num_classes]).astype(np.float64)
    gt_total = self._confusion.sum(axis=1)
    pred_total = self._confusion[:, :self.num_classes].sum(axis=0)
    union = gt_total + pred_total - tp
    used = union > 0
    used[list(self.ignore_classes)] = False
    iou = np.full(self.num_classes, np.nan)
    iou[used] = tp[used] / union[used]
    total = gt_total.sum()
    return {
        'mIoU': float(iou[used].mean()) if used.any() else 0.0,
        'pixel_accuracy': float(tp.sum() / total) if total else 0.0,
        'per_class_iou': [float(v) if u else None for v, u in zip(iou, used)],
        'num_classes_used': int(used.sum()),
    }


def label_map_from_segments(segment_map: np.ndarray, segment_classes: np.ndarray,
                            void_label: int = common.VOID_LABEL) -> np.ndarray:
  """Turns a segment-index map into a class label map.

  Args:
    segment_map: [H, W] int, 0 = void, k -> segment k - 1 (the convention of
      the evaluation ground truth, `ops/groundtruth_codec.py`).
    segment_classes: [M] int class of each segment.
    void_label: label given to void pixels.

  Returns:
    [H, W] int32 label map.
  """
  segment_map = np.asarray(segment_map)
  lookup = np.concatenate(
      [[void_label], np.asarray(segment_classes, np.int64)])
  if segment_map.max(initial=0) >= lookup.size:
    raise ValueError(
        f'label_map_from_segments: segment id {segment_map.max()} but only '
        f'{lookup.size - 1} segment classes.')
  return lookup[segment_map].astype(np.int32)
