"""The loss does not depend on how the batch is split across replicas.

Runs in a subprocess: two logical CPUs must be configured before TensorFlow
initialises its devices, which the test process has already done.
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

_SCRIPT = textwrap.dedent('''
    import json
    import numpy as np
    import tensorflow as tf
    from official_dataseg import common
    from official_dataseg.configs import losses as losses_config
    from official_dataseg.losses import criterion

    cpu = tf.config.list_physical_devices('CPU')[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    rng = np.random.default_rng(0)
    batch, queries, height, width, max_gt, classes = 2, 6, 8, 8, 4, 4
    mask_logits = rng.normal(size=(2, batch, queries, height, width))
    class_logits = rng.normal(size=(2, batch, queries, classes + 1))
    labels = {
        common.GT_MASKS: rng.integers(0, 2, (batch, max_gt, height, width)
                                      ).astype(np.uint8),
        common.GT_CLASSES: rng.integers(0, classes, (batch, max_gt)
                                        ).astype(np.int32),
        # Image 0 has 3 objects, image 1 has 1: unequal shares.
        common.GT_VALID: np.array([[1, 1, 1, 0], [1, 0, 0, 0]], np.float32),
        common.IGNORE_MASK: np.zeros((batch, height, width), np.uint8),
    }
    weights = losses_config.LossWeights(
        matching_focal=1.0, matching_projection=1.0, projection=1.0)
    loss = criterion.DataSegLoss(common.TASK_PANOPTIC, classes,
                                 [True, True, False, False], weights)
    full = loss(tf.constant(mask_logits, tf.float32),
                tf.constant(class_logits, tf.float32),
                {k: tf.constant(v) for k, v in labels.items()})

    strategy = tf.distribute.MirroredStrategy(['/cpu:0', '/cpu:1'])
    def replica_inputs(ctx):
      i = ctx.replica_id_in_sync_group
      return (tf.constant(mask_logits[:, i:i + 1], tf.float32),
              tf.constant(class_logits[:, i:i + 1], tf.float32),
              {k: tf.constant(v[i:i + 1]) for k, v in labels.items()})
    inputs = strategy.experimental_distribute_values_from_function(
        replica_inputs)
    per_replica = strategy.run(tf.function(loss), args=inputs)
    summed = {k: float(strategy.reduce(tf.distribute.ReduceOp.SUM, v,
                                       axis=None))
              for k, v in per_replica.items()}
    print(json.dumps({'full': {k: float(v) for k, v in full.items()},
                      'summed': summed}))
''')


@pytest.mark.slow
def test_sum_over_two_replicas_equals_single_replica_loss():
  env = dict(os.environ, TF_USE_LEGACY_KERAS='1', TF_CPP_MIN_LOG_LEVEL='3',
             CUDA_VISIBLE_DEVICES='-1')
  root = os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))))
  completed = subprocess.run([sys.executable, '-c', _SCRIPT], cwd=root,
                             env=env, capture_output=True, text=True,
                             timeout=300, check=False)
  assert completed.returncode == 0, completed.stderr[-3000:]
  result = json.loads(completed.stdout.strip().splitlines()[-1])
  for name in ('ce', 'focal', 'dice', 'projection', 'total', 'num_matched'):
    np.testing.assert_allclose(result['summed'][name], result['full'][name],
                               rtol=1e-5, err_msg=name)
  assert result['full']['projection'] > 0.0
