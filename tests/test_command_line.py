"""A new user's mistakes get one line naming the valid choices, not a stack trace."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, *args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3',
             PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  return subprocess.run([sys.executable, os.path.join(REPO, script), *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)


def assert_one_line_error(result, *expected):
  assert result.returncode == 2, result.stderr
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert len(lines) == 1, result.stderr
  assert lines[0].startswith('error: ')
  assert 'Traceback' not in result.stderr
  for text in expected:
    assert text in lines[0], lines[0]


@pytest.mark.slow
def test_unknown_experiment_lists_registered_ones(tmp_path):
  result = run('train.py', '--experiment=dataseg_vitdet_xl', '--mode=train',
               f'--model_dir={tmp_path}')
  assert_one_line_error(result, "'dataseg_vitdet_xl'", 'dataseg_demo', 'dataseg_r50',
                        'dataseg_vitdet_b', 'dataseg_vitdet_l')


@pytest.mark.slow
def test_unknown_flag_lists_valid_flags(tmp_path):
  result = run('train.py', '--experiment=dataseg_demo', '--mode=train',
               f'--model_dir={tmp_path}', '--batch_size=4')
  assert_one_line_error(result, 'batch_size', '--experiment', '--mode', '--params_override')


@pytest.mark.slow
def test_bad_mode_lists_modes(tmp_path):
  result = run('train.py', '--experiment=dataseg_demo', '--mode=trian', f'--model_dir={tmp_path}')
  assert_one_line_error(result, 'trian', 'train_and_eval', 'continuous_eval')


@pytest.mark.slow
def test_unknown_config_key_is_named(tmp_path):
  result = run('train.py', '--experiment=dataseg_demo', '--mode=train',
               f'--model_dir={tmp_path}', '--params_override=task.train_data.bogus=1')
  assert_one_line_error(result, 'bogus')


@pytest.mark.slow
def test_export_unknown_experiment(tmp_path):
  result = run('export_saved_model.py', '--experiment=nope', f'--checkpoint_path={tmp_path}',
               f'--export_dir={tmp_path}/out')
  assert_one_line_error(result, 'dataseg_demo')


@pytest.mark.slow
def test_predict_missing_images(tmp_path):
  result = run('predict.py', f'--saved_model={tmp_path}', f'--images={tmp_path}/none.jpg',
               f'--output_dir={tmp_path}/out')
  assert_one_line_error(result, 'none.jpg')


@pytest.mark.slow
def test_export_names_the_default_dataset_flag(tmp_path):
  # `--vocabulary` means a vocabulary (predict.py, text.embed, the converters); the export's
  # choice of a dataset is `--default_dataset`.
  result = run('export_saved_model.py', '--experiment=dataseg_demo', '--vocabulary=synthetic_ade',
               f'--checkpoint_path={tmp_path}', f'--export_dir={tmp_path}/out')
  assert_one_line_error(result, 'vocabulary', '--default_dataset')
