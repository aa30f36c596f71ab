"""Instance-segmentation mask AP with pycocotools' COCOeval (iouType='segm').

Masks are full-image binary masks at the original resolution, RLE-encoded
here. Model Garden's COCOEvaluator is not used: it pastes box-relative
Mask R-CNN crops, while DaTaSeg predicts full-image masks.

Skipped annotations (the DaTaSeg Objects365 evaluation set): raters skipped
some objects, which then have no mask. With `ignore_skipped=True` such an
annotation is given to COCOeval as a crowd ("iscrowd": 1) region, its box
(`box_region_mask`; its mask only when no box is given): COCOeval never
counts a crowd as a false negative,
and a detection matched to a crowd (IoU = intersection / detection area
> threshold) is ignored rather than a false positive. With
`ignore_skipped=False` skipped annotations are dropped, so a prediction on
them is a false positive.
"""

import contextlib
import io
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
from pycocotools import coco as coco_api
from pycocotools import cocoeval
from pycocotools import mask as mask_api

AP_METRIC_NAMES = ('AP', 'AP50', 'AP75', 'APs', 'APm', 'APl')
# COCO-format annotation fields that mark an object the raters skipped.
SKIPPED_FLAGS = ('skipped', 'is_ignored', 'ignore')


def encode_masks(masks: np.ndarray) -> List[Dict[str, Any]]:
  """RLE-encodes binary masks.

  Args:
    masks: [K, H, W] bool or 0/1 integers.

  Returns:
    K COCO RLE dicts with 'counts' as str (JSON-serialisable).
  """
  masks = np.asarray(masks)
  if masks.ndim != 3:
    raise ValueError(f'encode_masks: expected [K, H, W] masks, got {masks.shape}.')
  if masks.shape[0] == 0:
    return []
  rles = mask_api.encode(
      np.asfortranarray(np.transpose(masks > 0, (1, 2, 0)).astype(np.uint8)))
  for rle in rles:
    rle['counts'] = rle['counts'].decode('ascii')
  return rles


def coco_mask_ap(coco_gt: coco_api.COCO,
                 detections: Sequence[Mapping[str, Any]],
                 max_detections: int = 100) -> Dict[str, float]:
  """Runs COCOeval(iouType='segm') and returns the six AP numbers.

  Args:
    coco_gt: ground truth as a pycocotools COCO object.
    detections: [{'image_id', 'category_id', 'segmentation' (RLE), 'score'}].
    max_detections: detections per image considered (COCO: 100).

  Returns:
    {'AP', 'AP50', 'AP75', 'APs', 'APm', 'APl'} as fractions; -1 where
    COCOeval has no ground truth for the area range. All 0 with no detection.
  """
  if not detections:
    return {name: 0.0 for name in AP_METRIC_NAMES}
  # COCOeval prints its progress and table; keep the caller's output clean.
  with contextlib.redirect_stdout(io.StringIO()):
    coco_dt = coco_gt.loadRes(list(detections))
    evaluator = cocoeval.COCOeval(coco_gt, coco_dt, iouType='segm')
    evaluator.params.imgIds = sorted(coco_gt.getImgIds())
    evaluator.params.maxDets = [1, 10, max_detections]
    evaluator.evaluate()
    evaluator.accumulate()
  return _summarize(evaluator)


def _summarize(evaluator: cocoeval.COCOeval) -> Dict[str, float]:
  """COCOeval.summarize's six AP numbers at the last `maxDets` entry.

  `summarize` itself reads AP at 100 detections whatever `maxDets` holds (its stats[0] is -1
  when 100 is not listed), so the numbers are read from the accumulated precision here: the mean
  over IoU thresholds, recall points and categories of the entries > -1 (-1 when none).
  """
  precision = evaluator.eval['precision']  # [T, R, K, A, M]
  area_names = evaluator.params.areaRngLbl  # ['all', 'small', 'medium', 'large']
  iou_thresholds = evaluator.params.iouThrs

  def average(iou=None, area='all'):
    values = precision[:, :, :, area_names.index(area), -1]
    if iou is not None:
      values = values[np.flatnonzero(np.isclose(iou_thresholds, iou))]
    values = values[values > -1]
    return float(values.mean()) if values.size else -1.0

  return {'AP': average(), 'AP50': average(iou=0.5), 'AP75': average(iou=0.75),
          'APs': average(area='small'), 'APm': average(area='medium'),
          'APl': average(area='large')}


def box_region_mask(box_yxyx: Sequence[float], height: int, width: int) -> np.ndarray:
  """The pixels of a box: rows round(ymin)..round(ymax) - 1, the same for columns.

  The one rasterisation of a skipped object's box, used by the in-training and
  the file evaluator alike.

  Args:
    box_yxyx: (ymin, xmin, ymax, xmax) in pixels, max edges exclusive.
    height: image height H.
    width: image width W.

  Returns:
    bool [H, W].
  """
  y0, x0, y1, x1 = np.round(np.asarray(box_yxyx, np.float64)).astype(int)
  mask = np.zeros((height, width), bool)
  mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
  return mask


def is_skipped_annotation(annotation: Mapping[str, Any]) -> bool:
  """Whether a COCO-format annotation is one the raters skipped (DaTaSeg O365 set).

  Skipped: any of `SKIPPED_FLAGS` is truthy, or it has no / an empty
  `segmentation`. The converter (`tfrecords_tools/objects365.py`) and the
  file evaluator both use this rule.
  """
  return (any(annotation.get(flag) for flag in SKIPPED_FLAGS) or
          not annotation.get('segmentation'))


