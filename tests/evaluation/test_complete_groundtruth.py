"""An image with 300 ground-truth objects, far more than `max_instances` (16): the in-training
path (decoder -> evaluation parser -> DatasetEvaluator) scores against all of them.

PQ equals the cityscapesscripts reference and mask AP equals pycocotools COCOeval, both computed
here on the complete ground truth; scored against the first 16 objects only (the old truncation)
the numbers would differ.
"""
import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools import coco as coco_api
from pycocotools import cocoeval
from pycocotools import mask as mask_api
import tensorflow as tf

from official_dataseg import common
from official_dataseg.configs import data as data_config
from official_dataseg.dataloaders import dataseg_parser
from official_dataseg.dataloaders import tf_example_decoder
from official_dataseg.evaluation import dataset_evaluator
from official_dataseg.evaluation import file_formats
from official_dataseg.evaluation import instance_metrics
from tests.dataloaders import tfexample_helpers

HEIGHT, WIDTH, CELL = 60, 80, 4  # 15 x 20 cells of 4 x 4 pixels: 300 objects.
NUM_OBJECTS = (HEIGHT // CELL) * (WIDTH // CELL)
MAX_INSTANCES = 16
NUM_CLASSES = 5
INPUT_SIZE = 80  # Long side: scale 1; the stride-4 grid has one pixel per cell.
IS_THING = [True, True, True, True, False]


def _objects():
  """Segment map (k -> object k-1), per-object masks, classes and crowd flags."""
  rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
  segment_map = (rows // CELL) * (WIDTH // CELL) + cols // CELL + 1
  masks = np.stack([segment_map == k + 1 for k in range(NUM_OBJECTS)]).astype(np.uint8)
  classes = np.arange(NUM_OBJECTS) % NUM_CLASSES
  # One crowd segment per category at most (COCO's PQ honours one per category and image).
  is_crowd = np.isin(np.arange(NUM_OBJECTS), [5, 42, 79, 116])
  return segment_map.astype(np.int32), masks, classes, is_crowd


def _evaluation_inputs(task_type, segment_map, masks, classes, is_crowd):
  """The evaluation parser's output (batch of one) for the serialized example."""
  serialized = tfexample_helpers.make_example(
      np.zeros((HEIGHT, WIDTH, 3), np.uint8), classes.tolist(),
      [[0.0, 0.0, 1.0, 1.0]] * NUM_OBJECTS,
      segment_map=segment_map if task_type == common.TASK_PANOPTIC else None,
      instance_masks=masks if task_type == common.TASK_INSTANCE else None,
      is_crowd=is_crowd.astype(int).tolist())
  decoded = tf_example_decoder.DataSegDecoder(task_type == common.TASK_INSTANCE).decode(
      tf.constant(serialized))
  parser = dataseg_parser.DataSegParser(task_type, 0, [INPUT_SIZE, INPUT_SIZE], MAX_INSTANCES,
                                        [INPUT_SIZE, INPUT_SIZE])
  return {key: np.asarray([value.numpy()]) for key, value in parser.parse_fn(False)(decoded).items()}


def _logits(classes):
  """One query per cell (on the stride-4 grid); every fifth query calls the wrong class."""
  grid = np.arange(NUM_OBJECTS).reshape(HEIGHT // CELL, WIDTH // CELL)
  mask_logits = np.full((NUM_OBJECTS, INPUT_SIZE // 4, INPUT_SIZE // 4), -8.0, np.float32)
  class_logits = np.full((NUM_OBJECTS, NUM_CLASSES + 1), -4.0, np.float32)
  for k in range(NUM_OBJECTS):
    mask_logits[k, :HEIGHT // 4, :WIDTH // 4][grid == k] = 8.0
    label = (classes[k] + 1) % NUM_CLASSES if k % 5 == 2 else classes[k]
    class_logits[k, label] = 4.0 + (k % 7) * 0.1  # Distinct scores.
  return mask_logits, class_logits


def _evaluate(task_type, inputs, mask_logits, class_logits, **config):
  config = data_config.DatasetConfig(name='dense', task_type=task_type, **config)
  evaluator = dataset_evaluator.DatasetEvaluator(
      config, [f'c{i}' for i in range(NUM_CLASSES)], IS_THING, keep_examples=1)
  evaluator.update(dict(inputs, **{
      dataset_evaluator.PREDICTED_MASK_LOGITS: mask_logits[None],
      dataset_evaluator.PREDICTED_CLASS_LOGITS: class_logits[None]}))
  return evaluator.result(), evaluator.examples[0]['prediction']


def _reference_pq(tmp_path, tag, segment_map, classes, is_crowd, prediction, keep):
  reference = pytest.importorskip(
      'cityscapesscripts.evaluation.evalPanopticSemanticLabeling',
      reason='cityscapesscripts (the reference PQ) is not installed')
  categories = {c + 1: {'id': c + 1, 'name': f'c{c}', 'isthing': int(IS_THING[c])}
                for c in range(NUM_CLASSES)}
  gt_map = np.where(np.isin(segment_map, np.flatnonzero(keep) + 1), segment_map, 0)
  file_formats.write_panoptic_prediction(str(tmp_path / f'gt_{tag}'), 'image.png', gt_map)
  file_formats.write_panoptic_prediction(str(tmp_path / f'pred_{tag}'), 'image.png',
                                         prediction['segment_map'])
  gt_annotation = {'image_id': 1, 'file_name': 'image.png', 'segments_info': [
      {'id': k + 1, 'category_id': int(classes[k]) + 1, 'iscrowd': int(is_crowd[k]),
       'area': int((segment_map == k + 1).sum())} for k in np.flatnonzero(keep)]}
  present = sorted(set(np.unique(prediction['segment_map']).tolist()) - {0})
  pred_annotation = {'image_id': 1, 'file_name': 'image.png', 'segments_info': [
      {'id': s, 'category_id': int(prediction['segment_classes'][s - 1]) + 1}
      for s in present]}
  stats = reference.pq_compute_single_core(0, [(gt_annotation, pred_annotation)],
                                           str(tmp_path / f'gt_{tag}'),
                                           str(tmp_path / f'pred_{tag}'), categories)
  return reference.average_pq(stats, categories)['All']['pq']


def test_panoptic_quality_counts_all_300_segments(tmp_path):
  segment_map, masks, classes, is_crowd = _objects()
  inputs = _evaluation_inputs(common.TASK_PANOPTIC, segment_map, masks, classes, is_crowd)
  result, prediction = _evaluate(common.TASK_PANOPTIC, inputs, *_logits(classes),
                                 panoptic_confidence_threshold=0.5)
  assert len(set(np.unique(prediction['segment_map']).tolist()) - {0}) > 200
  everything = np.ones(NUM_OBJECTS, bool)
  expected = _reference_pq(tmp_path, 'all', segment_map, classes, is_crowd, prediction,
                           everything)
  truncated = _reference_pq(tmp_path, 'first16', segment_map, classes, is_crowd, prediction,
                            np.arange(NUM_OBJECTS) < MAX_INSTANCES)
  print(f'PQ {result["PQ"]:.4f}; reference {100 * expected:.4f}; on 16 objects '
        f'{100 * truncated:.4f}')
  assert result['PQ'] == pytest.approx(100.0 * expected, abs=1e-6)
  assert truncated != pytest.approx(expected, abs=1e-3)


def _reference_mask_ap(masks, classes, is_crowd, prediction, keep):
  images = [{'id': 1, 'height': HEIGHT, 'width': WIDTH}]
  annotations = []
  for k in np.flatnonzero(keep):
    rle = mask_api.encode(np.asfortranarray(masks[k]))
    annotations.append({'id': k + 1, 'image_id': 1, 'category_id': int(classes[k]) + 1,
                        'segmentation': rle, 'area': float(masks[k].sum()),
                        'iscrowd': int(is_crowd[k]), 'bbox': list(mask_api.toBbox(rle))})
  detections = []
  for mask, label, score in zip(prediction['masks'], prediction['classes'],
                                prediction['scores']):
    detections.append({'image_id': 1, 'category_id': int(label) + 1, 'score': float(score),
                       'segmentation': mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))})
  with contextlib.redirect_stdout(io.StringIO()):
    coco_gt = coco_api.COCO()
    coco_gt.dataset = {'images': images, 'annotations': annotations,
                       'categories': [{'id': c + 1, 'name': f'c{c}'}
                                      for c in range(NUM_CLASSES)]}
    coco_gt.createIndex()
    evaluator = cocoeval.COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(detections)), 'segm')
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
  return float(evaluator.stats[0])


def test_mask_ap_counts_all_300_objects():
  segment_map, masks, classes, is_crowd = _objects()
  inputs = _evaluation_inputs(common.TASK_INSTANCE, segment_map, masks, classes, is_crowd)
  # COCO's 100 detections (the reference's default); 300 below.
  result, prediction = _evaluate(common.TASK_INSTANCE, inputs, *_logits(classes))
  assert len(prediction['scores']) == 100
  expected = _reference_mask_ap(masks, classes, is_crowd, prediction, np.ones(NUM_OBJECTS, bool))
  truncated = _reference_mask_ap(masks, classes, is_crowd, prediction,
                                 np.arange(NUM_OBJECTS) < MAX_INSTANCES)
  print(f'mask AP {result["mask_AP"]:.4f}; reference {100 * expected:.4f}; on 16 objects '
        f'{100 * truncated:.4f}')
  assert result['mask_AP'] == pytest.approx(100.0 * expected, abs=1e-6)
  assert truncated != pytest.approx(expected, abs=1e-3)


def test_mask_ap_with_more_than_100_detections():
  """`max_detections` 300: the AP of the 100-detection case is unchanged (no image has more),
  and with 300 detections AP is no longer -1 (pycocotools' summarize reads 100 only)."""
  segment_map, masks, classes, is_crowd = _objects()
  inputs = _evaluation_inputs(common.TASK_INSTANCE, segment_map, masks, classes, is_crowd)
  result_100, prediction = _evaluate(common.TASK_INSTANCE, inputs, *_logits(classes))
  coco_gt = coco_api.COCO()
  rles = [mask_api.encode(np.asfortranarray(m)) for m in masks]
  coco_gt.dataset = {
      'images': [{'id': 1, 'height': HEIGHT, 'width': WIDTH}],
      'annotations': [{'id': k + 1, 'image_id': 1, 'category_id': int(classes[k]) + 1,
                       'segmentation': rles[k], 'area': 16.0, 'iscrowd': int(is_crowd[k]),
                       'bbox': list(mask_api.toBbox(rles[k]))} for k in range(NUM_OBJECTS)],
      'categories': [{'id': c + 1, 'name': f'c{c}'} for c in range(NUM_CLASSES)]}
  with contextlib.redirect_stdout(io.StringIO()):
    coco_gt.createIndex()
  detections = [{'image_id': 1, 'category_id': int(label) + 1, 'score': float(score),
                 'segmentation': mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))}
                for mask, label, score in zip(prediction['masks'], prediction['classes'],
                                              prediction['scores'])]
  at_300 = instance_metrics.coco_mask_ap(coco_gt, copy.deepcopy(detections), max_detections=300)
  assert at_300['AP'] == pytest.approx(result_100['mask_AP'] / 100, abs=1e-9)
  result_300, _ = _evaluate(common.TASK_INSTANCE, inputs, *_logits(classes),
                            max_detections=NUM_OBJECTS)
  assert result_300['mask_AP'] > result_100['mask_AP'] > 0
