"""Real learning: on the real two-image COCO panoptic sample, a small config trained on CPU reaches
a PQ on those two images well above its PQ at step 0.

The sample (`../shared/data/coco_panoptic_sample/` from the repository root: two COCO val2017
images with their official panoptic ground truth) is converted with the COCO panoptic converter;
train and validation are the same two images. `dataseg_demo`'s model (ResNet-18) is trained on
them alone at 192x192 with 50 queries, batch 2, no scale jitter or flip, lr 2e-4 x 5 (dataset
multiplier) = 1e-3, for 300 steps, by `train.py --mode=train_and_eval` in a subprocess; step 0 is
`train.py --mode=eval` on a fresh model directory (the freshly initialised model).

Measured (2 CPU cores, 2.3-3 minutes for the whole test): PQ 0.0 at step 0 (no class passes the 0.3
confidence threshold at initialisation); after 300 steps PQ varies with the random initialisation:
60.2, 31.7, 47.1 and 63.3 in four runs. Threshold: final PQ >= step-0 PQ + 15 points, about half the
lowest measured run.

Trains for minutes: an opt-in `long` test (`bash scripts/test.sh --long -m long`).
"""
import json
import os
import subprocess
import sys
from typing import Tuple

import pytest
import yaml

from tfrecords_tools import coco_panoptic

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(os.path.dirname(REPO), 'shared', 'data', 'coco_panoptic_sample')
TRAIN_STEPS = 300
MIN_PQ_GAIN = 15.0  # PQ points (metrics.json holds PQ in percent).
TIMEOUT_S = 600


def _config(input_pattern: str) -> dict:
  """A YAML override of `dataseg_demo`: COCO panoptic only, on the two sample images."""
  dataset = {'name': 'coco_panoptic', 'task_type': 'panoptic', 'input_path': input_pattern,
             'vocabulary': 'coco_panoptic', 'category_frequency_file': ''}
  data = {'global_batch_size': 2, 'output_size': [192, 192], 'max_instances': 32}
  return {
      'runtime': {'distribution_strategy': 'one_device', 'mixed_precision_dtype': 'float32'},
      'task': {
          # 50 queries: the two images hold 50 segments (with the demo's 16, PQ varied 16-35).
          'model': {'input_size': [192, 192, 3], 'transformer_decoder': {'num_queries': 50}},
          'train_data': dict(data, shuffle_buffer_size=2, datasets=[dict(
              dataset, aug_scale_min=1.0, aug_scale_max=1.0, aug_rand_hflip=False,
              learning_rate_multiplier=5.0)]),
          # Ground truth at the images' own scale (both are 640 wide, at most 427 high).
          'validation_data': dict(data, eval_groundtruth_size=[448, 640], datasets=[dict(
              dataset, panoptic_confidence_threshold=0.3)]),
      },
      'trainer': {'train_steps': TRAIN_STEPS, 'validation_interval': TRAIN_STEPS,
                  'steps_per_loop': 50, 'summary_interval': 50,
                  'checkpoint_interval': TRAIN_STEPS},
  }


def _train_py(mode: str, config_file: str, model_dir: str) -> Tuple[int, float]:
  """Runs train.py; returns the step and the COCO panoptic PQ (percent) of its metrics.json."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', TF_USE_LEGACY_KERAS='1',
             CUDA_VISIBLE_DEVICES='-1')
  result = subprocess.run(
      [sys.executable, 'train.py', '--experiment=dataseg_demo', f'--mode={mode}',
       f'--config_file={config_file}', f'--model_dir={model_dir}'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(model_dir, 'metrics.json')) as f:
    metrics = json.load(f)
  panoptic = metrics['datasets']['coco_panoptic']
  assert panoptic['metrics']['num_images'] == 2
  return metrics['step'], panoptic['metrics']['PQ']


@pytest.mark.long
def test_training_on_coco_sample_raises_pq(tmp_path):
  if not os.path.isdir(SAMPLE):
    pytest.skip(f'the real COCO panoptic sample is absent (expected at {SAMPLE})')
  coco_panoptic.convert(os.path.join(SAMPLE, 'input_images'),
                        os.path.join(SAMPLE, 'panoptic_examples.json'),
                        str(tmp_path / 'coco_sample'), show_progress=False)
  config_file = str(tmp_path / 'coco_sample.yaml')
  with open(config_file, 'w') as f:
    yaml.safe_dump(_config(str(tmp_path / 'coco_sample-*-of-*')), f)

  step_0, pq_0 = _train_py('eval', config_file, str(tmp_path / 'initial'))
  step_n, pq_n = _train_py('train_and_eval', config_file, str(tmp_path / 'trained'))
  print(f'COCO sample PQ: {pq_0:.2f} at step {step_0}, {pq_n:.2f} at step {step_n}')
  assert step_0 == 0 and step_n == TRAIN_STEPS
  assert pq_n >= pq_0 + MIN_PQ_GAIN
