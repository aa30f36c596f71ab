"""PQ of PanopticEvaluator and of the file-based command against cityscapesscripts.

The reference is the COCO PQ implementation shipped in the `cityscapesscripts`
PyPI package (evalPanopticSemanticLabeling), run on the real two-image COCO
panoptic sample with perturbed predictions.
"""

import copy
import json
import os

import numpy as np
import pytest

from official_dataseg.evaluation import evaluate
from official_dataseg.evaluation import file_formats
from official_dataseg.evaluation import panoptic_metrics

_SAMPLE_DIR = os.path.join(os.path.dirname(__file__), '..', '..', '..',
                           'shared', 'data', 'coco_panoptic_sample')
_SAMPLE_JSON = os.path.join(_SAMPLE_DIR, 'panoptic_examples.json')
_SAMPLE_PNGS = os.path.join(_SAMPLE_DIR, 'panoptic_examples')

pytestmark = pytest.mark.skipif(
    not os.path.isfile(_SAMPLE_JSON),
    reason=f'real COCO panoptic sample not found at {_SAMPLE_DIR}')


def _load_sample():
  gt_json = file_formats.read_json(_SAMPLE_JSON)
  maps = {a['image_id']: file_formats.read_panoptic_png(
      os.path.join(_SAMPLE_PNGS, a['file_name'])) for a in gt_json['annotations']}
  return gt_json, maps


def _perturb(gt_json, maps, kind, rng):
  """Returns (pred annotations, pred maps) derived from the ground truth."""
  categories = gt_json['categories']
  things = [c['id'] for c in categories if c['isthing']]
  stuff = [c['id'] for c in categories if not c['isthing']]
  annotations, pred_maps = [], {}
  for annotation in gt_json['annotations']:
    segment_map = maps[annotation['image_id']].copy()
    segments = [dict(id=s['id'], category_id=s['category_id'])
                for s in annotation['segments_info']]
    if kind in ('drop', 'mix'):
      for s in segments[::3]:
        segment_map[segment_map == s['id']] = 0
      segments = [s for i, s in enumerate(segments) if i % 3]
    if kind in ('merge', 'mix'):
      people = [s for s in segments if s['category_id'] == 1][:4]
      for s in people[1:]:
        segment_map[segment_map == s['id']] = people[0]['id']
      segments = [s for s in segments if s not in people[1:]]
    if kind in ('shift', 'mix'):
      segment_map = np.roll(segment_map, (7, -11), axis=(0, 1))
    if kind in ('relabel', 'mix'):
      for s in segments[1::4]:
        pool = things if s['category_id'] in things else stuff
        s['category_id'] = int(rng.choice(pool))
    if kind == 'spurious':
      # A new segment over void and crowd pixels plus one over a stuff area.
      next_id = max(s['id'] for s in segments) + 1
      crowd_ids = [s['id'] for s in annotation['segments_info'] if s['iscrowd']]
      region = np.isin(segment_map, crowd_ids) | (segment_map == 0)
      segment_map[region] = next_id
      segments.append(dict(id=next_id, category_id=1))
      segment_map[:40, :60] = next_id + 1
      segments.append(dict(id=next_id + 1, category_id=int(rng.choice(things))))
    present = set(np.unique(segment_map).tolist())
    segments = [s for s in segments if s['id'] in present]
    annotations.append(dict(image_id=annotation['image_id'],
                            file_name=annotation['file_name'],
                            segments_info=segments))
    pred_maps[annotation['file_name']] = segment_map
  return annotations, pred_maps


def _reference_pq(gt_json, pred_json, pred_folder):
  reference = pytest.importorskip(
      'cityscapesscripts.evaluation.evalPanopticSemanticLabeling',
      reason='cityscapesscripts (the reference PQ) is not installed')
  categories = {c['id']: c for c in gt_json['categories']}
  pred_by_image = {a['image_id']: a for a in pred_json['annotations']}
  pairs = [(copy.deepcopy(a), copy.deepcopy(pred_by_image[a['image_id']]))
           for a in gt_json['annotations']]
  stats = reference.pq_compute_single_core(0, pairs, _SAMPLE_PNGS, pred_folder,
                                           categories)
  return reference.average_pq(stats, categories)


