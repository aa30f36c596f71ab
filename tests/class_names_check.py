"""Issue 20, acceptance 2, shared by the end-to-end and vocabulary-transfer tests: a SavedModel
exported with `--with_text_encoder`, given the VOC-like set's class names as strings, must return
exactly the class maps that its shipped embeddings (computed by sentence-transformers) give.

Both sides run `predict.py` on the VOC-like validation images (raw JPEGs, the split's list); the
class maps are the semantic result PNGs (class indices).
"""
import os
from typing import Callable, Dict, List

import numpy as np
from PIL import Image

from official_dataseg.text import class_name_encoder
from official_dataseg.text import vocabulary as vocabulary_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCABULARY = 'synthetic_voc'


def write_class_names_file(path) -> str:
  """The VOC-like vocabulary's classes as `--class_names` lines (synonyms after ';')."""
  classes = vocabulary_lib.load_vocabulary(VOCABULARY).classes
  with open(path, 'w', encoding='utf-8') as f:
    f.writelines(class_name_encoder.join_prompt_names(c.prompt_names) + '\n' for c in classes)
  return str(path)


def _class_maps(folder) -> Dict[str, np.ndarray]:
  return {name: np.array(Image.open(os.path.join(folder, name)))
          for name in sorted(os.listdir(folder)) if name.endswith('.png')}


def voc_val_images(raw_dir) -> List[str]:
  """The built-in suite's VOC-like validation images (`synthetic_suite.generate` output)."""
  base = os.path.join(raw_dir, 'voc', 'VOCdevkit', 'VOC2012')
  with open(os.path.join(base, 'ImageSets', 'Segmentation', 'val.txt')) as f:
    return [os.path.join(base, 'JPEGImages', line.strip() + '.jpg') for line in f if line.strip()]


def assert_class_names_equal_vocabulary(run_tool: Callable, export_dir, raw_dir, workdir) -> int:
  """Runs predict.py both ways; asserts identical class maps; returns the number of images."""
  images = ','.join(voc_val_images(raw_dir))
  names_file = write_class_names_file(os.path.join(workdir, 'voc_class_names.txt'))
  maps = {}
  for key, classes in (('by_vocabulary', f'--vocabulary={VOCABULARY}'),
                       ('by_class_names', f'--class_names={names_file}')):
    out = os.path.join(workdir, 'class_names_check', key)
    run_tool([os.path.join(REPO, 'predict.py'), f'--saved_model={export_dir}', '--task=semantic',
              f'--images={images}', f'--output_dir={out}', classes], cwd=workdir)
    maps[key] = _class_maps(os.path.join(out, 'semantic'))
  assert maps['by_vocabulary'], 'predict.py wrote no class map'
  assert list(maps['by_class_names']) == list(maps['by_vocabulary'])
  for name, by_vocabulary in maps['by_vocabulary'].items():
    np.testing.assert_array_equal(maps['by_class_names'][name], by_vocabulary, err_msg=name)
  return len(maps['by_vocabulary'])
