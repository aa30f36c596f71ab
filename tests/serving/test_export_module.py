"""The exported SavedModel (both input types) against the evaluation path on the same images.

The reference is what evaluation does: the evaluation parser (resize and pad), the task's
`validation_step` on the trained `DataSegModel`, then `DatasetEvaluator` (logits back to the
original size, the task's read-out). Masks must be identical, scores within 1e-5.
"""
import io

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf

from official_dataseg import common
from official_dataseg.dataloaders import dataseg_parser
from official_dataseg.evaluation import dataset_evaluator
from official_dataseg.evaluation import original_size
from official_dataseg.evaluation import postprocessing
from official_dataseg.serving import export_module
from official_dataseg.serving import loader
from official_dataseg.tasks import vocabulary_tables
from official_dataseg.text import embeddings as embeddings_lib
from tests.serving.conftest import PANOPTIC_OVERLAP
from tests.serving.conftest import PANOPTIC_THRESHOLD
from tests.serving.conftest import random_image

# (H, W): wider than tall and smaller than the 128 input; taller and larger (downscaled); odd.
IMAGE_SIZES = ((96, 160), (200, 150), (77, 53))
SCORE_TOLERANCE = 1e-5


def _vocabulary(setup, dataset_name):
  dataset = loader.find_dataset_config(setup.params, dataset_name)
  return dataset, vocabulary_tables.load_dataset_vocabulary(
      dataset, setup.params.task.text_encoder,
      setup.params.task.model.classifier_head.text_embedding_dim)


def evaluation_prediction(setup, dataset_name: str, task_type: str, image: np.ndarray):
  """The evaluation path's prediction for one image (see the module docstring)."""
  dataset, vocabulary = _vocabulary(setup, dataset_name)
  # This dataset's evaluation config with the read-out of `task_type`.
  dataset = dataset.replace(task_type=task_type)
  parser = dataseg_parser.DataSegParser.from_config(
      dataset, setup.params.task.validation_data, dataset_id=0)
  height, width = image.shape[:2]
  decoded = {
      common.DECODED_IMAGE: tf.constant(image),
      common.DECODED_SOURCE_ID: tf.constant('image'),
      common.DECODED_HEIGHT: tf.constant(height), common.DECODED_WIDTH: tf.constant(width),
      common.DECODED_SEGMENTATION: tf.zeros([height, width], tf.int32),
      common.DECODED_CLASSES: tf.zeros([0], tf.int32),
      common.DECODED_BOXES: tf.zeros([0, 4], tf.float32),
      common.DECODED_IS_CROWD: tf.zeros([0], tf.bool),
      common.DECODED_IS_IGNORED: tf.zeros([0], tf.bool),
      common.DECODED_AREAS: tf.zeros([0], tf.float32),
  }
  inputs = {key: value[None] for key, value in parser.parse_fn(False)(decoded).items()}
  setup.task.set_eval_dataset(dataset_name)
  logs = tf.function(setup.task.validation_step)(inputs, setup.model)
  evaluator = dataset_evaluator.DatasetEvaluator(
      dataset, vocabulary.names, vocabulary.is_thing, keep_examples=1)
  evaluator.update(logs)
  return evaluator.examples[0]['prediction']


def assert_panoptic_equal(served, index, reference):
  np.testing.assert_array_equal(served['panoptic_map'][index], reference['segment_map'])
  np.testing.assert_array_equal(served['category_map'][index], reference['category_map'])
  for key in ('segment_classes', 'segment_is_thing', 'segment_valid'):
    np.testing.assert_array_equal(served[key][index], reference[key])
  np.testing.assert_allclose(served['segment_scores'][index], reference['segment_scores'],
                             atol=SCORE_TOLERANCE, rtol=0)
  return int(reference['segment_valid'].sum())


def assert_instance_equal(served, index, reference):
  valid = served['valid'][index]
  np.testing.assert_array_equal(served['masks'][index][valid].astype(bool), reference['masks'])
  np.testing.assert_array_equal(served['classes'][index][valid], reference['classes'])
  np.testing.assert_allclose(served['scores'][index][valid], reference['scores'],
                             atol=SCORE_TOLERANCE, rtol=0)
  return int(valid.sum())


def _call(signature, **inputs):
  return {key: value.numpy() for key, value in signature(**inputs).items()}


def _encode(image: np.ndarray, image_format: str) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format=image_format, quality=90)
  return buffer.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize('size', IMAGE_SIZES)
