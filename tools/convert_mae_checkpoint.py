r"""Converts an MAE (PyTorch) pre-trained ViT into a DaTaSeg ViTDet checkpoint.

  python tools/convert_mae_checkpoint.py --experiment=dataseg_vitdet_b \
      --mae_checkpoint=mae_pretrain_vit_base.pth --output=checkpoints/mae_vit_b
  python tools/convert_mae_checkpoint.py --experiment=dataseg_vitdet_l \
      --mae_checkpoint=mae_pretrain_vit_large.pth --output=checkpoints/mae_vit_l

then train with `--params_override=task.init_checkpoint=checkpoints/mae_vit_b`.

The backbone is built from the experiment's config (after --config_file and
--params_override) exactly as training builds it, the MAE tensors are mapped
and checked (`official_dataseg/modeling/backbones/mae_checkpoint.py`), and
`tf.train.Checkpoint(backbone=...)` is written to a temporary prefix and
renamed into place, so an interrupted run leaves no complete-looking output.
A `.pth` file needs torch; an `.npz` archive with the same key names does not.
"""
import os

# Before TensorFlow is imported: Keras 2 (tf_keras) and no C++ start-up lines.
from official_dataseg.utils import quiet_tensorflow  # pylint: disable=unused-import

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import tensorflow as tf, tf_keras

from official_dataseg.modeling.backbones import mae_checkpoint
from official_dataseg.utils import console
from official_dataseg.utils import experiment as experiment_lib

flags.DEFINE_string('mae_checkpoint', None,
                    'MAE file: .pth ({"model": state_dict}, needs torch) or '
                    '.npz with the same key names.')
flags.DEFINE_string('experiment', 'dataseg_vitdet_b',
                    'Registered ViTDet experiment whose backbone receives the '
                    'weights (dataseg_vitdet_b or dataseg_vitdet_l).')
flags.DEFINE_multi_string('config_file', [], 'YAML config files applied in '
                          'order.')
flags.DEFINE_string('params_override', '', 'Overrides: "a.b=1,c.d=x" or YAML.')
flags.DEFINE_string('output', None, 'Checkpoint prefix to write (PREFIX.index '
                    'and PREFIX.data-*); pass it as task.init_checkpoint.')

FLAGS = flags.FLAGS


def write_checkpoint(backbone: tf_keras.Model, output: str) -> str:
  """Writes `tf.train.Checkpoint(backbone=backbone)` at `output` atomically.

  Files go to a temporary prefix first; data shards are renamed before the
  index, which is what makes a prefix readable, and any old index at `output`
  is removed first, so no mix of old and new files ever looks complete.

  Args:
    backbone: the backbone holding the converted weights.
    output: checkpoint prefix.

  Returns:
    `output`.
  """
  directory = os.path.dirname(output)
  if directory:
    tf.io.gfile.makedirs(directory)
  temporary = f'{output}.tmp-{os.getpid()}'
  try:
    tf.train.Checkpoint(backbone=backbone).write(temporary)
    written = tf.io.gfile.glob(temporary + '.*')
    if tf.io.gfile.exists(output + '.index'):
      tf.io.gfile.remove(output + '.index')
    for path in sorted(written, key=lambda p: p.endswith('.index')):
      tf.io.gfile.rename(path, output + path[len(temporary):], overwrite=True)
  finally:
    for leftover in tf.io.gfile.glob(temporary + '.*'):
      tf.io.gfile.remove(leftover)
  return output


def convert(mae_path: str, params, output: str) -> mae_checkpoint.ConversionSummary:
  """Reads, maps and writes; returns the summary. Raises on any mismatch."""
  state_dict = mae_checkpoint.read_state_dict(mae_path)
  backbone = mae_checkpoint.build_backbone(params.task)
  summary = mae_checkpoint.load_mae_weights(state_dict, backbone)
  write_checkpoint(backbone, output)
  return summary


def main(_) -> None:
  for name in ('mae_checkpoint', 'output'):
    if not FLAGS[name].value:
      console.fail(f'--{name} is required')
  if not tf.io.gfile.exists(FLAGS.mae_checkpoint):
    console.fail(f'--mae_checkpoint={FLAGS.mae_checkpoint!r} does not exist')
  try:
    params = experiment_lib.parse_experiment(
        FLAGS.experiment, FLAGS.config_file, FLAGS.params_override)
    summary = convert(FLAGS.mae_checkpoint, params, FLAGS.output)
  except (ValueError, KeyError) as e:
    console.fail(str(e))
  print(summary.describe())
  print(f'wrote {FLAGS.output} (use task.init_checkpoint={FLAGS.output}, '
        f'task.init_checkpoint_modules=backbone)')


if __name__ == '__main__':
  console.quiet_logs()
  app.run(main, flags_parser=console.parse_flags_or_fail)
