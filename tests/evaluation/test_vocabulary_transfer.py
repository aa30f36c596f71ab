"""The vocabulary drives classification: a demo model trained on the built-in suite, evaluated by
direct transfer on the VOC-like set with its own class-name embeddings, scores far above the same
checkpoint evaluated with the embeddings file shuffled (names kept, vectors permuted).

This also shows that the model loads its vocabularies through the embedding files
(`DatasetConfig.class_embeddings`): changing the file changes the class outputs. On the same
checkpoint (the demo's: `dataseg_demo`, 600 steps, suite seed 0), the SavedModel exported with
`--with_text_encoder` must give, from the VOC-like class names alone, exactly the class maps of
the shipped embeddings.

Trains for minutes: an opt-in `long` test (`bash scripts/test.sh --long -m long`).
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from official.core import exp_factory
from official_dataseg import registry_imports  # pylint: disable=unused-import
from official_dataseg.text import embeddings as embeddings_lib
from tests import class_names_check
from tfrecords_tools import synthetic_suite

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TRAIN_STEPS = 600


def _run_tool(args, cwd):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', TF_USE_LEGACY_KERAS='1',
             PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  result = subprocess.run([sys.executable] + args, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)
  assert result.returncode == 0, f'{args[0]}: {result.stderr[-3000:]}'


def _run(args, cwd):
  _run_tool([os.path.join(REPO, 'train.py')] + args, cwd)


def _voc_only_config(path, class_embeddings: str) -> None:
  """A YAML config evaluating only the VOC-like set, with the given embeddings file."""
  demo = exp_factory.get_exp_config('dataseg_demo')
  voc = [d for d in demo.task.validation_data.datasets if d.name == 'synthetic_voc'][0]
  voc = voc.replace(class_embeddings=class_embeddings)
  with open(path, 'w') as f:
    yaml.safe_dump({'task': {'validation_data': {'datasets': [voc.as_dict()]}}}, f)


def _voc_miou(workdir, model_dir, class_embeddings: str) -> float:
  config = workdir / f'voc_{len(class_embeddings)}.yaml'
  _voc_only_config(config, class_embeddings)
  _run(['--experiment=dataseg_demo', '--mode=eval', f'--model_dir={model_dir}',
        f'--config_file={config}'], cwd=workdir)
  with open(model_dir / 'metrics.json') as f:
    report = json.load(f)
  return report['datasets']['synthetic_voc']['metrics']['mIoU']


@pytest.mark.long
def test_shuffled_vocabulary_scores_clearly_lower(tmp_path):
  raw = synthetic_suite.generate(str(tmp_path / 'demo_output' / 'raw'), seed=0)
  synthetic_suite.convert_all(raw, str(tmp_path / 'demo_output' / 'tfrecords'))
  model_dir = tmp_path / 'model'
  _run(['--experiment=dataseg_demo', '--mode=train', f'--model_dir={model_dir}',
        f'--params_override=trainer.train_steps={TRAIN_STEPS},trainer.checkpoint_interval={TRAIN_STEPS}'],
       cwd=tmp_path)

  names, vectors = embeddings_lib.load_class_embeddings('synthetic_voc')
  own = tmp_path / 'voc_own.npz'
  np.savez(own, names=np.array(names), embeddings=vectors, encoder='minilm',
           templates=np.array(['{}']))
  # A cyclic shift: every class gets another class's text embedding.
  shuffled = tmp_path / 'voc_shuffled.npz'
  np.savez(shuffled, names=np.array(names), embeddings=np.roll(vectors, 1, axis=0),
           encoder='minilm', templates=np.array(['{}']))

  own_miou = _voc_miou(tmp_path, model_dir, str(own))
  shuffled_miou = _voc_miou(tmp_path, model_dir, str(shuffled))
  print(f'VOC-like transfer mIoU after {TRAIN_STEPS} steps: own vocabulary {own_miou:.2f}, '
        f'shuffled vocabulary {shuffled_miou:.2f}')
  # Measured on 2 CPU cores. After 300 steps the result depended too much on the random
  # initialisation: own 69.6, 61.5, 57.5, 42.2 and, in one CI run, 36.9 (shuffled 0.2-3.4).
  # After 600 steps, own 87.0, 89.3 and 95.3 here, 79.7 and 93.9 in two demo runs; shuffled
  # 0.0-0.3.
  # The bounds sit about 40 points under the lowest of those.
  assert own_miou > 40.0
  assert shuffled_miou < 0.25 * own_miou

  # Issue 20, acceptance 2, on this demo checkpoint: the VOC-like class names embedded inside the
  # SavedModel give exactly the class maps of the shipped embeddings.
  export_dir = tmp_path / 'saved_model'
  _run_tool([os.path.join(REPO, 'export_saved_model.py'), '--experiment=dataseg_demo',
             f'--config_file={model_dir / "params.yaml"}', f'--checkpoint_path={model_dir}',
             f'--export_dir={export_dir}', '--with_text_encoder'], cwd=tmp_path)
  num_images = class_names_check.assert_class_names_equal_vocabulary(
      _run_tool, export_dir, tmp_path / 'demo_output' / 'raw', tmp_path)
  print(f'{num_images} VOC-like images: identical class maps by class names and by embeddings')