def test_image_tensor_signatures_equal_evaluation(serving_setup, size):
  # Two different images of one size in one batch: each must equal its own evaluation.
  images = np.stack([random_image(*size, seed=1), random_image(*size, seed=2)])
  signatures = serving_setup.tensor_model.signatures
  panoptic = _call(signatures['panoptic'], images=tf.constant(images))
  semantic = _call(signatures['semantic'], images=tf.constant(images))
  instance = _call(signatures['instance'], images=tf.constant(images))
  assert panoptic['panoptic_map'].shape == (2,) + size
  num_segments = num_detections = 0
  for index, image in enumerate(images):
    # The baked-in vocabulary is the first panoptic dataset's: synthetic_coco.
    num_segments += assert_panoptic_equal(panoptic, index, evaluation_prediction(
        serving_setup, 'synthetic_coco', common.TASK_PANOPTIC, image))
    np.testing.assert_array_equal(semantic['class_map'][index], evaluation_prediction(
        serving_setup, 'synthetic_coco', common.TASK_SEMANTIC, image)['label_map'])
    num_detections += assert_instance_equal(instance, index, evaluation_prediction(
        serving_setup, 'synthetic_coco', common.TASK_INSTANCE, image))
  # Not empty results compared with empty ones.
  assert num_segments >= 1 and num_detections >= 1


@pytest.mark.slow
@pytest.mark.parametrize('image_format', ['PNG', 'JPEG'])
def test_image_bytes_signatures_equal_evaluation(serving_setup, image_format):
  image_bytes = _encode(random_image(150, 110, seed=3), image_format)
  # The reference decodes as the TFRecord decoder does (TensorFlow's JPEG / PNG decoder).
  image = tf.io.decode_image(image_bytes, channels=3).numpy()
  signatures = serving_setup.bytes_model.signatures
  panoptic = _call(signatures['serving_default'], image_bytes=tf.constant(image_bytes))
  assert assert_panoptic_equal(panoptic, 0, evaluation_prediction(
      serving_setup, 'synthetic_coco', common.TASK_PANOPTIC, image)) >= 1
  semantic = _call(signatures['semantic'], image_bytes=tf.constant(image_bytes))
  np.testing.assert_array_equal(semantic['class_map'][0], evaluation_prediction(
      serving_setup, 'synthetic_coco', common.TASK_SEMANTIC, image)['label_map'])
  instance = _call(signatures['instance'], image_bytes=tf.constant(image_bytes))
  assert assert_instance_equal(instance, 0, evaluation_prediction(
      serving_setup, 'synthetic_coco', common.TASK_INSTANCE, image)) >= 1


@pytest.mark.slow
def test_with_vocabulary_signatures_equal_evaluation_of_that_dataset(serving_setup):
  # ADE semantic and O365 instance vocabularies given at call time equal those datasets'
  # evaluation (their own vocabulary tables inside the task).
  image = random_image(120, 90, seed=4)
  signatures = serving_setup.tensor_model.signatures
  _, ade = _vocabulary(serving_setup, 'synthetic_ade')
  semantic = _call(signatures['semantic_with_vocabulary'], images=tf.constant(image[None]),
                   class_embeddings=tf.constant(ade.embeddings),
                   class_names=tf.constant(ade.names))
  np.testing.assert_array_equal(semantic['class_map'][0], evaluation_prediction(
      serving_setup, 'synthetic_ade', common.TASK_SEMANTIC, image)['label_map'])
  assert [n.decode() for n in semantic['class_names']] == ade.names
  _, o365 = _vocabulary(serving_setup, 'synthetic_o365')
  instance = _call(signatures['instance_with_vocabulary'], images=tf.constant(image[None]),
                   class_embeddings=tf.constant(o365.embeddings),
                   class_names=tf.constant(o365.names))
  assert assert_instance_equal(instance, 0, evaluation_prediction(
      serving_setup, 'synthetic_o365', common.TASK_INSTANCE, image)) >= 1


def _in_process_logits(setup, image: np.ndarray, class_embeddings: np.ndarray):
  """The model called directly on the evaluation-preprocessed image, logits at [H, W]."""
  dataset, _ = _vocabulary(setup, 'synthetic_coco')
  parser = dataseg_parser.DataSegParser.from_config(
      dataset, setup.params.task.validation_data, dataset_id=0)
  height, width = image.shape[:2]
  parsed = parser.parse_fn(False)({
      common.DECODED_IMAGE: tf.constant(image), common.DECODED_SOURCE_ID: tf.constant('x'),
      common.DECODED_SEGMENTATION: tf.zeros([height, width], tf.int32),
      common.DECODED_CLASSES: tf.zeros([0], tf.int32),
      common.DECODED_BOXES: tf.zeros([0, 4], tf.float32),
      common.DECODED_IS_CROWD: tf.zeros([0], tf.bool),
      common.DECODED_IS_IGNORED: tf.zeros([0], tf.bool)})
  outputs = setup.model({
      common.IMAGE: parsed[common.IMAGE][None],
      common.CLASS_EMBEDDINGS: tf.constant(class_embeddings),
      common.CLASS_VALID: tf.ones([len(class_embeddings)], tf.bool),
      common.DATASET_ID: tf.constant(0)}, training=False)
  mask_logits = original_size.mask_logits_to_original(
      outputs[common.MASK_LOGITS][-1][0], parsed[common.IMAGE_INFO])[None]
  return mask_logits, outputs[common.CLASS_LOGITS][-1]


