"""An image_bytes request declaring a huge image is refused before decoding: the error names
the size limit and the serving process's peak memory does not grow (measured in a child process
with resource.getrusage)."""
import json
import os
import subprocess
import sys

import pytest

MAX_IMAGE_SIZE = 1024  # The fixture exports with --max_image_size=1024.
MAX_GROWTH_MB = 50.0
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_oversized_image_bytes_are_refused_without_memory_growth(serving_setup):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', TF_USE_LEGACY_KERAS='1',
             CUDA_VISIBLE_DEVICES='-1')
  result = subprocess.run(
      [sys.executable, '-m', 'tests.serving.peak_memory_child', serving_setup.bytes_export_dir],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  measured = json.loads(result.stdout.strip().splitlines()[-1])
  print(measured)  # Shown with -s: the numbers behind the assertions.
  # 12000^2 PNG ~0.4 MB, 100000^2 PNG ~29 MB: small files, huge declared sizes.
  assert measured['file_mb']['png_12000'] < 1.0 and measured['file_mb']['png_100000'] < 40
  for name, message in measured['errors'].items():
    assert message is not None, f'{name} was served'
    assert f'H, W <= {MAX_IMAGE_SIZE}' in message and 'image too large' in message, message
  growth = measured['peak_after_oversized_mb'] - measured['peak_after_normal_mb']
  assert growth < MAX_GROWTH_MB, measured
  assert measured['normal_answer_shape'] == [1, 40, 30]
