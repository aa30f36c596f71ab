"""One checkpoint, scored every way a user can: the numbers must be the same.

On a small built-in suite (the demo's four validation sets in their real raw formats, converted by
the real converters) and a small demo model:
  - `train.py --mode=eval` (a subprocess, as a user runs it) -> metrics.json;
  - the in-training `DatasetEvaluator` (the task's `validation_step` + `aggregate_logs`);
  - `predict.py`'s path (`loader.build_serving_module` for the dataset, `predict.run`) -> the
    standard result files -> `python -m official_dataseg.evaluation.evaluate`.
Every headline metric agrees to 1e-6. The Objects365-like set carries rater-skipped objects:
its mask AP also equals pycocotools COCOeval run here with the skipped objects as ignore (crowd)
regions covering their boxes, and differs from the AP with them dropped (so ignoring matters).
"""
import contextlib
import copy
import io
import json
import os
import subprocess
import sys

import numpy as np
from pycocotools import coco as coco_api
from pycocotools import cocoeval
from pycocotools import mask as mask_api
import pytest
import tensorflow as tf, tf_keras

from official.core import exp_factory
from official.core import train_utils

from official_dataseg import common
from official_dataseg import registry_imports  # pylint: disable=unused-import
from official_dataseg.configs import dataseg as dataseg_config
from official_dataseg.evaluation import evaluate
from official_dataseg.serving import loader
from official_dataseg.tasks import dataseg_task
from official_dataseg.text import vocabulary as vocabulary_lib
from tfrecords_tools import objects365
from tfrecords_tools import synthetic_suite

import predict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOLERANCE = 1e-6
# The demo model, narrower; random weights (seeded) suffice for path equality.
SMALL_DEMO = {
    'runtime': {'distribution_strategy': 'one_device', 'mixed_precision_dtype': 'float32'},
    'task': {
        'model': {
            'pixel_decoder': {'num_filters': 32, 'mask_embedding_dim': 32},
            'transformer_decoder': {'num_layers': 2, 'hidden_size': 32, 'ffn_dim': 64,
                                    'num_heads': 2, 'num_queries': 16},
        },
        'validation_data': {'global_batch_size': 2},
        'num_summary_images': 0,
    },
}
LARGE = 'large_objects'  # The Objects365-like set of `_write_large_object_set`.
# With these (seeded) random weights, the metrics that are far from 0, so that their equality says
# more than "both empty". The same comparison on the trained demo checkpoint, where every metric is
# far from 0: scripts/compare_evaluation_paths.sh.
NON_ZERO = {'synthetic_ade': 'mIoU', LARGE: 'mask_AP'}
HEADLINE = {'semantic': ('mIoU', 'pixel_accuracy'), 'panoptic': ('PQ', 'SQ', 'RQ'),
            'instance': ('AP', 'AP50', 'AP75')}


def _params(raw, tfrecords):
  params = exp_factory.get_exp_config('dataseg_demo')
  params.override(SMALL_DEMO, is_strict=True)

  def moved(datasets, split):
    moved_datasets = []
    for dataset in datasets:
      name = dataset.name.replace('synthetic_', '')
      dataset = dataset.replace(
          input_path=os.path.join(tfrecords, f'synthetic_{name}_{split}-*-of-*'),
          category_frequency_file='')
      if dataset.task_type == common.TASK_PANOPTIC:
        # Random weights give flat class probabilities: low thresholds keep segments.
        dataset = dataset.replace(panoptic_confidence_threshold=0.1,
                                  panoptic_overlap_threshold=0.0)
      moved_datasets.append(dataset)
    return tuple(moved_datasets)

  params.task.train_data.datasets = moved(params.task.train_data.datasets, 'train')
  params.task.validation_data.datasets = moved(params.task.validation_data.datasets, 'val')
  return params


