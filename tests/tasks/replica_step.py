r"""One DaTaSeg train step on a fixed global batch under a chosen `tf.distribute` strategy.

Run by tests/tasks/test_distribution.py in subprocesses (each strategy needs its own TensorFlow):

  python -m tests.tasks.replica_step --strategy=one_device|mirrored|multi_worker \
      --suite=TFRECORD_DIR --weights=CKPT_PREFIX --output=RESULT.json

The global batch (2 images of the built-in COCO-like set) is split one image per replica. The
result holds the global loss (per-replica losses summed: the criterion normalises by the objects of
all replicas) and, per trainable variable, the sum of its values after the update.
`--weights` is written by the one_device run and read by the others, so all start equal.
"""
import argparse
import json
import os

os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow as tf, tf_keras  # pylint: disable=g-import-not-at-top

from official_dataseg.utils import cpu_replicas  # pylint: disable=g-import-not-at-top

GLOBAL_BATCH = 2


def _strategy(name: str):
  if name == 'multi_worker':
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == 'mirrored':
    return cpu_replicas.cpu_mirrored_strategy(2)
  return tf.distribute.OneDeviceStrategy('/cpu:0')


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument('--strategy', required=True)
  parser.add_argument('--suite', required=True)
  parser.add_argument('--weights', required=True)
  parser.add_argument('--output', required=True)
  args = parser.parse_args()
  strategy = _strategy(args.strategy)  # First: MultiWorkerMirrored must precede other TF use.

  # pylint: disable=g-import-not-at-top
  from official.core import exp_factory
  from official.core import task_factory
  from official_dataseg import common
  from official_dataseg import registry_imports  # pylint: disable=unused-import
  from official_dataseg.dataloaders import input_builder
  from tests.tasks import helpers
  # pylint: enable=g-import-not-at-top

  params = exp_factory.get_exp_config('dataseg_demo')
  params.override(helpers.SMALL_SIZES, is_strict=True)
  params.override(helpers.TINY_RESNET, is_strict=True)
  # Batch statistics over the global batch, as on one device.
  params.task.model.norm_activation.use_sync_bn = True
  params.task.train_data.global_batch_size = GLOBAL_BATCH
  helpers.point_at_suite(params, args.suite)
  coco_index = [d.name for d in params.task.train_data.datasets].index('synthetic_coco')
  reader = input_builder.build_train_datasets(params.task.train_data)['synthetic_coco']
  batch = next(iter(reader))
  assert int(batch[common.DATASET_ID][0]) == coco_index

  with strategy.scope():
    task = task_factory.get_task(params.task)
    model = task.build_model()
    # Create every variable (Keras builds layers lazily) before the weights are written / read,
    # so all runs start from identical weights.
    height, width = params.task.model.input_size[:2]
    model(task._model_inputs(tf.zeros([1, height, width, 3]),  # pylint: disable=protected-access
                             task._train_vocabularies,  # pylint: disable=protected-access
                             tf.constant(0)), training=False)
    optimizer = task.create_optimizer(params.trainer.optimizer_config, params.runtime)
    checkpoint = tf.train.Checkpoint(model=model)
    if args.strategy == 'one_device':
      checkpoint.write(args.weights)
    else:
      checkpoint.read(args.weights).assert_existing_objects_matched()
    # Slots now, not inside the first traced step (as Orbit's loop, which traces a warm step).
    optimizer._create_all_weights(model.trainable_variables)  # pylint: disable=protected-access

  initial = {v.name: float(np.sum(v.numpy(), dtype=np.float64)) for v in model.trainable_variables}
  per_replica = GLOBAL_BATCH // strategy.num_replicas_in_sync
  inputs = strategy.experimental_distribute_values_from_function(
      lambda ctx: {k: v[ctx.replica_id_in_sync_group * per_replica:
                        (ctx.replica_id_in_sync_group + 1) * per_replica]
                   for k, v in batch.items()})

  @tf.function
  def step(inputs):
    logs = strategy.run(lambda x: task.train_step(x, model, optimizer), args=(inputs,))
    return (strategy.reduce(tf.distribute.ReduceOp.SUM, logs[task.loss], axis=None),
            strategy.experimental_local_results(logs['learning_rate']),
            strategy.experimental_local_results(logs['gradient_norm']))

  loss, lrs, norms = step(inputs)
  loss = float(loss.numpy())

  result = {'loss': loss, 'num_replicas': strategy.num_replicas_in_sync,
            'learning_rates': [float(x) for x in lrs],
            'gradient_norms': [float(x) for x in norms],
            'initial_sums': initial,
            'image_sum': float(np.sum(batch[common.IMAGE].numpy(), dtype=np.float64)),
            'variable_sums': {v.name: float(np.sum(v.numpy(), dtype=np.float64))
                              for v in model.trainable_variables}}
  with open(args.output, 'w') as f:
    json.dump(result, f)
  tf_keras.backend.clear_session()


if __name__ == '__main__':
  main()
