r"""Segments image files and writes overlay PNGs (with a class-name legend) and a results JSON.

  python predict.py --saved_model=EXPORT_DIR --images=photo.jpg,more/ --output_dir=OUT \
      [--task=panoptic|semantic|instance] [--vocabulary=pascal_voc | --vocabulary=my.npz |
       --class_names="cat,dog;puppy,grass" --stuff_classes=grass | --class_names=names.txt]
  python predict.py --checkpoint=MODEL_DIR --experiment=dataseg_demo \
      --config_file=MODEL_DIR/params.yaml --images=... --output_dir=OUT

`--vocabulary` swaps the classes: a built-in vocabulary name or an embeddings `.npz` written by
`python -m official_dataseg.text.embed`; without it the exported default vocabulary is used.
`--class_names` gives the classes as names only (synonyms after ';'), embedded inside a SavedModel
exported with `--with_text_encoder` (its `*_with_class_names` signatures; with --checkpoint the
encoder is built in process).
"""
import json
import os
import tempfile
from typing import Dict, List, Optional, Sequence

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
from PIL import Image
import tensorflow as tf

from official_dataseg.evaluation import visualization
from official_dataseg.serving import export_module
from official_dataseg.serving import loader
from official_dataseg.serving import text_signatures
from official_dataseg.text import class_name_encoder
from official_dataseg.text import embeddings as embeddings_lib
from official_dataseg.text import vocabulary as vocabulary_lib
from official_dataseg.utils import console
from official_dataseg.utils import experiment as experiment_lib

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')

flags.DEFINE_string('saved_model', None, 'An exported SavedModel directory.')
flags.DEFINE_string('checkpoint', None, 'Or: a training checkpoint (prefix or directory), '
                    'with --experiment and --config_file.')
flags.DEFINE_string('experiment', None, 'Registered experiment (with --checkpoint).')
flags.DEFINE_multi_string('config_file', [], 'YAML config files (with --checkpoint).')
flags.DEFINE_string('params_override', '', 'Config overrides (with --checkpoint).')
flags.DEFINE_list('images', None, 'Image files and/or folders of images.')
flags.DEFINE_string('output_dir', None, 'Where overlays and results.json are written.')
flags.DEFINE_enum('task', 'panoptic', export_module.TASK_SIGNATURES, 'Which read-out.')
flags.DEFINE_string('vocabulary', '', 'Built-in vocabulary name or embeddings .npz file.')
flags.DEFINE_string('text_encoder', 'minilm', 'Encoder of the built-in embeddings.')
flags.DEFINE_string('class_names', '', 'Classes by name: comma-separated ("cat,dog;puppy,grass"; '
                    "synonyms after ';') or a text file with one class per line. Needs a "
                    'SavedModel exported with --with_text_encoder.')
flags.DEFINE_list('stuff_classes', [], 'With --class_names and --task=panoptic: the classes '
                  '(first names) that are stuff; the others are things.')
flags.DEFINE_float('score_threshold', 0.3, 'Instance overlays show scores above this.')
flags.DEFINE_integer('max_images', 0, 'Stop after this many images (0 = all).')

FLAGS = flags.FLAGS


def list_images(paths: List[str]) -> List[str]:
  """Image files named directly or found (sorted) in the named folders."""
  files = []
  for path in paths:
    if os.path.isdir(path):
      files.extend(sorted(os.path.join(path, f) for f in os.listdir(path)
                          if f.lower().endswith(IMAGE_EXTENSIONS)))
    elif os.path.isfile(path):
      files.append(path)
    else:
      raise FileNotFoundError(f'--images: {path!r} is neither a file nor a folder')
  if not files:
    raise FileNotFoundError(f'--images: no image files in {paths}')
  return files


def read_image(path: str) -> np.ndarray:
  try:
    with Image.open(path) as image:
      return np.asarray(image.convert('RGB'))
  except (OSError, ValueError) as e:
    raise ValueError(f'{path}: not a readable image ({e})') from e


def parse_class_names(value: str) -> List[str]:
  """`--class_names`: a file with one class per line, else a comma-separated list."""
  if os.path.isfile(value):
    with open(value, encoding='utf-8') as f:
      names = [line.strip() for line in f]
  else:
    names = [name.strip() for name in value.split(',')]
  names = [name for name in names if name]
  if not names:
    raise ValueError(f'--class_names: no class names in {value!r}')
  return names