@pytest.mark.parametrize(
    'kind', ['identity', 'drop', 'merge', 'shift', 'relabel', 'spurious', 'mix'])
def test_pq_matches_cityscapesscripts(kind, tmp_path):
  gt_json, maps = _load_sample()
  rng = np.random.default_rng(0)
  annotations, pred_maps = _perturb(gt_json, maps, kind, rng)
  pred_folder = str(tmp_path / 'pred')
  for file_name, segment_map in pred_maps.items():
    file_formats.write_panoptic_prediction(pred_folder, file_name, segment_map)
  pred_json = dict(annotations=annotations, categories=gt_json['categories'])
  pred_json_path = str(tmp_path / 'pred.json')
  with open(pred_json_path, 'w') as f:
    json.dump(pred_json, f)

  expected = _reference_pq(gt_json, pred_json, pred_folder)

  evaluator = panoptic_metrics.PanopticEvaluator(gt_json['categories'])
  for annotation, pred in zip(gt_json['annotations'], annotations):
    evaluator.update(maps[annotation['image_id']], annotation['segments_info'],
                     pred_maps[pred['file_name']], pred['segments_info'])
  from_class = evaluator.result()

  output_path = str(tmp_path / 'metrics.json')
  from_command = evaluate.main([
      '--task', 'panoptic', '--gt', _SAMPLE_JSON, '--gt_folder', _SAMPLE_PNGS,
      '--pred', pred_json_path, '--pred_folder', pred_folder,
      '--output', output_path])
  with open(output_path) as f:
    from_file = json.load(f)

  for name in ('All', 'Things', 'Stuff'):
    for metric in ('pq', 'sq', 'rq', 'n'):
      for results in (from_class, from_command, from_file):
        assert results[name][metric] == pytest.approx(
            expected[name][metric], abs=1e-6), (name, metric)
  for category_id, row in expected['per_class'].items():
    for metric in ('pq', 'sq', 'rq'):
      assert from_class['per_class'][category_id][metric] == pytest.approx(
          row[metric], abs=1e-6)
  if kind == 'identity':
    assert from_class['All']['pq'] == pytest.approx(1.0)
  else:
    assert from_class['All']['pq'] < 1.0


def test_crowd_ignores_only_its_own_category():
  # GT: void-free 4x4; left half a crowd of category 1, right half stuff 2.
  categories = [dict(id=1, name='person', isthing=1),
                dict(id=2, name='sky', isthing=0),
                dict(id=3, name='car', isthing=1)]
  gt_map = np.array([[1, 1, 2, 2]] * 4)
  gt_segments = [dict(id=1, category_id=1, iscrowd=1),
                 dict(id=2, category_id=2, iscrowd=0)]
  pred_map = gt_map.copy()
  # A person prediction on the person crowd is ignored; a car one is an FP.
  for category, expected_fp in ((1, 0), (3, 1)):
    evaluator = panoptic_metrics.PanopticEvaluator(categories)
    evaluator.update(gt_map, gt_segments, pred_map,
                     [dict(id=1, category_id=category),
                      dict(id=2, category_id=2)])
    result = evaluator.result()
    # Sky is matched perfectly: PQ 1 over sky; the car FP adds a PQ-0 class.
    assert result['Stuff']['pq'] == pytest.approx(1.0)
    assert result['All']['n'] == 1 + expected_fp
    assert result['All']['pq'] == pytest.approx(1.0 / (1 + expected_fp))


def test_unknown_prediction_id_is_an_error():
  categories = [dict(id=1, name='a', isthing=1)]
  evaluator = panoptic_metrics.PanopticEvaluator(categories)
  with pytest.raises(ValueError, match='not in the segments list'):
    evaluator.update(np.zeros((2, 2)), [], np.ones((2, 2)), [])
