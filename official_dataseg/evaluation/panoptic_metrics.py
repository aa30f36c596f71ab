"""Panoptic quality (PQ, SQ, RQ) with the COCO panoptic definition, on the host.

The definition is the one of the COCO panoptic API (Kirillov et al., 2019):
- a predicted and a ground-truth segment of the same category match when
  their IoU > 0.5; the union leaves out the predicted pixels that fall on
  ground-truth void (id 0);
- crowd ground-truth segments never match and are never false negatives;
- an unmatched prediction is not a false positive when more than half of it
  lies on void or on a crowd region of its own category;
- PQ of a category = sum(IoU of matches) / (TP + FP / 2 + FN / 2); the
  overall, things and stuff numbers average over the categories of that kind
  with TP + FP + FN > 0.

Model Garden's `panoptic_quality.PanopticQuality` is close but not the same:
it treats every crowd region as ignored for every category (COCO ignores a
prediction only on a crowd of its own category) and takes category/instance
maps rather than segment ids with per-segment crowd flags. So this module
implements the COCO rules on segment-id maps, which is also the file format.
"""

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

VOID_SEGMENT_ID = 0
# Segment ids of a COCO panoptic PNG fit in 24 bits (R + 256 G + 256^2 B).
_SEGMENT_ID_OFFSET = 256 ** 3


