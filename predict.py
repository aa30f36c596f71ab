r"""Segments images; writes one figure PNG per image, a results JSON and the standard result files
that `python -m official_dataseg.evaluation.evaluate` scores.

  python predict.py --saved_model=EXPORT_DIR --images=photo.jpg,more/ --output_dir=OUT \
      [--task=panoptic|semantic|instance] [--vocabulary=pascal_voc | --vocabulary=my.npz |
       --class_names="cat,dog;puppy,grass" --stuff_classes=grass | --class_names=names.txt] \
      [--annotations=GT.json]
  python predict.py --saved_model=EXPORT_DIR --tfrecords='tfrecords/ade20k_semantic/val-*' \
      --vocabulary=ade20k_semantic --task=semantic --output_dir=OUT
  python predict.py --checkpoint=MODEL_DIR --experiment=dataseg_demo \
      --config_file=MODEL_DIR/params.yaml [--dataset=NAME] --images=... --output_dir=OUT
  python predict.py --saved_model=EXPORT_DIR \
      --runs=ade20k_semantic:semantic,coco_panoptic:panoptic \
      --tfrecords='tfrecords/{vocabulary}/val-*' --output_dir='OUT/{vocabulary}'

`--runs` predicts several (vocabulary, task) pairs in one process with one loaded model (TensorFlow
start-up and the SavedModel load are paid once); "{vocabulary}" in the paths becomes each run's.

A figure shows input | prediction, plus the ground truth when the images come from converted
TFRecords (`--tfrecords`), side by side with the class legend beside them (see
`official_dataseg/evaluation/figures.py`). `--vocabulary` swaps the classes: a built-in vocabulary
name or an embeddings `.npz` written by `python -m official_dataseg.text.embed`; without it the
exported default vocabulary is used (with `--checkpoint`: that of the experiment dataset
`--dataset`, with its read-out thresholds and dataset-specific modules, as evaluation uses them).
`--class_names` gives the classes as names only (synonyms after ';'), embedded inside a SavedModel
exported with `--with_text_encoder` (its `*_with_class_names` signatures; with --checkpoint the
encoder is built in process).

Result files (`evaluation/result_files.py`): OUT/panoptic.json + OUT/panoptic/, or
OUT/instances_results.json, or OUT/semantic/<image stem>.png. Category ids are the vocabulary's
dataset ids when the vocabulary is known (a built-in `--vocabulary`, or `--checkpoint`), else class
indices. Image ids come from `--annotations` (a COCO-format JSON, matched by file base name), else
the file stem (an int when numeric). Images are decoded with TensorFlow's decoder, as in the
evaluation input pipeline, so the numbers equal `train.py --mode=eval` on the same images.
"""
import functools
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

# Before TensorFlow is imported: Keras 2 (tf_keras) and no C++ start-up lines.
from official_dataseg.utils import quiet_tensorflow  # pylint: disable=unused-import

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
import tensorflow as tf

from official_dataseg.evaluation import figures
from official_dataseg.evaluation import groundtruth
from official_dataseg.evaluation import result_files
from official_dataseg.evaluation import visualization
from official_dataseg.serving import export_module
from official_dataseg.serving import loader
from official_dataseg.serving import text_signatures
from official_dataseg.text import class_name_encoder
from official_dataseg.text import embeddings as embeddings_lib
from official_dataseg.text import vocabulary as vocabulary_lib
from official_dataseg.utils import atomic_write
from official_dataseg.utils import console
from official_dataseg.utils import experiment as experiment_lib

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')

flags.DEFINE_string('saved_model', None, 'An exported SavedModel directory.')
flags.DEFINE_string('checkpoint', None, 'Or: a training checkpoint (prefix or directory), '
                    'with --experiment and --config_file.')
# --experiment, --config_file, --params_override (with --checkpoint for predict.py).
experiment_lib.define_experiment_flags()
flags.adopt_module_key_flags(experiment_lib)
flags.DEFINE_list('images', None, 'Image files and/or folders of images.')
flags.DEFINE_string('tfrecords', '', 'Or: converted TFRecords (file pattern); the figures then '
                    'show the ground truth too. Needs --vocabulary, the one they were converted '
                    'with.')
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
flags.DEFINE_string('dataset', '', 'With --checkpoint: the experiment dataset whose vocabulary, '
                    'read-out thresholds and dataset-specific modules are used (default: the '
                    'first panoptic validation dataset).')
