"""The whole path as a user runs it: synthetic suite -> TFRecords -> train.py -> metrics.json ->
export_saved_model.py -> predict.py, and the three paper experiments shrunk to 2 CPU steps.

Each command runs in a subprocess (its own TensorFlow), from a temporary working directory in
which `demo_output/tfrecords` holds a small built-in suite, as `scripts/demo.sh` lays it out.
"""
import json
import os
import subprocess
import sys

import pytest

from official_dataseg.text import vocabulary as vocabulary_lib
from tests import class_names_check
from tfrecords_tools import synthetic_suite

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_MODEL = ','.join([
    'runtime.distribution_strategy=one_device', 'runtime.mixed_precision_dtype=float32',
    'task.model.input_size=[128,128,3]', 'task.train_data.output_size=[128,128]',
    'task.validation_data.output_size=[128,128]', 'task.train_data.dtype=float32',
    'task.validation_data.dtype=float32', 'task.train_data.global_batch_size=2',
    'task.train_data.max_instances=16', 'trainer.train_steps=2', 'trainer.steps_per_loop=1',
    'trainer.summary_interval=1', 'trainer.checkpoint_interval=2',
    'task.model.pixel_decoder.num_filters=32', 'task.model.pixel_decoder.mask_embedding_dim=32',
    'task.model.transformer_decoder.hidden_size=32', 'task.model.transformer_decoder.ffn_dim=64',
    'task.model.transformer_decoder.num_heads=2',
    'task.model.transformer_decoder.num_queries=8',
    'task.model.norm_activation.use_sync_bn=false',
])
TINY_VIT = ','.join([
    "task.model.backbone.vitdet.model_id=''", 'task.model.backbone.vitdet.num_layers=2',
    'task.model.backbone.vitdet.hidden_size=64', 'task.model.backbone.vitdet.num_heads=2',
    'task.model.backbone.vitdet.global_attention_indices=[1]',
    'task.model.backbone.vitdet.pyramid_filters=32', 'task.model.backbone.vitdet.window_size=4',
])


def run_tool(args, cwd, check=True):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', TF_USE_LEGACY_KERAS='1',
             PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  result = subprocess.run([sys.executable] + args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
  if check and result.returncode != 0:
    raise AssertionError(f'{args[0]} failed ({result.returncode}):\n{result.stderr[-3000:]}')
  return result


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  """A working directory with `demo_output/{raw,tfrecords}` of a small built-in suite."""
  root = tmp_path_factory.mktemp('dataseg_e2e')
  raw = synthetic_suite.generate(str(root / 'demo_output' / 'raw'), seed=3, num_train=8,
                                 num_val=4)
  synthetic_suite.convert_all(raw, str(root / 'demo_output' / 'tfrecords'))
  return root


@pytest.mark.slow
def test_demo_path_trains_evaluates_exports_and_predicts(workdir):
  model_dir = workdir / 'model'
  run_tool([os.path.join(REPO, 'train.py'), '--experiment=dataseg_demo',
            '--mode=train_and_eval', f'--model_dir={model_dir}',
            '--params_override=trainer.train_steps=4,trainer.steps_per_loop=2,'
            'trainer.summary_interval=2,trainer.checkpoint_interval=4,'
            'trainer.validation_interval=4'], cwd=workdir)
  assert (model_dir / 'params.yaml').exists()
  assert (model_dir / 'ckpt-4.index').exists()
  with open(model_dir / 'metrics.json') as f:
    report = json.load(f)
  assert report['step'] == 4
  datasets = report['datasets']
  assert sorted(datasets) == ['synthetic_ade', 'synthetic_coco', 'synthetic_o365', 'synthetic_voc']
  headline = {'semantic': 'mIoU', 'panoptic': 'PQ', 'instance': 'mask_AP'}
  for name, entry in datasets.items():
    assert headline[entry['task']] in entry['metrics'], name
    assert entry['metrics']['num_images'] == 4.0, name  # Every val image scored, none dropped.
    assert 0.0 <= entry['metrics'][headline[entry['task']]] <= 100.0

  export_dir = workdir / 'saved_model'
  run_tool([os.path.join(REPO, 'export_saved_model.py'), '--experiment=dataseg_demo',
            f'--config_file={model_dir / "params.yaml"}', f'--checkpoint_path={model_dir}',
            f'--export_dir={export_dir}', '--with_text_encoder'], cwd=workdir)
  assert (export_dir / 'saved_model.pb').exists()
  assert not (workdir / 'saved_model.tmp').exists()

  images = workdir / 'demo_output' / 'raw' / 'coco' / 'val2017'
  out = workdir / 'predictions' / 'default'
  run_tool([os.path.join(REPO, 'predict.py'), f'--saved_model={export_dir}', '--task=panoptic',
            '--max_images=2', f'--images={images}', f'--output_dir={out}'], cwd=workdir)
  _assert_two_predictions(out)
  # Several runs, one process (as scripts/demo.sh): each run's classes are its own vocabulary's.
  run_tool([os.path.join(REPO, 'predict.py'), f'--saved_model={export_dir}',
            '--runs=synthetic_voc:semantic,synthetic_o365:instance', '--max_images=2',
            f'--images={images}', f'--output_dir={workdir / "predictions" / "{vocabulary}"}'],
           cwd=workdir)
  voc = _assert_two_predictions(workdir / 'predictions' / 'synthetic_voc')
  o365 = _assert_two_predictions(workdir / 'predictions' / 'synthetic_o365')
  voc_names = {n for r in voc.values() for n in r['class_pixels']}
  assert voc_names and voc_names <= set(vocabulary_lib.load_vocabulary('synthetic_voc')
                                         .display_names), voc_names
  # The two vocabularies share 8 names in another order: a detection's (class id, name) pair
  # says which vocabulary the run used.
  o365_names = vocabulary_lib.load_vocabulary('synthetic_o365').display_names
  detections = [d for r in o365.values() for d in r['detections']]
  assert detections
  assert all(d['class_name'] == o365_names[d['class_id']] for d in detections), detections[:3]

  # Issue 20, acceptance 2: the class names, embedded in the graph, equal the shipped embeddings.
  assert class_names_check.assert_class_names_equal_vocabulary(
      run_tool, export_dir, workdir / 'demo_output' / 'raw', workdir) == 4


def _assert_two_predictions(out):
  """Two figures and two entries in `out`/results.json; returns the results."""
  pngs = sorted(p.name for p in out.glob('*.png'))
  assert len(pngs) == 2, pngs
  with open(out / 'results.json') as f:
    results = json.load(f)
  assert len(results) == 2
  return results


@pytest.mark.slow
@pytest.mark.parametrize('experiment,extra', [
    ('dataseg_r50', ''),
    # ViTDet is trained in process by tests/tasks/test_train_steps.py; through train.py: opt-in.
    pytest.param('dataseg_vitdet_b', ',' + TINY_VIT, marks=pytest.mark.long),
    pytest.param('dataseg_vitdet_l', ',' + TINY_VIT, marks=pytest.mark.long),
])
def test_paper_experiment_runs_two_cpu_steps_on_builtin_data(workdir, experiment, extra):
  model_dir = workdir / f'{experiment}_cpu'
  run_tool([os.path.join(REPO, 'train.py'), f'--experiment={experiment}', '--mode=train',
            f'--model_dir={model_dir}',
            f'--config_file={os.path.join(REPO, "experiments", "builtin_data.yaml")}',
            f'--params_override={SMALL_MODEL}{extra}'], cwd=workdir)
  assert (model_dir / 'ckpt-2.index').exists()
