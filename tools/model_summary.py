r"""Prints DaTaSeg parameter counts per component and forward GFLOPs.

  python tools/model_summary.py --backbones=r50,vit-b,vit-l --image_size=1024
  python tools/model_summary.py --tiny --time_batch_size=8   # CPU timing

GFLOPs come from TensorFlow's graph profiler run on the model's concrete
function (no forward pass is executed). Conventions:
  * a multiply and an add count as 2 FLOPs (TF's registry); detectron2 /
    fvcore and most papers count one multiply-add as one FLOP, i.e. half;
  * TF's registry has no Einsum entry; Model Garden's train_utils registers
    one (2 * multiply-adds of a two-operand einsum), used here for the
    attention and mask-logit products;
  * element-wise ops (norms, softmax, activations) count as TF counts them
    (mostly 1 FLOP per output element); resizes and gathers count 0.
"""
import time

# Before TensorFlow is imported: Keras 2 (tf_keras) and no C++ start-up lines.
from official_dataseg.utils import quiet_tensorflow  # pylint: disable=unused-import

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
import tensorflow as tf, tf_keras

# Imported for its side effect: it registers an Einsum FLOPs counter.
from official.core import train_utils  # pylint: disable=unused-import
from official_dataseg import common
from official_dataseg.configs import model as model_config
from official_dataseg.modeling import factory

_BACKBONES = flags.DEFINE_list('backbones', ['r50', 'vit-b', 'vit-l'],
                               'r50, vit-b and/or vit-l.')
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 1024, 'Square input side.')
_NUM_CLASSES = flags.DEFINE_integer('num_classes', 133,
                                    'Vocabulary size C for the classifier.')
_TINY = flags.DEFINE_bool('tiny', False,
                          'Summarise `tiny_model_config()` instead.')
_TIME_BATCH_SIZE = flags.DEFINE_integer(
    'time_batch_size', 0, 'If > 0, also time a forward pass of this batch.')


def build_config(backbone_id: str, image_size: int):
  if backbone_id == 'tiny':
    return model_config.tiny_model_config()
  config = model_config.DataSegModel(input_size=[image_size, image_size, 3])
  if backbone_id != 'r50':
    config.backbone = model_config.Backbone(
        type='vitdet', vitdet=model_config.ViTDet(model_id=backbone_id))
  config.norm_activation.use_sync_bn = False
  return config


def _count(variables) -> int:
  return int(sum(np.prod(v.shape) for v in variables))


def _inputs(batch_size, image_size, num_classes, text_dim):
  return {
      common.IMAGE: tf.random.normal([batch_size, image_size, image_size, 3]),
      common.CLASS_EMBEDDINGS: tf.random.normal([num_classes, text_dim]),
      common.CLASS_VALID: tf.ones([num_classes], tf.bool),
  }


def forward_gflops(function, *args) -> float:
  """GFLOPs of one call of a tf.function, from TF's graph profiler."""
  graph = function.get_concrete_function(*args).graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options['output'] = 'none'
  profile = tf.compat.v1.profiler.profile(
      graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd='op',
      options=options)
  return profile.total_float_ops / 1e9


def summarise(backbone_id: str):
  config = build_config(backbone_id, _IMAGE_SIZE.value)
  image_size = config.input_size[0]
  model = factory.build_dataseg_model(
      tf_keras.layers.InputSpec(shape=[1, image_size, image_size, 3]),
      config, num_datasets=3)
  inputs = _inputs(1, image_size, _NUM_CLASSES.value,
                   config.classifier_head.text_embedding_dim)
  specs = tf.nest.map_structure(
      lambda t: tf.TensorSpec(t.shape, t.dtype), inputs)
  forward = tf.function(lambda x: model(x, training=False))
  total_gflops = forward_gflops(forward, specs)
  backbone_gflops = forward_gflops(
      tf.function(lambda x: model.backbone(x, training=False)),
      specs[common.IMAGE])
  decoder = model.transformer_decoder
  heads = _count([w for h in decoder.heads for w in h.weights])
  rows = [
      ('backbone', _count(model.backbone.weights)),
      ('pixel_decoder', _count(model.pixel_decoder.weights)),
      ('transformer_decoder (w/o heads)', _count(decoder.weights) - heads),
      (f'prediction heads ({len(decoder.heads)})', heads),
      ('classifier', _count(model.classifier.weights)),
      ('total', _count(model.weights)),
  ]
  print(f'\n== {backbone_id} at {image_size}x{image_size}, batch 1 ==')
  for name, count in rows:
    print(f'  {name:34s} {count / 1e6:9.2f} M params')
  print(f'  {"backbone forward":34s} {backbone_gflops:9.1f} GFLOPs')
  print(f'  {"model forward":34s} {total_gflops:9.1f} GFLOPs '
        f'(C = {_NUM_CLASSES.value}; multiply + add = 2 FLOPs)')
  if _TIME_BATCH_SIZE.value:
    batch = _inputs(_TIME_BATCH_SIZE.value, image_size, _NUM_CLASSES.value,
                    config.classifier_head.text_embedding_dim)
    forward(batch)[common.MASK_LOGITS].numpy()  # Trace and warm up.
    times = []
    for _ in range(3):
      start = time.perf_counter()
      forward(batch)[common.MASK_LOGITS].numpy()
      times.append(time.perf_counter() - start)
    print(f'  forward batch {_TIME_BATCH_SIZE.value}: '
          f'{min(times) * 1e3:.0f} ms (best of 3, tf.function)')


def main(_):
  for backbone_id in (['tiny'] if _TINY.value else _BACKBONES.value):
    summarise(backbone_id)


if __name__ == '__main__':
  app.run(main)