flags.DEFINE_list('runs', [], 'Several predictions by one process, sharing the loaded model: '
                  'VOCABULARY:TASK pairs (e.g. "ade20k_semantic:semantic,coco_panoptic:panoptic")'
                  ', each replacing --vocabulary and --task; "{vocabulary}" in --images, '
                  '--tfrecords and --output_dir becomes each run\'s vocabulary.')
flags.DEFINE_string('annotations', '', 'COCO-format JSON whose `images` give the image ids of the '
                    'result files (matched by file base name); default: the file stems.')

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
  """uint8 [H, W, 3], decoded as the evaluation input pipeline decodes (TensorFlow)."""
  try:
    with open(path, 'rb') as f:
      encoded = f.read()
    image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8, expand_animations=False)
    return image.numpy()
  except (OSError, ValueError, tf.errors.InvalidArgumentError) as e:
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
    self.saved_model = None  # The loaded SavedModel object, held while its signatures run.
    self.custom_vocabulary = None
    # The dataset's category id of each class index (result files), when known.
    self.category_ids = None
    if vocabulary in vocabulary_lib.list_vocabularies():
      self.category_ids = [c.id for c in vocabulary_lib.load_vocabulary(vocabulary).classes]
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

  def load(self, saved_model: str = None, module=None, loaded=None) -> None:
    """Loads `saved_model` (or uses `loaded`, that directory's `tf.saved_model.load`), or
    takes the signatures of an in-process serving `module`."""
    if saved_model:
      # Kept: the signatures alone do not keep the loaded variables alive.
      self.saved_model = loaded if loaded is not None else tf.saved_model.load(saved_model)
      self._functions = self.saved_model.signatures
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

  @property
  def is_thing(self) -> Optional[np.ndarray]:
    return np.asarray(self.custom_vocabulary[2], bool) if self.custom_vocabulary else None

  def __call__(self, path: str, image: np.ndarray,
               encoded_image: Optional[bytes] = None) -> Dict[str, np.ndarray]:
    if self._input_type == export_module.IMAGE_BYTES:
      if encoded_image is None:
        with open(path, 'rb') as f:
          encoded_image = f.read()
      inputs = {'image_bytes': tf.constant(encoded_image)}
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
           score_threshold: float, factor: int = 1):
  """Returns (overlay uint8 [H * factor, W * factor, 3] without legend, {class id: name} drawn,
  JSON-able result) of one image; `factor` enlarges the drawing (see `figures`)."""
  image = figures.enlarge_image(image, factor)
  enlarge = functools.partial(figures.enlarge_labels, factor=factor)
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
    overlay = visualization.overlay_panoptic(image, enlarge(outputs['category_map'][0]),
                                             enlarge(instance_map), names, legend=False)
    drawn = figures.names_by_id(outputs['category_map'][0], names)
    segments = [{'id': int(i + 1), 'class_id': int(c), 'class_name': names[int(c)],
                 'score': float(s), 'is_thing': bool(t), 'area': int((segment_map == i + 1).sum())}
                for i, (c, s, t, v) in enumerate(zip(
                    outputs['segment_classes'][0], outputs['segment_scores'][0],
                    outputs['segment_is_thing'][0], valid)) if v]
    return overlay, drawn, {'segments': segments}
  if task == 'semantic':
    names = class_names or _decode(outputs['class_names'])
    class_map = outputs['class_map'][0]
    overlay = visualization.overlay_semantic(image, enlarge(class_map), names, legend=False)
    counts = np.bincount(class_map.ravel(), minlength=len(names))
    return overlay, figures.names_by_id(class_map, names), {
        'class_pixels': {names[c]: int(n) for c, n in enumerate(counts) if n}}
  valid = outputs['valid'][0]
  names_by_detection = _decode(outputs['class_names'][0])
  names = class_names or _table_from_detections(outputs['classes'][0][valid],
                                                np.asarray(names_by_detection)[valid])
  masks = outputs['masks'][0][valid]
  shown = ((outputs['scores'][0][valid] >= score_threshold) &
           masks.reshape(len(masks), -1).any(axis=1))  # What `overlay_instances` draws.
  overlay = visualization.overlay_instances(
      image, enlarge(masks.astype(bool)), outputs['classes'][0][valid],
      outputs['scores'][0][valid], names, score_threshold=score_threshold, legend=False)
  drawn = figures.names_by_id(outputs['classes'][0][valid][shown], names)
  detections = [{'class_id': int(c), 'class_name': n, 'score': float(s),
                 'box_yxyx': [float(v) for v in b]}
                for c, n, s, b, v in zip(outputs['classes'][0], names_by_detection,
                                         outputs['scores'][0], outputs['boxes'][0], valid) if v]
  return overlay, drawn, {'detections': detections}


