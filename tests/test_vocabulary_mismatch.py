"""train.py stops before the first step, with one line naming both vocabularies, when the
records were converted with another class list than the DatasetConfig names (train and eval)."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from official_dataseg.text import vocabulary as vocabulary_lib
from tests.dataloaders import tfexample_helpers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _records_of_another_vocabulary(root) -> str:
  """A record set whose vocabulary file is synthetic_coco with class 3 renamed."""
  content = vocabulary_lib.load_vocabulary('synthetic_coco').to_json_dict()
  content['classes'][3]['name'] = 'kitten'  # 'cat' in synthetic_coco.
  vocabulary_file = os.path.join(root, 'coco-vocabulary.json')
  with open(vocabulary_file, 'w') as f:
    json.dump(content, f)
  tfexample_helpers.write_record_set(os.path.join(root, 'coco'), [[b'x']], vocabulary_file)
  return vocabulary_file


@pytest.mark.slow
@pytest.mark.parametrize('mode', ['train', 'eval'])
def test_train_py_refuses_records_of_another_vocabulary(tmp_path, mode):
  vocabulary_file = _records_of_another_vocabulary(str(tmp_path))
  dataset = {'name': 'synthetic_coco', 'task_type': 'panoptic',
             'input_path': str(tmp_path / 'coco-*-of-*'), 'vocabulary': 'synthetic_coco'}
  config_file = tmp_path / 'override.yaml'
  config_file.write_text(yaml.safe_dump({
      'runtime': {'distribution_strategy': 'one_device', 'mixed_precision_dtype': 'float32'},
      'task': {'train_data': {'datasets': [dataset]},
               'validation_data': {'datasets': [dataset]}},
  }))
  model_dir = tmp_path / 'model'
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', TF_USE_LEGACY_KERAS='1',
             CUDA_VISIBLE_DEVICES='-1')
  result = subprocess.run(
      [sys.executable, 'train.py', '--experiment=dataseg_demo', f'--mode={mode}',
       f'--config_file={config_file}', f'--model_dir={model_dir}'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 2, result.stderr[-3000:]
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  # Model Garden warns (absl 'W' lines) when the override's dataset list is shorter.
  errors = [line for line in lines if not line.startswith('W')]
  assert errors == lines[-1:] and 'Traceback' not in result.stderr, result.stderr[-3000:]
  error = errors[0]
  assert error.startswith("error: dataset 'synthetic_coco': records ")
  assert vocabulary_file in error
  assert "DatasetConfig.vocabulary is 'synthetic_coco'" in error
  assert "class index 3: records (id 17, 'kitten'), config (id 17, 'cat')" in error
  # Stopped before the first step: no checkpoint, no metrics.
  assert not [f for f in (os.listdir(model_dir) if model_dir.exists() else [])
              if f.startswith('ckpt') or f == 'checkpoint' or f == 'metrics.json']