def unseen_vocabulary(setup, size: int):
  """`size` PASCAL Context classes named in no vocabulary of the experiment: never seen."""
  seen = set()
  for dataset in (list(setup.params.task.train_data.datasets) +
                  list(setup.params.task.validation_data.datasets)):
    seen.update(_vocabulary(setup, dataset.name)[1].names)
  names, vectors = embeddings_lib.load_class_embeddings('pascal_context_459', encoder='minilm')
  unseen = [i for i, name in enumerate(names) if name not in seen][:size]
  assert len(unseen) == size
  return [names[i] for i in unseen], np.asarray(vectors, np.float32)[unseen]


@pytest.mark.slow
def test_unseen_vocabulary_segments_with_its_classes(serving_setup):
  names, vectors = unseen_vocabulary(serving_setup, 12)
  image = random_image(100, 140, seed=5)
  signature = serving_setup.tensor_model.signatures['semantic_with_vocabulary']
  served = _call(signature, images=tf.constant(image[None]),
                 class_embeddings=tf.constant(vectors), class_names=tf.constant(names))
  mask_logits, class_logits = _in_process_logits(serving_setup, image, vectors)
  expected = postprocessing.semantic_label_map(
      postprocessing.semantic_inference(mask_logits, class_logits))[0].numpy()
  np.testing.assert_array_equal(served['class_map'][0], expected)
  assert [n.decode() for n in served['class_names']] == names
  assert served['class_map'].max() < len(names)

  # The classes follow the supplied vocabulary: permuting its rows permutes the class ids.
  permutation = np.random.default_rng(0).permutation(len(names))
  permuted = _call(signature, images=tf.constant(image[None]),
                   class_embeddings=tf.constant(vectors[permutation]),
                   class_names=tf.constant([names[i] for i in permutation]))
  np.testing.assert_array_equal(permutation[permuted['class_map'][0]], served['class_map'][0])

  # Panoptic and instance name their segments from the supplied names.
  is_thing = np.arange(len(names)) % 2 == 0
  panoptic = _call(serving_setup.tensor_model.signatures['panoptic_with_vocabulary'],
                   images=tf.constant(image[None]), class_embeddings=tf.constant(vectors),
                   class_names=tf.constant(names), is_thing=tf.constant(is_thing))
  reference = postprocessing.panoptic_inference(
      mask_logits, class_logits, tf.constant(is_thing), confidence_threshold=PANOPTIC_THRESHOLD,
      overlap_threshold=PANOPTIC_OVERLAP, min_area=4)
  np.testing.assert_array_equal(panoptic['panoptic_map'][0], reference['segment_map'][0])
  valid = panoptic['segment_valid'][0]
  assert valid.sum() >= 1
  expected_names = [names[c] for c in panoptic['segment_classes'][0][valid]]
  assert [n.decode() for n in panoptic['segment_class_names'][0][valid]] == expected_names
  np.testing.assert_array_equal(panoptic['segment_is_thing'][0][valid],
                                is_thing[panoptic['segment_classes'][0][valid]])


@pytest.mark.slow
def test_small_vocabulary_instance_keeps_all_pairs(serving_setup):
  # 2 classes x 16 queries = 32 pairs < 100 detections: every pair is returned, none invented.
  names, vectors = unseen_vocabulary(serving_setup, 2)
  image = random_image(64, 64, seed=6)
  served = _call(serving_setup.tensor_model.signatures['instance_with_vocabulary'],
                 images=tf.constant(image[None]), class_embeddings=tf.constant(vectors),
                 class_names=tf.constant(names))
  mask_logits, class_logits = _in_process_logits(serving_setup, image, vectors)
  num_pairs = 16 * 2
  reference = {k: v[0].numpy() for k, v in postprocessing.instance_inference(
      mask_logits, class_logits, top_k=num_pairs, score_threshold=0.0, min_area=4).items()}
  valid = served['valid'][0]
  assert served['scores'].shape == (1, 100)
  assert not valid[num_pairs:].any()
  np.testing.assert_array_equal(valid[:num_pairs], reference['valid'])
  keep = reference['valid']
  np.testing.assert_array_equal(served['classes'][0][:num_pairs][keep], reference['classes'][keep])
  np.testing.assert_array_equal(served['masks'][0][:num_pairs][keep].astype(bool),
                                reference['masks'][keep])
  np.testing.assert_allclose(served['scores'][0][:num_pairs][keep], reference['scores'][keep],
                             atol=SCORE_TOLERANCE, rtol=0)
  assert set(n.decode() for n in served['class_names'][0][valid]) <= set(names)


def test_masks_to_boxes_matches_numpy():
  rng = np.random.default_rng(0)
  masks = rng.random([2, 3, 9, 11]) > 0.9
  masks[0, 1] = False  # An empty mask gives a zero box.
  boxes = export_module.masks_to_boxes(tf.constant(masks)).numpy()
  for b in range(2):
    for k in range(3):
      ys, xs = np.nonzero(masks[b, k])
      expected = ([ys.min(), xs.min(), ys.max() + 1, xs.max() + 1] if len(ys) else [0, 0, 0, 0])
      np.testing.assert_array_equal(boxes[b, k], expected)