class Predictor:
  """Calls the serving signatures of an exported or in-process serving module."""

  def __init__(self, task: str, vocabulary: str, text_encoder: str,
               class_names: Optional[List[str]] = None, stuff_classes: Sequence[str] = ()):
    self.task = task
    self.custom_vocabulary = None
    self.class_name_strings = None
    if vocabulary and class_names:
      raise ValueError('give --vocabulary or --class_names, not both')
    if class_names:
      display_names = [name.split(class_name_encoder.SYNONYM_SEPARATOR)[0].strip()
                       for name in class_names]
      unknown = sorted(set(stuff_classes) - set(display_names))
      if unknown:
        raise ValueError(f'--stuff_classes {unknown} are not among --class_names {display_names}')
      self.class_name_strings = (list(class_names), display_names,
                                 np.array([n not in stuff_classes for n in display_names]))
    if vocabulary:
      names, embeddings = embeddings_lib.load_class_embeddings(vocabulary, encoder=text_encoder)
      if vocabulary in vocabulary_lib.list_vocabularies():
        is_thing = vocabulary_lib.load_vocabulary(vocabulary).is_thing
      else:  # An embeddings file alone says nothing of stuff: treat every class as a thing.
        is_thing = np.ones(len(names), bool)
      self.custom_vocabulary = (names, embeddings, is_thing)

  def load(self, saved_model: str = None, module=None) -> None:
    if saved_model:
      self._functions = tf.saved_model.load(saved_model).signatures
      if (self.class_name_strings and
          self.task + text_signatures.CLASS_NAMES_SUFFIX not in self._functions):
        raise ValueError(f'{saved_model} has no {self.task}'
                         f'{text_signatures.CLASS_NAMES_SUFFIX} signature: export it with '
                         '--with_text_encoder, or use --vocabulary')
      signature = self._functions[self.task]
      self._input_type = (export_module.IMAGE_BYTES
                          if 'image_bytes' in signature.structured_input_signature[1]
                          else export_module.IMAGE_TENSOR)
    else:
      function_keys = export_module.default_function_keys()
      if self.class_name_strings:
        text_signatures.attach_class_name_encoder(module, module.params)
        function_keys.update(text_signatures.function_keys())
      self._functions = module.get_inference_signatures(function_keys)
      self._input_type = module.input_type

  @property
  def class_names(self) -> List[str]:
    if self.class_name_strings:
      return self.class_name_strings[1]
    return list(self.custom_vocabulary[0]) if self.custom_vocabulary else None

  def __call__(self, path: str, image: np.ndarray) -> Dict[str, np.ndarray]:
    if self._input_type == export_module.IMAGE_BYTES:
      with open(path, 'rb') as f:
        inputs = {'image_bytes': tf.constant(f.read())}
    else:
      inputs = {'images': tf.constant(image[None])}
    if self.class_name_strings:
      class_names, _, is_thing = self.class_name_strings
      inputs['class_names'] = tf.constant(class_names)
      if self.task == 'panoptic':
        inputs['is_thing'] = tf.constant(is_thing)
      outputs = self._functions[self.task + text_signatures.CLASS_NAMES_SUFFIX](**inputs)
    elif self.custom_vocabulary:
      names, embeddings, is_thing = self.custom_vocabulary
      inputs['class_embeddings'] = tf.constant(embeddings, tf.float32)
      inputs['class_names'] = tf.constant(list(names))
      if self.task == 'panoptic':
        inputs['is_thing'] = tf.constant(np.asarray(is_thing, bool))
      outputs = self._functions[f'{self.task}_with_vocabulary'](**inputs)
    else:
      outputs = self._functions[self.task](**inputs)
    return {key: value.numpy() for key, value in outputs.items()}