def _table_from_detections(classes, names) -> List[str]:
  table = {int(c): n for c, n in zip(classes, names)}
  return [table.get(i, str(i)) for i in range(max(table, default=-1) + 1)]


def unique_stem(name: str, taken: set) -> str:
  """The file stem naming an input's outputs; a stem already in `taken` gets `-2`, `-3`, ...
  (in input order), so inputs with the same file name in different folders never overwrite
  each other's outputs. Adds the stem to `taken`."""
  stem = base = os.path.splitext(os.path.basename(name))[0]
  copy = 1
  while stem in taken:
    copy += 1
    stem = f'{base}-{copy}'
  taken.add(stem)
  return stem


def unique_stems(image_paths: List[str]) -> List[str]:
  """`unique_stem` of each path, in order."""
  taken = set()
  return [unique_stem(path, taken) for path in image_paths]


def _inputs(image_paths: List[str], tfrecords: str, max_images: int):
  """(name, image, encoded image or None, ground truth `groundtruth.Example` or None) items."""
  if tfrecords:
    for example in groundtruth.read_examples(tfrecords, max_images):
      yield example.source_id, example.image, example.encoded_image, example
  else:
    for path in image_paths[:max_images or None]:
      yield path, read_image(path), None, None


def run(predictor: Predictor, image_paths: List[str], output_dir: str,
        score_threshold: float, tfrecords: str = '', max_images: int = 0,
        annotations: str = '') -> str:
  """Writes a figure `<stem>_<task>.png` per image, `results.json` and the result files (see the
  module docstring); returns the results.json path.

  A figure is input | prediction (| ground truth, for `tfrecords` examples) at a display size of
  at least `figures.MIN_LONG_SIDE` px, with the classes shown listed beside the panels. Stems
  come from `unique_stem`.
  """
  os.makedirs(output_dir, exist_ok=True)
  image_ids = result_files.image_ids_by_file_name(annotations) if annotations else None
  evaluable = result_files.ResultFiles(output_dir, predictor.task, predictor.category_ids)
  results = {}
  taken_stems = set()
  for index, (name, image, encoded_image, example) in enumerate(
      _inputs(image_paths, tfrecords, max_images)):
    outputs = predictor(name, image, encoded_image)
    factor = figures.display_factor(*image.shape[:2])
    overlay, drawn, result = render(predictor.task, image, outputs, predictor.class_names,
                                    score_threshold, factor)
    panels = [('input', figures.enlarge_image(image, factor)), ('prediction', overlay)]
    if example is not None:
      truth, truth_drawn = groundtruth.overlay(
          predictor.task, example, predictor.class_names, predictor.is_thing, factor)
      panels.append(('ground truth', truth))
      drawn = {**truth_drawn, **drawn}
    stem = unique_stem(name, taken_stems)
    overlay_path = os.path.join(output_dir, f'{stem}_{predictor.task}.png')
    visualization.save_png(figures.side_by_side(panels, figures.legend_entries(drawn)),
                           overlay_path)
    file_name = os.path.basename(name)
    if image_ids is not None and file_name not in image_ids:
      raise ValueError(f'--annotations {annotations}: no image with file name {file_name!r}')
    evaluable.add(image_ids[file_name] if image_ids is not None else
                  result_files.default_image_id(file_name), stem, outputs)
    results[name] = {'overlay': overlay_path, **result}
    print(f'[predict] {index + 1} {name} -> {overlay_path}')
  results_path = os.path.join(output_dir, 'results.json')
  with atomic_write.atomic_write(results_path) as f:
    json.dump(results, f, indent=1)
  print(f'[predict] result files: {", ".join(evaluable.close())}')
  return results_path