class InstanceEvaluator:
  """Accumulates ground truth and predictions per image, then runs COCOeval."""

  def __init__(self, categories: Sequence[Mapping[str, Any]],
               ignore_skipped: bool = False, max_detections: int = 100):
    """Initialises the evaluator.

    Args:
      categories: list of {'id': int, 'name': str}.
      ignore_skipped: treat skipped (is_ignored) annotations as crowd regions
        so that predictions on them are not false positives.
      max_detections: detections per image kept by COCOeval.
    """
    if not categories:
      raise ValueError('InstanceEvaluator: `categories` is empty.')
    self._categories = [{'id': int(c['id']), 'name': str(c['name'])}
                        for c in categories]
    self._category_ids = {c['id'] for c in self._categories}
    self.ignore_skipped = ignore_skipped
    self.max_detections = max_detections
    self.reset()

  def reset(self) -> None:
    self._images: List[Dict[str, Any]] = []
    self._annotations: List[Dict[str, Any]] = []
    self._detections: List[Dict[str, Any]] = []

  def _check_categories(self, classes: np.ndarray, where: str) -> None:
    unknown = set(np.asarray(classes).astype(int).tolist()) - self._category_ids
    if unknown:
      raise ValueError(
          f'InstanceEvaluator: {where} has unknown category ids '
          f'{sorted(unknown)[:10]}.')

  def update(self, gt_masks: np.ndarray, gt_classes: np.ndarray,
             gt_is_crowd: np.ndarray, gt_is_ignored: np.ndarray,
             pred_masks: np.ndarray, pred_classes: np.ndarray,
             pred_scores: np.ndarray,
             gt_boxes: Optional[np.ndarray] = None,
             image_id: Optional[int] = None) -> None:
    """Adds one image (all at the original resolution H x W).

    Args:
      gt_masks: [K, H, W] bool/0-1.
      gt_classes: [K] int category ids.
      gt_is_crowd: [K] bool/int.
      gt_is_ignored: [K] bool/int, skipped annotations.
      pred_masks: [P, H, W] bool/0-1 (already binarised).
      pred_classes: [P] int category ids.
      pred_scores: [P] float.
      gt_boxes: optional [K, 4] float absolute yxyx pixels; the region of a
        skipped annotation (with `ignore_skipped`; without boxes, its mask).
      image_id: optional int; defaults to a running index.
    """
    gt_masks = np.asarray(gt_masks) > 0
    pred_masks = np.asarray(pred_masks) > 0
    if gt_masks.ndim != 3 or pred_masks.ndim != 3:
      raise ValueError('InstanceEvaluator: masks must be [K, H, W]; got '
                       f'{gt_masks.shape} and {pred_masks.shape}.')
    if gt_masks.shape[1:] != pred_masks.shape[1:] and pred_masks.shape[0]:
      raise ValueError(
          f'InstanceEvaluator: ground-truth masks are {gt_masks.shape[1:]} but '
          f'predicted masks {pred_masks.shape[1:]}.')
    num_gt = gt_masks.shape[0]
    for name, values, size in (('gt_classes', gt_classes, num_gt),
                               ('gt_is_crowd', gt_is_crowd, num_gt),
                               ('gt_is_ignored', gt_is_ignored, num_gt),
                               ('pred_classes', pred_classes, len(pred_masks)),
                               ('pred_scores', pred_scores, len(pred_masks))):
      if len(values) != size:
        raise ValueError(
            f'InstanceEvaluator: {name} has {len(values)} entries, expected '
            f'{size}.')
    self._check_categories(gt_classes, 'gt_classes')
    self._check_categories(pred_classes, 'pred_classes')
    height, width = gt_masks.shape[1:]
    if image_id is None:
      image_id = len(self._images) + 1
    self._images.append({'id': int(image_id), 'height': int(height),
                         'width': int(width)})

    gt_is_crowd = np.asarray(gt_is_crowd).astype(bool)
    gt_is_ignored = np.asarray(gt_is_ignored).astype(bool)
    gt_masks = gt_masks.copy()
    if self.ignore_skipped and gt_boxes is not None:
      for k in np.flatnonzero(gt_is_ignored):
        gt_masks[k] = box_region_mask(gt_boxes[k], height, width)
    keep = ~gt_is_ignored | self.ignore_skipped
    as_crowd = gt_is_crowd | gt_is_ignored
    rles = encode_masks(gt_masks)
    for k in np.flatnonzero(keep):
      self._annotations.append({
          'id': len(self._annotations) + 1,
          'image_id': int(image_id),
          'category_id': int(gt_classes[k]),
          'segmentation': rles[k],
          'area': float(mask_api.area(rles[k])),
          'bbox': mask_api.toBbox(rles[k]).tolist(),
          'iscrowd': int(as_crowd[k]),
      })
    for rle, category, score in zip(encode_masks(pred_masks), pred_classes,
                                    pred_scores):
      self._detections.append({
          'image_id': int(image_id), 'category_id': int(category),
          'segmentation': rle, 'score': float(score)})

  def result(self) -> Dict[str, float]:
    """Returns {'AP', 'AP50', 'AP75', 'APs', 'APm', 'APl'} as fractions."""
    coco_gt = coco_api.COCO()
    coco_gt.dataset = {'images': self._images,
                       'annotations': self._annotations,
                       'categories': self._categories}
    with contextlib.redirect_stdout(io.StringIO()):
      coco_gt.createIndex()
    return coco_mask_ap(coco_gt, self._detections, self.max_detections)
