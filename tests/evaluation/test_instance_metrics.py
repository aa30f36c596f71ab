"""Mask AP of InstanceEvaluator and of the file-based command against COCOeval.

The reference runs pycocotools' COCO / loadRes / COCOeval directly on the real
two-image COCO sample (detection format with RLE masks).
"""

import contextlib
import copy
import io
import json
import os

import numpy as np
import pytest
from pycocotools import coco as coco_api
from pycocotools import cocoeval
from pycocotools import mask as mask_api

from official_dataseg.evaluation import evaluate
from official_dataseg.evaluation import instance_metrics

_SAMPLE_JSON = os.path.join(
    os.path.dirname(__file__), '..', '..', '..', 'shared', 'data',
    'coco_panoptic_sample', 'panoptic_coco_detection_format.json')


def _reference_stats(gt_path, detections):
  with contextlib.redirect_stdout(io.StringIO()):
    coco_gt = coco_api.COCO(gt_path)
    coco_eval = cocoeval.COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(detections)),
                                  iouType='segm')
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
  return coco_eval.stats[:6]


def _perturbed_detections(gt_json, rng):
  """Shifted, dropped, relabelled and duplicated copies of the GT masks."""
  heights = {im['id']: (im['height'], im['width']) for im in gt_json['images']}
  category_ids = [c['id'] for c in gt_json['categories']]
  detections = []
  for i, annotation in enumerate(gt_json['annotations']):
    if i % 5 == 0:
      continue  # dropped: a false negative
    height, width = heights[annotation['image_id']]
    mask = mask_api.decode(annotation['segmentation'])
    mask = np.roll(mask, (int(rng.integers(-6, 7)), int(rng.integers(-6, 7))),
                   axis=(0, 1))
    category = annotation['category_id']
    if i % 7 == 0:
      category = int(rng.choice(category_ids))  # relabelled
    for copy_index in range(1 + (i % 4 == 0)):  # some duplicates
      rle = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
      rle['counts'] = rle['counts'].decode('ascii')
      detections.append(dict(image_id=annotation['image_id'],
                             category_id=category, segmentation=rle,
                             score=float(rng.uniform(0.05, 1.0))))
  return detections


@pytest.mark.skipif(not os.path.isfile(_SAMPLE_JSON),
                    reason=f'real COCO sample not found at {_SAMPLE_JSON}')
def test_mask_ap_matches_cocoeval_on_real_sample(tmp_path):
  with open(_SAMPLE_JSON) as f:
    gt_json = json.load(f)
  rng = np.random.default_rng(0)
  detections = _perturbed_detections(gt_json, rng)
  expected = _reference_stats(_SAMPLE_JSON, detections)
  assert 0.1 < expected[0] < 0.95  # the perturbations matter

  evaluator = instance_metrics.InstanceEvaluator(gt_json['categories'])
  for image in gt_json['images']:
    annotations = [a for a in gt_json['annotations']
                   if a['image_id'] == image['id']]
    image_detections = [d for d in detections if d['image_id'] == image['id']]
    evaluator.update(
        gt_masks=np.stack([mask_api.decode(a['segmentation'])
                           for a in annotations]),
        gt_classes=np.array([a['category_id'] for a in annotations]),
        gt_is_crowd=np.array([a['iscrowd'] for a in annotations]),
        gt_is_ignored=np.zeros(len(annotations), bool),
        pred_masks=np.stack([mask_api.decode(d['segmentation'])
                             for d in image_detections]),
        pred_classes=np.array([d['category_id'] for d in image_detections]),
        pred_scores=np.array([d['score'] for d in image_detections]),
        image_id=image['id'])
  from_class = evaluator.result()

  pred_path = tmp_path / 'segm.json'
  pred_path.write_text(json.dumps(detections))
  from_command = evaluate.main(['--task', 'instance', '--gt', _SAMPLE_JSON,
                                '--pred', str(pred_path)])
  for name, value in zip(instance_metrics.AP_METRIC_NAMES, expected):
    assert from_class[name] == pytest.approx(value, abs=1e-6), name
    assert from_command[name] == pytest.approx(value, abs=1e-6), name


def _skipped_case():
  """One real object A and one skipped object B (no mask, a box)."""
  height, width = 40, 40
  gt_masks = np.zeros((2, height, width), bool)
  gt_masks[0, 2:12, 2:12] = True
  box_b = np.array([20, 20, 34, 34])  # yxyx
  pred_masks = np.zeros((2, height, width), bool)
  pred_masks[0] = gt_masks[0]
  pred_masks[1, 21:33, 21:33] = True
  return gt_masks, box_b, pred_masks


@pytest.mark.parametrize('ignore_skipped, expected_ap', [(False, 0.5),
                                                         (True, 1.0)])
def test_skipped_annotations(ignore_skipped, expected_ap, tmp_path):
  gt_masks, box_b, pred_masks = _skipped_case()
  categories = [dict(id=1, name='thing')]
  evaluator = instance_metrics.InstanceEvaluator(
      categories, ignore_skipped=ignore_skipped)
  # The prediction on the skipped object has the higher score: as a false
  # positive it halves the precision at full recall (AP 0.5).
  evaluator.update(gt_masks, [1, 1], [0, 0], [0, 1], pred_masks, [1, 1],
                   [0.9, 0.95], gt_boxes=np.stack([np.zeros(4), box_b]))
  assert evaluator.result()['AP'] == pytest.approx(expected_ap, abs=1e-6)

  rle_a = instance_metrics.encode_masks(gt_masks[:1])[0]
  # Every form of "skipped" the converter accepts: a flag (with or without a
  # segmentation, which is then not used), or no segmentation at all.
  for skipped_fields in (dict(is_ignored=1), dict(ignore=1), dict(skipped=True),
                         dict(skipped=True, segmentation=[[21, 21, 30, 21, 30, 30]]),
                         dict(segmentation=[]), dict()):
    gt_json = dict(
        images=[dict(id=1, height=40, width=40)],
        categories=categories,
        annotations=[
            dict(id=1, image_id=1, category_id=1, segmentation=rle_a, area=100,
                 bbox=[2, 2, 10, 10], iscrowd=0),
            dict(id=2, image_id=1, category_id=1, area=196, iscrowd=0,
                 bbox=[20, 20, 14, 14], **skipped_fields)])
    detections = [dict(image_id=1, category_id=1, segmentation=rle, score=s)
                  for rle, s in zip(instance_metrics.encode_masks(pred_masks),
                                    (0.9, 0.95))]
    (tmp_path / 'gt.json').write_text(json.dumps(gt_json))
    (tmp_path / 'dt.json').write_text(json.dumps(detections))
    argv = ['--task', 'instance', '--gt', str(tmp_path / 'gt.json'),
            '--pred', str(tmp_path / 'dt.json')]
    results = evaluate.main(argv + ([] if ignore_skipped else ['--no-ignore_skipped']))
    assert results['AP'] == pytest.approx(expected_ap, abs=1e-6), skipped_fields