class PanopticEvaluator:
  """Accumulates COCO PQ statistics image by image.

  Segments are described as in the COCO panoptic JSON: a map of segment ids
  (0 = void) plus a list of {'id', 'category_id', 'iscrowd'} dicts ('iscrowd'
  optional, only read for ground truth).
  """

  def __init__(self, categories: Sequence[Mapping[str, Any]]):
    """Initialises the evaluator.

    Args:
      categories: list of {'id': int, 'name': str, 'isthing': 0/1 or bool}.
    """
    if not categories:
      raise ValueError('PanopticEvaluator: `categories` is empty.')
    for category in categories:
      for key in ('id', 'name', 'isthing'):
        if key not in category:
          raise ValueError(
              f'PanopticEvaluator: category {category!r} lacks {key!r}.')
    self._categories = [dict(c) for c in categories]
    self._index_of_category = {
        int(c['id']): i for i, c in enumerate(self._categories)}
    self._is_thing = np.array(
        [bool(c['isthing']) for c in self._categories])
    self.reset()

  def reset(self) -> None:
    num_categories = len(self._categories)
    self._tp = np.zeros(num_categories, np.int64)
    self._fp = np.zeros(num_categories, np.int64)
    self._fn = np.zeros(num_categories, np.int64)
    self._iou_sum = np.zeros(num_categories, np.float64)
    self._num_images = 0

  def _category_index(self, category_id: int, where: str) -> int:
    if category_id not in self._index_of_category:
      raise ValueError(
          f'PanopticEvaluator: {where} has category_id {category_id}, which '
          f'is not among the {len(self._categories)} categories.')
    return self._index_of_category[category_id]

  def update(self, gt_segment_map: np.ndarray,
             gt_segments: Sequence[Mapping[str, Any]],
             pred_segment_map: np.ndarray,
             pred_segments: Sequence[Mapping[str, Any]]) -> None:
    """Adds one image.

    Args:
      gt_segment_map: [H, W] integer segment ids, 0 = void.
      gt_segments: [{'id', 'category_id', 'iscrowd'}] for the ids in the map.
      pred_segment_map: [H, W] integer segment ids, 0 = void.
      pred_segments: [{'id', 'category_id'}]. Every non-zero id of the map
        must be listed; listed segments absent from the map are skipped.

    Raises:
      ValueError: on shape mismatch, unknown ids or unknown categories.
    """
    gt_segment_map = np.asarray(gt_segment_map).astype(np.int64)
    pred_segment_map = np.asarray(pred_segment_map).astype(np.int64)
    if gt_segment_map.shape != pred_segment_map.shape:
      raise ValueError(
          f'PanopticEvaluator: ground truth is {gt_segment_map.shape} but '
          f'prediction is {pred_segment_map.shape}; map predictions back to '
          'the original size first.')
    gt_info = {int(s['id']): s for s in gt_segments}
    pred_info = {int(s['id']): s for s in pred_segments}

    pred_ids, pred_counts = np.unique(pred_segment_map, return_counts=True)
    pred_area = dict(zip(pred_ids.tolist(), pred_counts.tolist()))
    for segment_id in pred_area:
      if segment_id != VOID_SEGMENT_ID and segment_id not in pred_info:
        raise ValueError(
            f'PanopticEvaluator: predicted segment id {segment_id} is in the '
            'map but not in the segments list.')
    gt_ids, gt_counts = np.unique(gt_segment_map, return_counts=True)
    gt_area = dict(zip(gt_ids.tolist(), gt_counts.tolist()))
    for segment_id in gt_area:
      if segment_id != VOID_SEGMENT_ID and segment_id not in gt_info:
        raise ValueError(
            f'PanopticEvaluator: ground-truth segment id {segment_id} is in '
            'the map but not in the segments list.')

    # One pass over the joint labelling gives every pairwise intersection.
    joint = gt_segment_map * _SEGMENT_ID_OFFSET + pred_segment_map
    joint_ids, joint_counts = np.unique(joint, return_counts=True)
    intersection = {
        (int(j // _SEGMENT_ID_OFFSET), int(j % _SEGMENT_ID_OFFSET)): int(n)
        for j, n in zip(joint_ids.tolist(), joint_counts.tolist())}

    gt_category = {
        i: self._category_index(int(s['category_id']), f'ground-truth segment {i}')
        for i, s in gt_info.items()}
    pred_category = {
        i: self._category_index(int(s['category_id']), f'predicted segment {i}')
        for i, s in pred_info.items() if i in pred_area}
    is_crowd = {i: bool(s.get('iscrowd', 0)) for i, s in gt_info.items()}

    gt_matched, pred_matched = set(), set()
    for (gt_id, pred_id), overlap in intersection.items():
      if gt_id not in gt_info or pred_id not in pred_category:
        continue
      if is_crowd[gt_id] or gt_category[gt_id] != pred_category[pred_id]:
        continue
      union = (pred_area[pred_id] + gt_area[gt_id] - overlap -
               intersection.get((VOID_SEGMENT_ID, pred_id), 0))
      iou = overlap / union
      if iou > 0.5:
        self._tp[gt_category[gt_id]] += 1
        self._iou_sum[gt_category[gt_id]] += iou
        gt_matched.add(gt_id)
        pred_matched.add(pred_id)

    crowd_ids_of_category: Dict[int, List[int]] = {}
    for gt_id in gt_info:
      if is_crowd[gt_id]:
        crowd_ids_of_category.setdefault(gt_category[gt_id], []).append(gt_id)
      elif gt_id not in gt_matched:
        self._fn[gt_category[gt_id]] += 1

    for pred_id, category in pred_category.items():
      if pred_id in pred_matched:
        continue
      ignored = intersection.get((VOID_SEGMENT_ID, pred_id), 0)
      for crowd_id in crowd_ids_of_category.get(category, ()):
        ignored += intersection.get((crowd_id, pred_id), 0)
      if ignored / pred_area[pred_id] > 0.5:
        continue
      self._fp[category] += 1
    self._num_images += 1

  def update_from_arrays(self, gt_segment_map: np.ndarray,
                         gt_category_ids: np.ndarray,
                         gt_is_crowd: np.ndarray,
                         pred_segment_map: np.ndarray,
                         pred_category_ids: np.ndarray,
                         pred_valid: Optional[np.ndarray] = None) -> None:
    """Adds one image given as segment maps plus padded per-segment arrays.

    Segment id k >= 1 in a map is described by entry k - 1 of the arrays (the
    convention of the evaluation ground truth and of `panoptic_inference`).

    Args:
      gt_segment_map: [H, W] int, 0 = void.
      gt_category_ids: [M] int category id of segment k at index k - 1.
      gt_is_crowd: [M] bool/int.
      pred_segment_map: [H, W] int, 0 = void.
      pred_category_ids: [N] int.
      pred_valid: optional [N] bool; invalid entries are not segments.
    """
    gt_segments = [
        {'id': k + 1, 'category_id': int(c), 'iscrowd': int(bool(crowd))}
        for k, (c, crowd) in enumerate(zip(gt_category_ids, gt_is_crowd))]
    if pred_valid is None:
      pred_valid = np.ones(len(pred_category_ids), bool)
    pred_segments = [
        {'id': k + 1, 'category_id': int(c)}
        for k, (c, valid) in enumerate(zip(pred_category_ids, pred_valid))
        if valid]
    # Only ids that occur need a description; padding entries never occur.
    present_gt = set(np.unique(gt_segment_map).tolist())
    gt_segments = [s for s in gt_segments if s['id'] in present_gt]
    self.update(gt_segment_map, gt_segments, pred_segment_map, pred_segments)

  def result(self) -> Dict[str, Any]:
    """Returns PQ/SQ/RQ overall, for things and for stuff, and per category.

    Returns:
      {'All': {'pq','sq','rq','n'}, 'Things': ..., 'Stuff': ...,
       'per_class': {category_id: {'pq','sq','rq'}}, 'num_images': int}.
      Values are fractions in [0, 1]; an average over no category is 0.
    """
    counted = self._tp + 0.5 * self._fp + 0.5 * self._fn
    valid = (self._tp + self._fp + self._fn) > 0
    safe_counted = np.where(valid, counted, 1.0)
    pq = np.where(valid, self._iou_sum / safe_counted, 0.0)
    sq = np.where(self._tp > 0, self._iou_sum / np.maximum(self._tp, 1), 0.0)
    rq = np.where(valid, self._tp / safe_counted, 0.0)
    results: Dict[str, Any] = {}
    for name, selected in (('All', np.ones_like(valid)),
                           ('Things', self._is_thing),
                           ('Stuff', ~self._is_thing)):
      used = valid & selected
      n = int(used.sum())
      results[name] = {
          'pq': float(pq[used].sum() / n) if n else 0.0,
          'sq': float(sq[used].sum() / n) if n else 0.0,
          'rq': float(rq[used].sum() / n) if n else 0.0,
          'n': n,
      }
    results['per_class'] = {
        int(c['id']): {'pq': float(pq[i]), 'sq': float(sq[i]),
                       'rq': float(rq[i])}
        for i, c in enumerate(self._categories)}
    results['num_images'] = self._num_images
    return results
