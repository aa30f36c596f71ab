"""predict.py: inputs with the same file name never overwrite each other's outputs, and the
loaded SavedModel lives as long as the predictor (run in a child: predict.py's absl flags
would clash with export_saved_model's in this process)."""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_SCRIPT = r'''
import gc, json, os, sys, weakref
import numpy as np
from PIL import Image
import tensorflow as tf
import predict

root = sys.argv[1]
result = {'stems': predict.unique_stems(
    ['a/x.jpg', 'b/x.png', 'c/x-2.jpg', 'y.jpg', 'd/x.jpg'])}

# Two inputs named x.png in different folders, with different (uniform) class maps.
paths = []
for folder, value in (('a', 0), ('b', 1)):
  os.makedirs(os.path.join(root, folder))
  paths.append(os.path.join(root, folder, 'x.png'))
  Image.fromarray(np.full([6, 8, 3], 100 * value, np.uint8)).save(paths[-1])


class UniformPredictor:
  task = 'semantic'
  class_names = None
  category_ids = None

  def __call__(self, path, image, encoded_image=None):
    value = int(image[0, 0, 0] > 0)
    return {'class_map': np.full([1, 6, 8], value, np.int32),
            'class_names': np.array([b'sky', b'grass'])}


results_path = predict.run(UniformPredictor(), paths, os.path.join(root, 'out'), 0.3)
with open(results_path) as f:
  result['results'] = json.load(f)
result['files'] = sorted(os.listdir(os.path.join(root, 'out')))
result['label_files'] = sorted(os.listdir(os.path.join(root, 'out', 'semantic')))


class Tiny(tf.Module):
  def __init__(self):
    self.scale = tf.Variable(2.0)

  @tf.function(input_signature=[tf.TensorSpec(None, tf.uint8, name='images')])
  def panoptic(self, images):
    return {'scaled': tf.cast(images, tf.float32) * self.scale}


module = Tiny()
tf.saved_model.save(module, os.path.join(root, 'saved'), signatures={'panoptic': module.panoptic})
predictor = predict.Predictor('panoptic', '', 'minilm')
loaded = []
load = tf.saved_model.load
tf.saved_model.load = lambda path: loaded.append(load(path)) or loaded[-1]
predictor.load(saved_model=os.path.join(root, 'saved'))
alive = weakref.ref(loaded.pop())
gc.collect()
result['saved_model_alive'] = alive() is not None
print(json.dumps(result))
'''


def test_same_stem_outputs_and_saved_model_lifetime(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3', TF_USE_LEGACY_KERAS='1',
             PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
  child = subprocess.run([sys.executable, '-c', _SCRIPT, str(tmp_path)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
  assert child.returncode == 0, child.stderr[-3000:]
  result = json.loads(child.stdout.strip().splitlines()[-1])
  assert result['stems'] == ['x', 'x-2', 'x-2-2', 'y', 'x-3']
  first, second = (os.path.join(str(tmp_path), folder, 'x.png') for folder in 'ab')
  out = os.path.join(str(tmp_path), 'out')
  assert result['files'] == ['results.json', 'semantic', 'x-2_semantic.png', 'x_semantic.png']
  assert result['label_files'] == ['x-2.png', 'x.png']  # The result files use the same stems.
  assert result['results'][first]['overlay'] == os.path.join(out, 'x_semantic.png')
  assert result['results'][first]['class_pixels'] == {'sky': 48}
  assert result['results'][second]['overlay'] == os.path.join(out, 'x-2_semantic.png')
  assert result['results'][second]['class_pixels'] == {'grass': 48}
  assert result['saved_model_alive']
