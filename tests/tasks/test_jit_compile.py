"""The whole train step (forward, matching, losses, backward, AdamW update) compiles with
`jit_compile=True` (the TPU-readiness check), through `train.py` and the trainer's XLA path.

Default run: the demo model shrunk to 64x64 with three datasets (all `tf.switch_case` branches).
DATASEG_TEST_JIT_512=1 adds ResNet-50 at 512x512 with the paper's decoder (about 4 minutes on 2
CPU cores, most of it XLA compilation). DATASEG_TEST_JIT_1024=1 adds the paper's TPU settings:
ResNet-50 at 1024x1024 under `mixed_bfloat16` (batch 1, as the CPU's memory allows).

XLA compiles for minutes: an opt-in `long` test (`bash scripts/test.sh --long -m long`).
"""
import math
import os
import re
import subprocess
import sys

import pytest
import tensorflow as tf

from official_dataseg.utils import experiment as experiment_lib
from tests.tasks import helpers

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FLOAT32 = 'runtime.mixed_precision_dtype=float32,task.train_data.dtype=float32'
BFLOAT16 = 'runtime.mixed_precision_dtype=bfloat16,task.train_data.dtype=bfloat16'
COMMON = ('runtime.distribution_strategy=one_device,task.train_data.global_batch_size=1,'
          'task.train_data.max_instances=16,trainer.train_steps=2,trainer.steps_per_loop=1,'
          'trainer.summary_interval=1,trainer.checkpoint_interval=2,'
          'task.model.norm_activation.use_sync_bn=false,task.jit_compile_train_step=true')
CASES = {
    'small': ('dataseg_demo', 'task.model.input_size=[64,64,3],task.train_data.output_size=[64,64],'
              'task.model.backbone.resnet.model_id=10,'
              'task.model.transformer_decoder.num_layers=3,' + FLOAT32),
    'r50_512': ('dataseg_r50', 'task.model.input_size=[512,512,3],'
                'task.train_data.output_size=[512,512],' + FLOAT32),
    'r50_1024_bfloat16': ('dataseg_r50', 'task.model.input_size=[1024,1024,3],'
                          'task.train_data.output_size=[1024,1024],' + BFLOAT16),
}


def _cases():
  cases = ['small']
  if os.environ.get('DATASEG_TEST_JIT_512') == '1':
    cases.append('r50_512')
  if os.environ.get('DATASEG_TEST_JIT_1024') == '1':
    cases.append('r50_1024_bfloat16')
  return cases


@pytest.mark.long
@pytest.mark.parametrize('case', _cases())
def test_train_step_compiles_with_xla(tmp_path, case):
  helpers.make_suite(str(tmp_path / 'demo_output'))
  experiment, sizes = CASES[case]
  model_dir = tmp_path / 'model'
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', TF_USE_LEGACY_KERAS='1',
             CUDA_VISIBLE_DEVICES='-1',
             PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  result = subprocess.run(
      [sys.executable, os.path.join(REPO, 'train.py'), f'--experiment={experiment}',
       '--mode=train', f'--model_dir={model_dir}',
       f'--config_file={os.path.join(REPO, "experiments", "builtin_data.yaml")}',
       f'--params_override={COMMON},{sizes}'],
      cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'saved checkpoint to' in result.stdout and (model_dir / 'ckpt-2.index').exists()
  params = experiment_lib.parse_experiment(experiment, [str(model_dir / 'params.yaml')])
  expected_dtype = 'bfloat16' if BFLOAT16 in sizes else 'float32'
  assert params.runtime.mixed_precision_dtype == expected_dtype
  assert params.task.train_data.dtype == expected_dtype
  reader = tf.train.load_checkpoint(str(model_dir / 'ckpt-2'))
  assert reader.get_tensor('global_step/.ATTRIBUTES/VARIABLE_VALUE') == 2
  # The step ran and reported finite losses (a failed XLA compilation raises instead): the
  # console's progress line of step 2 (official_dataseg/tasks/progress.py).
  progress = [line for line in result.stdout.splitlines() if line.startswith('step 2/2 |')]
  assert len(progress) == 1, result.stdout[-3000:]
  assert math.isfinite(float(re.search(r'\| loss (\S+) \|', progress[0]).group(1)))
  assert 'skipped non-finite' not in progress[0]