def _decode(values) -> List[str]:
  return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def render(task: str, image: np.ndarray, outputs: Dict[str, np.ndarray], class_names,
           score_threshold: float):
  """Returns (overlay uint8 [H, W, 3], JSON-able result) of one image."""
  if task == 'panoptic':
    valid = outputs['segment_valid'][0]
    names = class_names or _decode(outputs['segment_class_names'][0])
    segment_map = outputs['panoptic_map'][0]
    if class_names is None:  # Build a name table indexed by class id from the segments.
      table = {}
      for cls, name in zip(outputs['segment_classes'][0][valid], np.asarray(names)[valid]):
        table[int(cls)] = name
      names = [table.get(i, str(i)) for i in range(max(table, default=-1) + 1)]
    instance_map = np.where(outputs['category_map'][0] >= 0, segment_map, 0)
    overlay = visualization.overlay_panoptic(image, outputs['category_map'][0], instance_map,
                                             names)
    segments = [{'id': int(i + 1), 'class_id': int(c), 'class_name': names[int(c)],
                 'score': float(s), 'is_thing': bool(t), 'area': int((segment_map == i + 1).sum())}
                for i, (c, s, t, v) in enumerate(zip(
                    outputs['segment_classes'][0], outputs['segment_scores'][0],
                    outputs['segment_is_thing'][0], valid)) if v]
    return overlay, {'segments': segments}
  if task == 'semantic':
    names = class_names or _decode(outputs['class_names'])
    class_map = outputs['class_map'][0]
    overlay = visualization.overlay_semantic(image, class_map, names)
    counts = np.bincount(class_map.ravel(), minlength=len(names))
    return overlay, {'class_pixels': {names[c]: int(n) for c, n in enumerate(counts) if n}}
  valid = outputs['valid'][0]
  names_by_detection = _decode(outputs['class_names'][0])
  names = class_names or _table_from_detections(outputs['classes'][0][valid],
                                                np.asarray(names_by_detection)[valid])
  overlay = visualization.overlay_instances(
      image, outputs['masks'][0][valid].astype(bool), outputs['classes'][0][valid],
      outputs['scores'][0][valid], names, score_threshold=score_threshold)
  detections = [{'class_id': int(c), 'class_name': n, 'score': float(s),
                 'box_yxyx': [float(v) for v in b]}
                for c, n, s, b, v in zip(outputs['classes'][0], names_by_detection,
                                         outputs['scores'][0], outputs['boxes'][0], valid) if v]
  return overlay, {'detections': detections}


def _table_from_detections(classes, names) -> List[str]:
  table = {int(c): n for c, n in zip(classes, names)}
  return [table.get(i, str(i)) for i in range(max(table, default=-1) + 1)]


def run(predictor: Predictor, image_paths: List[str], output_dir: str,
        score_threshold: float) -> str:
  """Writes `<stem>_<task>.png` per image and `results.json`; returns the JSON path."""
  os.makedirs(output_dir, exist_ok=True)
  results = {}
  for index, path in enumerate(image_paths):
    image = read_image(path)
    outputs = predictor(path, image)
    overlay, result = render(predictor.task, image, outputs, predictor.class_names,
                             score_threshold)
    stem = os.path.splitext(os.path.basename(path))[0]
    overlay_path = os.path.join(output_dir, f'{stem}_{predictor.task}.png')
    visualization.save_png(overlay, overlay_path)
    results[path] = {'overlay': overlay_path, **result}
    print(f'[predict] {index + 1}/{len(image_paths)} {path} -> {overlay_path}')
  results_path = os.path.join(output_dir, 'results.json')
  with tempfile.NamedTemporaryFile('w', dir=output_dir, delete=False, suffix='.tmp') as f:
    json.dump(results, f, indent=1)
  os.replace(f.name, results_path)
  return results_path


def main(_) -> None:
  if not FLAGS.images or not FLAGS.output_dir:
    console.fail('--images and --output_dir are required')
  if bool(FLAGS.saved_model) == bool(FLAGS.checkpoint):
    console.fail('give exactly one of --saved_model or --checkpoint')
  try:
    image_paths = list_images(FLAGS.images)
    if FLAGS.max_images:
      image_paths = image_paths[:FLAGS.max_images]
    class_names = parse_class_names(FLAGS.class_names) if FLAGS.class_names else None
    predictor = Predictor(FLAGS.task, FLAGS.vocabulary, FLAGS.text_encoder, class_names,
                          FLAGS.stuff_classes)
    if FLAGS.saved_model:
      predictor.load(saved_model=FLAGS.saved_model)
    else:
      if not FLAGS.experiment:
        console.fail('--checkpoint needs --experiment (and usually --config_file)')
      params = experiment_lib.parse_experiment(FLAGS.experiment, FLAGS.config_file,
                                               FLAGS.params_override)
      predictor.load(module=loader.build_serving_module(params, FLAGS.checkpoint))
    results_path = run(predictor, image_paths, FLAGS.output_dir, FLAGS.score_threshold)
  except (ValueError, KeyError, FileNotFoundError, ImportError,
          tf.errors.InvalidArgumentError) as e:
    console.fail(str(getattr(e, 'message', e)))
  print(f'[predict] results: {results_path}')


if __name__ == '__main__':
  console.quiet_logs()
  app.run(main, flags_parser=console.parse_flags_or_fail)