def _write_large_object_set(root):
  """An Objects365-like raw set (COCO JSON + PNGs) whose objects are large, so that even random
  weights (near-whole-image masks) make detections that match them.

  Images 1-3 hold an object of category 1 covering the image; every image holds a rater-skipped
  object of category 1 (`skipped`, no segmentation) whose box is the whole image, and one of
  category 2 flagged `is_ignored` that has a polygon (skipped too: its region is its box). With
  the skipped objects ignored, only the best detection per image with an object is scored (a
  TP) and the rest are ignored; with them dropped, the rest are FPs ranked among the TPs.

  Returns:
    (images dir, JSON path).
  """
  images_dir = os.path.join(root, 'images')
  os.makedirs(images_dir)
  rng = np.random.default_rng(3)
  images, annotations = [], []
  for image_id in range(1, 5):
    height, width = 40 + 8 * image_id, 64
    file_name = f'large_{image_id:03d}.png'
    tf.io.write_file(os.path.join(images_dir, file_name), tf.io.encode_png(
        rng.integers(0, 255, (height, width, 3), dtype=np.uint8)))
    images.append({'id': image_id, 'file_name': file_name, 'height': height, 'width': width})
    if image_id < 4:
      rle = mask_api.encode(np.asfortranarray(np.ones((height, width), np.uint8)))
      annotations.append({'id': len(annotations) + 1, 'image_id': image_id, 'category_id': 1,
                          'bbox': [0, 0, width, height], 'area': height * width, 'iscrowd': 0,
                          'segmentation': {'size': rle['size'],
                                           'counts': rle['counts'].decode()}})
    annotations.append({'id': len(annotations) + 1, 'image_id': image_id, 'category_id': 1,
                        'bbox': [0, 0, width, height], 'area': height * width, 'iscrowd': 0,
                        'skipped': True})
    annotations.append({'id': len(annotations) + 1, 'image_id': image_id, 'category_id': 2,
                        'bbox': [width // 2, 8, width // 2, height // 2], 'iscrowd': 0,
                        'area': 1, 'is_ignored': 1,
                        'segmentation': [[40, 10, 60, 10, 60, 30]]})
  json_path = os.path.join(root, 'large_objects_val.json')
  with open(json_path, 'w') as f:
    json.dump({'images': images, 'annotations': annotations,
               'categories': [{'id': c.id, 'name': c.name} for c in
                              vocabulary_lib.load_vocabulary('synthetic_o365').classes]}, f)
  return images_dir, json_path


def _run_tool(args, cwd):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', TF_USE_LEGACY_KERAS='1',
             PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  result = subprocess.run([sys.executable] + args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
  if result.returncode != 0:
    raise AssertionError(f'{args[0]} failed ({result.returncode}):\n{result.stderr[-3000:]}')
  return result


@pytest.fixture(scope='module')
def scored(tmp_path_factory):
  """Writes the suite and a checkpoint, then scores it the three ways."""
  root = tmp_path_factory.mktemp('evaluation_paths')
  raw = synthetic_suite.generate(str(root / 'raw'), seed=5, num_train=1, num_val=4)
  tfrecords = str(root / 'tfrecords')
  synthetic_suite.convert_all(raw, tfrecords)
  large_images, large_json = _write_large_object_set(str(root / 'large_objects'))
  objects365.convert(large_images, large_json, os.path.join(tfrecords, 'large_objects_val'),
                     include_masks=True, strict=True, show_progress=False)
  params = _params(raw, tfrecords)
  params.task.validation_data.datasets += (dataseg_config.DatasetConfig(
      name=LARGE, task_type=common.TASK_INSTANCE, vocabulary='synthetic_o365',
      input_path=os.path.join(tfrecords, 'large_objects_val-*-of-*')),)
  model_dir = str(root / 'model')
  task = dataseg_task.DataSegTask(params.task)
  # Python, NumPy and TF seeds: tf_keras draws unseeded initialisers' seeds from Python's.
  tf_keras.utils.set_random_seed(11)
  model = task.build_model()
  height, width = params.task.model.input_size[:2]
  model({common.IMAGE: tf.zeros([1, height, width, 3]),
         common.CLASS_EMBEDDINGS: tf.ones([3, params.task.model.classifier_head
                                           .text_embedding_dim]),
         common.CLASS_VALID: tf.ones([3], tf.bool), common.DATASET_ID: tf.constant(0)})
  checkpoint = tf.train.Checkpoint(model=model).save(os.path.join(model_dir, 'ckpt'))
  train_utils.serialize_config(params, model_dir)

  # 1. train.py --mode=eval.
  _run_tool([os.path.join(REPO, 'train.py'), '--experiment=dataseg_demo', '--mode=eval',
             f'--model_dir={model_dir}',
             f'--config_file={os.path.join(model_dir, "params.yaml")}'], cwd=str(root))
  with open(os.path.join(model_dir, 'metrics.json')) as f:
    train_py = {name: entry['metrics'] for name, entry in json.load(f)['datasets'].items()}

  # 2. The in-training evaluator, in this process.
  in_training = {}
  for name in task.eval_dataset_names:
    task.set_eval_dataset(name)
    # One trace per dataset (its vocabulary and modules are constants of the trace).
    validation_step = tf.function(task.validation_step)
    state = None
    for batch in task.build_eval_inputs(name):
      state = task.aggregate_logs(state, validation_step(batch, model))
    in_training[name] = task.reduce_aggregated_logs(state)
  task.set_eval_dataset(None)

  # 3. predict.py's path, then the file evaluator on the raw ground truth.
  voc = raw['voc']['val']
  voc_split = os.path.join(os.path.dirname(voc['annotations']), 'ImageSets', 'Segmentation',
                           'val.txt')
  with open(voc_split) as f:
    voc_images = [os.path.join(voc['images_dir'], line.strip() + '.jpg') for line in f
                  if line.strip()]
  o365_json = raw['o365']['val']['annotations']
  inputs = {
      'synthetic_ade': ('semantic', [raw['ade']['val']['images_dir']], ''),
      'synthetic_coco': ('panoptic', [raw['coco']['val']['images_dir']], ''),
      'synthetic_o365': ('instance', [os.path.join(raw['o365']['val']['images_dir'],
                                                   'patch0')], o365_json),
      'synthetic_voc': ('semantic', voc_images, ''),
      LARGE: ('instance', [large_images], large_json),
  }
  files = {}
  for name, (task_type, images, annotations) in inputs.items():
    dataset = loader.find_dataset_config(params, name)
    predictor = predict.Predictor(task_type, '', 'minilm')
    predictor.category_ids = [c.id for c in
                              vocabulary_lib.load_vocabulary(dataset.vocabulary).classes]
    predictor.load(module=loader.build_serving_module(params, checkpoint, name))
    output_dir = str(root / 'predictions' / name)
    predict.run(predictor, predict.list_images(images), output_dir, 0.3, annotations=annotations)
    files[name] = output_dir
  coco = raw['coco']['val']['annotations']
  from_files = {
      'synthetic_ade': evaluate.main([
          '--task', 'semantic', '--gt', raw['ade']['val']['annotations'],
          '--pred', os.path.join(files['synthetic_ade'], 'semantic'), '--num_classes', '10',
          '--reduce_zero_label']),
      'synthetic_coco': evaluate.main([
          '--task', 'panoptic', '--gt', coco,
          '--pred', os.path.join(files['synthetic_coco'], 'panoptic.json')]),
      'synthetic_o365': evaluate.main([
          '--task', 'instance', '--gt', o365_json,
          '--pred', os.path.join(files['synthetic_o365'], 'instances_results.json')]),
      'synthetic_voc': evaluate.main([
          '--task', 'semantic', '--gt', voc['annotations'],
          '--pred', os.path.join(files['synthetic_voc'], 'semantic'), '--num_classes', '9',
          '--ignore_classes', '0', '--split_file', voc_split]),
      LARGE: evaluate.main([
          '--task', 'instance', '--gt', large_json,
          '--pred', os.path.join(files[LARGE], 'instances_results.json')]),
  }
  return {'train_py': train_py, 'in_training': in_training, 'from_files': from_files,
          'files': files, 'large_json': large_json}


def _file_metric(task_type, results, metric):
  """The file evaluator's metric in percent, under the in-training metric name."""
  if task_type == 'panoptic':
    return 100.0 * results['All'][metric.lower()]
  return 100.0 * results[metric]


def _training_name(task_type, metric):
  return f'mask_{metric}' if task_type == 'instance' else metric


@pytest.mark.slow
@pytest.mark.parametrize('name,task_type', [
    ('synthetic_ade', 'semantic'), ('synthetic_coco', 'panoptic'),
    ('synthetic_o365', 'instance'), ('synthetic_voc', 'semantic'), (LARGE, 'instance')])
def test_train_py_eval_equals_predict_and_file_evaluator(scored, name, task_type):
  for metric in HEADLINE[task_type]:
    key = _training_name(task_type, metric)
    from_train_py = scored['train_py'][name][key]
    in_training = scored['in_training'][name][key]
    from_files = _file_metric(task_type, scored['from_files'][name], metric)
    print(f'{name} {key}: train.py {from_train_py:.6f}, in-training {in_training:.6f}, '
          f'predict.py + file evaluator {from_files:.6f}')
    assert from_train_py == pytest.approx(from_files, abs=TOLERANCE), (name, metric)
    assert in_training == pytest.approx(from_files, abs=TOLERANCE), (name, metric)
  assert scored['train_py'][name]['num_images'] == 4.0
  if name in NON_ZERO:
    assert scored['train_py'][name][NON_ZERO[name]] > 0.0


def _reference_mask_ap(gt_json_path, detections, ignore_skipped):
  """pycocotools COCOeval with skipped objects as crowd regions covering their integer boxes."""
  with open(gt_json_path) as f:
    gt_json = json.load(f)
  heights = {image['id']: (image['height'], image['width']) for image in gt_json['images']}
  annotations = []
  for annotation in gt_json['annotations']:
    annotation = dict(annotation)
    if annotation.get('skipped') or annotation.get('is_ignored'):
      if not ignore_skipped:
        continue
      height, width = heights[annotation['image_id']]
      x, y, w, h = annotation['bbox']  # Integers in the built-in suite.
      region = np.zeros((height, width), np.uint8)
      region[y:y + h, x:x + w] = 1
      rle = mask_api.encode(np.asfortranarray(region))
      rle['counts'] = rle['counts'].decode()
      annotation.update(segmentation=rle, iscrowd=1)
    annotation['area'] = float(mask_api.area(annotation['segmentation']))
    annotations.append(annotation)
  with contextlib.redirect_stdout(io.StringIO()):
    coco_gt = coco_api.COCO()
    coco_gt.dataset = dict(gt_json, annotations=annotations)
    coco_gt.createIndex()
    coco_dt = coco_gt.loadRes(copy.deepcopy(detections))  # loadRes adds fields.
    evaluator = cocoeval.COCOeval(coco_gt, coco_dt, iouType='segm')
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
  return float(evaluator.stats[0])


@pytest.mark.slow
def test_skipped_objects_are_ignore_regions_in_every_path(scored):
  with open(os.path.join(scored['files'][LARGE], 'instances_results.json')) as f:
    detections = json.load(f)
  assert detections, 'the model made no detection: the comparison would be empty'
  expected = _reference_mask_ap(scored['large_json'], detections, ignore_skipped=True)
  dropped = _reference_mask_ap(scored['large_json'], detections, ignore_skipped=False)
  print(f'mask AP: reference {expected:.6f} (skipped dropped: {dropped:.6f}); train.py '
        f'{scored["train_py"][LARGE]["mask_AP"] / 100:.6f}, in-training '
        f'{scored["in_training"][LARGE]["mask_AP"] / 100:.6f}, predict.py + file evaluator '
        f'{scored["from_files"][LARGE]["AP"]:.6f}')
  assert expected > 0.0
  assert expected != pytest.approx(dropped, abs=1e-4)
  assert scored['train_py'][LARGE]['mask_AP'] / 100 == pytest.approx(expected, abs=TOLERANCE)
  assert scored['in_training'][LARGE]['mask_AP'] / 100 == pytest.approx(expected, abs=TOLERANCE)
  assert scored['from_files'][LARGE]['AP'] == pytest.approx(expected, abs=TOLERANCE)
