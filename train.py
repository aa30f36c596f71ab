r"""DaTaSeg training driver (Model Garden's `train_lib` with the usual flags).

  python train.py --experiment=dataseg_vitdet_l --mode=train_and_eval \
      --model_dir=/tmp/dataseg [--config_file=a.yaml ...] [--params_override=...] [--tpu=...]

Modes: train, eval, train_and_eval, continuous_eval. Experiments: see `--helpfull` or
docs/experiments.md.
"""
import os
import sys

# Before TensorFlow is imported: Keras 2 (tf_keras) and no C++ start-up lines.
from official_dataseg.utils import quiet_tensorflow  # pylint: disable=unused-import

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import gin

from official.common import distribute_utils
from official.common import flags as tfm_flags
from official.core import train_utils
from official.modeling import performance

from official_dataseg import registry_imports  # pylint: disable=unused-import
from official_dataseg.dataloaders import record_set
from official_dataseg.tasks import multi_dataset_trainer
from official_dataseg.utils import console
from official_dataseg.utils import cpu_replicas
from official_dataseg.utils import experiment as experiment_lib

FLAGS = flags.FLAGS
flags.DEFINE_integer(
    'cpu_replicas', 0,
    'Split the CPU into this many logical devices and mirror the model over them '
    '(runtime.distribution_strategy=mirrored): tries a multi-replica run on a machine without '
    'accelerators. 0: the strategy as configured.')
MODES = ('train', 'eval', 'train_and_eval', 'continuous_eval')


def _check_flags() -> None:
  """Fails with one line naming the valid choices instead of a stack trace."""
  registered = experiment_lib.registered_experiments()
  if FLAGS.experiment not in registered:
    console.fail(f'unknown --experiment={FLAGS.experiment!r}; '
                 f'registered experiments: {", ".join(registered)}')
  if FLAGS.mode not in MODES:
    console.fail(f'unknown --mode={FLAGS.mode!r}; valid modes: {", ".join(MODES)}')
  if FLAGS.cpu_replicas < 0:
    console.fail(f'--cpu_replicas={FLAGS.cpu_replicas}: expected 0 (off) or a replica count')
  for path in FLAGS.config_file or []:
    if not os.path.isfile(path):
      console.fail(f'--config_file={path!r} does not exist')


def _cpu_mirrored_strategy(num_replicas: int, configured: str):
  """MirroredStrategy over `num_replicas` logical CPU devices (`--cpu_replicas`)."""
  if configured != 'mirrored':
    console.fail(f'--cpu_replicas needs runtime.distribution_strategy=mirrored (got '
                 f'{configured!r}); add --params_override=runtime.distribution_strategy=mirrored')
  return cpu_replicas.cpu_mirrored_strategy(num_replicas)


def main(_) -> None:
  _check_flags()
  gin.parse_config_files_and_bindings(FLAGS.gin_file, FLAGS.gin_params)
  try:
    params = train_utils.parse_configuration(FLAGS, print_return=False)
  except (KeyError, ValueError, TypeError, AttributeError) as e:
    console.fail(f'invalid configuration: {e}')
  model_dir = FLAGS.model_dir
  if 'train' in FLAGS.mode:
    # Pure eval modes write no params.yaml: a continuous-eval job would race the trainer.
    train_utils.serialize_config(params, model_dir)
  if params.runtime.mixed_precision_dtype:
    performance.set_mixed_precision_policy(params.runtime.mixed_precision_dtype)

  if params.runtime.distribution_strategy == 'tpu' and not params.runtime.tpu:
    console.fail('this experiment runs on TPU (runtime.distribution_strategy=tpu): pass '
                 '--tpu=NAME, or choose another strategy, e.g. --params_override='
                 'runtime.distribution_strategy=mirrored,runtime.mixed_precision_dtype=float32')
  if FLAGS.cpu_replicas:
    strategy = _cpu_mirrored_strategy(FLAGS.cpu_replicas, params.runtime.distribution_strategy)
  else:
    strategy = distribute_utils.get_distribution_strategy(
        distribution_strategy=params.runtime.distribution_strategy,
        all_reduce_alg=params.runtime.all_reduce_alg,
        num_gpus=params.runtime.num_gpus,
        tpu_address=params.runtime.tpu)
  with strategy.scope():
    task = registry_imports.get_task(params.task, logging_dir=model_dir)
  try:
    runner = multi_dataset_trainer.MultiDatasetExperimentRunner(
        distribution_strategy=strategy, task=task, mode=FLAGS.mode, params=params,
        model_dir=model_dir)
    runner.run()
  except record_set.RecordSetError as e:  # Raised while the inputs are built: before step 1.
    console.fail(str(e).splitlines()[0])  # gin appends a line naming its configurable.
  train_utils.save_gin_config(FLAGS.mode, model_dir)


if __name__ == '__main__':
  tfm_flags.define_flags()
  flags.mark_flags_as_required(['experiment', 'mode', 'model_dir'])
  console.quiet_logs()
  app.run(main, flags_parser=console.parse_flags_or_fail)
