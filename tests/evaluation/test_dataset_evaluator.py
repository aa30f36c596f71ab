"""The in-training evaluator (model logits -> original size -> panoptic read-out -> PQ) on the real
two-image COCO sample equals the cityscapesscripts reference PQ of the segments it predicted."""
import copy
import os

import numpy as np
import pytest

from official_dataseg import common
from official_dataseg.configs import data as data_config
from official_dataseg.evaluation import dataset_evaluator
from official_dataseg.evaluation import file_formats
from official_dataseg.ops import groundtruth_codec

_SAMPLE_DIR = os.path.join(os.path.dirname(__file__), '..', '..', '..',
                           'shared', 'data', 'coco_panoptic_sample')
_SAMPLE_JSON = os.path.join(_SAMPLE_DIR, 'panoptic_examples.json')
_SAMPLE_PNGS = os.path.join(_SAMPLE_DIR, 'panoptic_examples')
INPUT_SIZE = 640  # Long side of both sample images: scale 1, padded to 640 x 640.
STRIDE = 4
NUM_QUERIES = 40

pytestmark = pytest.mark.skipif(
    not os.path.isfile(_SAMPLE_JSON),
    reason=f'real COCO panoptic sample not found at {_SAMPLE_DIR}')


def _batch_for_image(annotation, segment_ids, categories, rng):
  """Evaluation inputs (ground truth) and model logits that predict most GT segments."""
  index_of_category = {c['id']: i for i, c in enumerate(categories)}
  height, width = segment_ids.shape
  segments = annotation['segments_info']
  gt_map = np.zeros([height, width], np.int32)
  classes = np.zeros([len(segments)], np.int32)
  crowd = np.zeros([len(segments)], bool)
  for k, segment in enumerate(segments):
    gt_map[segment_ids == segment['id']] = k + 1
    classes[k] = index_of_category[segment['category_id']]
    crowd[k] = segment['iscrowd']
  # Predictions at stride 4 of the padded 640 x 640 input: one query per kept GT segment (every
  # fourth dropped), a few relabelled, the rest predicting background.
  grid = INPUT_SIZE // STRIDE
  coarse = np.zeros([grid, grid], np.int64)
  coarse[:height // STRIDE, :width // STRIDE] = segment_ids[STRIDE // 2::STRIDE,
                                                            STRIDE // 2::STRIDE][
                                                                :height // STRIDE,
                                                                :width // STRIDE]
  mask_logits = np.full([NUM_QUERIES, grid, grid], -8.0, np.float32)
  class_logits = np.full([NUM_QUERIES, len(categories) + 1], -5.0, np.float32)
  class_logits[:, -1] = 8.0  # Background by default.
  for k, segment in enumerate(segments):
    if k % 4 == 3:
      continue
    mask_logits[k][coarse == segment['id']] = 8.0
    label = index_of_category[segment['category_id']]
    if k % 5 == 1:
      label = int(rng.integers(len(categories)))
    class_logits[k] = -5.0
    class_logits[k, label] = 8.0
  image_info = np.array([[height, width], [height, width], [1.0, 1.0], [0.0, 0.0]],
                        np.float32)
  return {
      dataset_evaluator.PREDICTED_MASK_LOGITS: mask_logits[None],
      dataset_evaluator.PREDICTED_CLASS_LOGITS: class_logits[None],
      common.IMAGE_INFO: image_info[None],
      common.EVAL_GROUNDTRUTH: np.array([groundtruth_codec.encode_groundtruth(
          gt_map, classes, crowd, np.zeros_like(crowd),
          np.zeros([len(segments), 4], np.float32)).numpy()]),
      common.EVAL_IS_PADDING: np.zeros([1], bool),
  }


def test_in_training_panoptic_evaluator_matches_reference(tmp_path):
  reference = pytest.importorskip(
      'cityscapesscripts.evaluation.evalPanopticSemanticLabeling',
      reason='cityscapesscripts (the reference PQ) is not installed')
  gt_json = file_formats.read_json(_SAMPLE_JSON)
  categories = sorted(gt_json['categories'], key=lambda c: c['id'])
  config = data_config.DatasetConfig(name='coco_sample', task_type=common.TASK_PANOPTIC,
                                     panoptic_confidence_threshold=0.8)
  evaluator = dataset_evaluator.DatasetEvaluator(
      config, [c['name'] for c in categories], [bool(c['isthing']) for c in categories],
      keep_examples=2)
  rng = np.random.default_rng(0)
  for annotation in gt_json['annotations']:
    segment_ids = file_formats.read_panoptic_png(os.path.join(_SAMPLE_PNGS,
                                                              annotation['file_name']))
    evaluator.update(_batch_for_image(annotation, segment_ids, categories, rng))
  result = evaluator.result()

  # The reference scores exactly what the evaluator predicted (its kept examples).
  pred_folder = str(tmp_path / 'pred')
  pred_annotations = []
  for annotation, example in zip(gt_json['annotations'], evaluator.examples):
    prediction = example['prediction']
    segment_map = prediction['segment_map']
    file_formats.write_panoptic_prediction(pred_folder, annotation['file_name'], segment_map)
    present = set(np.unique(segment_map).tolist()) - {0}
    pred_annotations.append(dict(
        image_id=annotation['image_id'], file_name=annotation['file_name'],
        segments_info=[dict(id=s, category_id=categories[
            prediction['segment_classes'][s - 1]]['id']) for s in sorted(present)]))
  assert sum(len(a['segments_info']) for a in pred_annotations) > 10
  by_id = {c['id']: c for c in categories}
  pairs = [(copy.deepcopy(g), copy.deepcopy(p))
           for g, p in zip(gt_json['annotations'], pred_annotations)]
  stats = reference.pq_compute_single_core(0, pairs, _SAMPLE_PNGS, pred_folder, by_id)
  expected = reference.average_pq(stats, by_id)
  for name, suffix in (('All', ''), ('Things', '_th'), ('Stuff', '_st')):
    for metric in ('pq', 'sq', 'rq'):
      assert result[metric.upper() + suffix] == pytest.approx(
          100.0 * expected[name][metric], abs=1e-4), (name, metric)
  print(f"in-training evaluator PQ {result['PQ']:.4f}, reference {100 * expected['All']['pq']:.4f}")
  assert 20.0 < result['PQ'] < 100.0  # Dropped and relabelled segments cost PQ.