def parse_runs(runs: Sequence[str]) -> List[Tuple[str, str]]:
  """[(vocabulary, task)] of `--runs` entries 'VOCABULARY:TASK'."""
  parsed = []
  for entry in runs:
    vocabulary, _, task = entry.rpartition(':')
    if not vocabulary or task not in export_module.TASK_SIGNATURES:
      raise ValueError(f'--runs: {entry!r} is not VOCABULARY:TASK with TASK one of '
                       f'{", ".join(export_module.TASK_SIGNATURES)}')
    parsed.append((vocabulary, task))
  return parsed


def predict_one(vocabulary: str, task: str, loaded_model=None) -> Tuple[str, object]:
  """One prediction run of the flags with this vocabulary and task; returns (results.json path,
  the loaded SavedModel, for the next run to share)."""
  def fill(text: str) -> str:
    return text.replace('{vocabulary}', vocabulary) if text else text

  if FLAGS.tfrecords and not vocabulary:
    console.fail('--tfrecords needs --vocabulary: the vocabulary the TFRecords were converted '
                 'with (their class indices)')
  image_paths = list_images([fill(p) for p in FLAGS.images]) if FLAGS.images else []
  class_names = parse_class_names(FLAGS.class_names) if FLAGS.class_names else None
  predictor = Predictor(task, vocabulary, FLAGS.text_encoder, class_names, FLAGS.stuff_classes)
  if FLAGS.saved_model:
    predictor.load(saved_model=FLAGS.saved_model, loaded=loaded_model)
  else:
    if not FLAGS.experiment:
      console.fail('--checkpoint needs --experiment (and usually --config_file)')
    params = experiment_lib.parse_experiment(FLAGS.experiment, FLAGS.config_file,
                                             FLAGS.params_override)
    if (predictor.category_ids is None and not vocabulary
        and not predictor.class_name_strings):
      dataset = loader.find_dataset_config(params, FLAGS.dataset)
      predictor.category_ids = [
          c.id for c in vocabulary_lib.load_vocabulary(dataset.vocabulary).classes]
    predictor.load(module=loader.build_serving_module(params, FLAGS.checkpoint, FLAGS.dataset))
  results_path = run(predictor, image_paths, fill(FLAGS.output_dir), FLAGS.score_threshold,
                     fill(FLAGS.tfrecords), FLAGS.max_images, FLAGS.annotations)
  return results_path, predictor.saved_model


def main(_) -> None:
  if not (FLAGS.images or FLAGS.tfrecords) or not FLAGS.output_dir:
    console.fail('--images (or --tfrecords) and --output_dir are required')
  if FLAGS.images and FLAGS.tfrecords:
    console.fail('give --images or --tfrecords, not both')
  if bool(FLAGS.saved_model) == bool(FLAGS.checkpoint):
    console.fail('give exactly one of --saved_model or --checkpoint')
  try:
    runs = parse_runs(FLAGS.runs) if FLAGS.runs else [(FLAGS.vocabulary, FLAGS.task)]
    if len(runs) > 1 and '{vocabulary}' not in FLAGS.output_dir:
      console.fail('--runs with several runs needs "{vocabulary}" in --output_dir (one folder '
                   'per run)')
    loaded_model = None
    for vocabulary, task in runs:
      results_path, loaded_model = predict_one(vocabulary, task, loaded_model)
      print(f'[predict] results: {results_path}', flush=True)
  except (ValueError, KeyError, FileNotFoundError, ImportError,
          tf.errors.InvalidArgumentError) as e:
    console.fail(str(getattr(e, 'message', e)))


if __name__ == '__main__':
  console.quiet_logs()
  app.run(main, flags_parser=console.parse_flags_or_fail)
