"""One tiny trained-shape model, its checkpoint and its two SavedModels (image_tensor and
image_bytes), shared by the serving tests: exports are the slow part, so they happen once."""
import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf

from official.core import exp_factory
from official.modeling import hyperparams

from official_dataseg import common
from official_dataseg import registry_imports  # pylint: disable=unused-import
from official_dataseg.tasks import dataseg_task

import export_saved_model

# The demo experiment shrunk so that exports take seconds; random weights suffice for equality.
SMALL_DEMO = {
    'runtime': {'distribution_strategy': 'one_device', 'mixed_precision_dtype': 'float32'},
    'task': {'model': {
        'pixel_decoder': {'num_filters': 32, 'mask_embedding_dim': 32},
        'transformer_decoder': {'num_layers': 2, 'hidden_size': 32, 'ffn_dim': 64,
                                'num_heads': 2, 'num_queries': 16},
    }},
}
# Random weights give flat class probabilities (max ~0.1-0.2) and heavily overlapping masks: low
# panoptic thresholds keep segments, so the comparison is not between two empty results.
PANOPTIC_THRESHOLD = 0.1
PANOPTIC_OVERLAP = 0.0


@dataclasses.dataclass
class ServingSetup:
  params: object
  task: object
  model: object
  checkpoint: str
  tensor_model: object   # loaded image_tensor SavedModel
  bytes_model: object    # loaded image_bytes SavedModel
  bytes_export_dir: str = ''  # where the image_bytes SavedModel is


def small_demo_params():
  params = exp_factory.get_exp_config('dataseg_demo')
  params.override(SMALL_DEMO, is_strict=True)
  datasets = []
  for dataset in params.task.validation_data.datasets:
    if dataset.task_type == common.TASK_PANOPTIC:
      dataset.panoptic_confidence_threshold = PANOPTIC_THRESHOLD
      dataset.panoptic_overlap_threshold = PANOPTIC_OVERLAP
    datasets.append(dataset)
  params.task.validation_data.datasets = datasets
  return params


@pytest.fixture(scope='package')
def exact_graph_numerics():
  """Turns Grappler off while the serving tests run.

  Grappler's rewrites (oneDNN op fusion, constant folding of the resize boxes, ...) make a graph
  round differently from the same ops run eagerly, by ~1e-5 on the logits: enough to flip a
  pixel at a decision boundary. Without them graph and eager results are bitwise equal, so
  "masks identical" to the (eager, host-side) evaluation read-out is testable.
  """
  before = tf.config.optimizer.get_experimental_options()
  tf.config.optimizer.set_experimental_options({'disable_meta_optimizer': True})
  yield
  tf.config.optimizer.set_experimental_options(
      {'disable_meta_optimizer': before.get('disable_meta_optimizer', False)})


@pytest.fixture(scope='package')
def serving_setup(tmp_path_factory, exact_graph_numerics) -> ServingSetup:
  del exact_graph_numerics
  root = tmp_path_factory.mktemp('serving')
  params = small_demo_params()
  task = dataseg_task.DataSegTask(params.task)
  tf.random.set_seed(7)
  model = task.build_model()
  height, width = params.task.model.input_size[:2]
  embedding_dim = params.task.model.classifier_head.text_embedding_dim
  model({common.IMAGE: tf.zeros([1, height, width, 3]),
         common.CLASS_EMBEDDINGS: tf.ones([3, embedding_dim]),
         common.CLASS_VALID: tf.ones([3], tf.bool),
         common.DATASET_ID: tf.constant(0)}, training=False)
  checkpoint = tf.train.Checkpoint(model=model).save(str(root / 'ckpt'))
  exports = {}
  for input_type in ('image_tensor', 'image_bytes'):
    export_dir = str(root / input_type)
    export_saved_model.export(params, checkpoint, export_dir, input_type, max_image_size=1024)
    exports[input_type] = tf.saved_model.load(export_dir)
  return ServingSetup(params, task, model, checkpoint, exports['image_tensor'],
                      exports['image_bytes'], str(root / 'image_bytes'))


def random_image(height: int, width: int, seed: int) -> np.ndarray:
  """uint8 [H, W, 3] with smooth blobs (so that masks have structure) plus noise."""
  rng = np.random.default_rng(seed)
  yy, xx = np.mgrid[0:height, 0:width]
  image = np.zeros([height, width, 3], np.float32)
  for _ in range(4):
    cy, cx, radius = rng.uniform(0, height), rng.uniform(0, width), rng.uniform(10, 60)
    image[(yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2] = rng.uniform(0, 255, 3)
  image += rng.normal(0, 10, image.shape)
  return np.clip(image, 0, 255).astype(np.uint8)
