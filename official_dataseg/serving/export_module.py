"""The serving module: images in, panoptic / semantic / instance results at original size out.

Signatures (all return results at the input image's resolution):

  panoptic(images), semantic(images), instance(images)
      with the vocabulary baked in at export time (names + text embeddings);
  panoptic_with_vocabulary(images, class_embeddings, class_names, is_thing),
  semantic_with_vocabulary(images, class_embeddings, class_names),
  instance_with_vocabulary(images, class_embeddings, class_names)
      with a caller-supplied vocabulary: open vocabulary at serving time, no re-export.

`images` is a uint8 tensor [B, H, W, 3] of any size (input_type 'image_tensor') or one encoded
JPEG/PNG string (input_type 'image_bytes'). Inside, each image is resized (long side to the model's
input size, aspect kept) and padded exactly as at evaluation, and the mask logits are mapped back to
[H, W] before the task's read-out.
"""
from typing import Dict, Optional, Sequence

import tensorflow as tf, tf_keras

from official.vision.ops import preprocess_ops

from official_dataseg import common
from official_dataseg.dataloaders import geometry
from official_dataseg.evaluation import original_size
from official_dataseg.evaluation import postprocessing

IMAGE_TENSOR = 'image_tensor'
IMAGE_BYTES = 'image_bytes'
INPUT_TYPES = (IMAGE_TENSOR, IMAGE_BYTES)
TASK_SIGNATURES = ('panoptic', 'semantic', 'instance')


class DataSegServingModule(tf.Module):
  """Wraps a trained `DataSegModel` with pre- and post-processing for serving.

  Args:
    model: the trained model.
    input_size: (S_h, S_w) of the model input.
    class_names: default vocabulary names, [C].
    class_embeddings: default vocabulary text embeddings, float32 [C, D].
    is_thing: default vocabulary thing flags, [C].
    panoptic_confidence_threshold / panoptic_overlap_threshold / min_segment_area /
      max_detections: read-out settings (the dataset config's numbers).
    max_image_size: larger inputs are rejected with an error naming the limit.
  """

  def __init__(self, model: tf_keras.Model, input_size: Sequence[int],
               class_names: Sequence[str], class_embeddings, is_thing: Sequence[bool],
               panoptic_confidence_threshold: float = 0.8,
               panoptic_overlap_threshold: float = 0.8, min_segment_area: int = 4,
               max_detections: int = 100, max_image_size: int = 4096):
    super().__init__(name='dataseg_serving')
    self.model = model
    self._input_size = [int(s) for s in input_size]
    self._class_names = tf.constant(list(class_names), tf.string)
    self._class_embeddings = tf.constant(class_embeddings, tf.float32)
    self._is_thing = tf.constant(list(is_thing), tf.bool)
    self._confidence = float(panoptic_confidence_threshold)
    self._overlap = float(panoptic_overlap_threshold)
    self._min_area = int(min_segment_area)
    self._max_detections = int(max_detections)
    self._max_image_size = int(max_image_size)

  # ---------------------------------------------------------------------------
  # Shared steps.
  # ---------------------------------------------------------------------------
  def _check_images(self, images: tf.Tensor) -> tf.Tensor:
    shape = tf.shape(images)
    checks = [
        tf.debugging.assert_positive(
            shape[1:3], message='images: height and width must be positive'),
        tf.debugging.assert_less_equal(
            tf.reduce_max(shape[1:3]), self._max_image_size,
            message=f'images: height and width must be <= {self._max_image_size}'),
    ]
    with tf.control_dependencies(checks):
      return tf.identity(images)

  def _preprocess(self, images: tf.Tensor):
    """uint8 [B, H, W, 3] -> (float32 [B, S_h, S_w, 3], image_info float32 [4, 2])."""
    images = self._check_images(images)
    image_size = tf.shape(images)[1:3]
    scaled_size, offset = geometry.scale_and_offset(
        image_size, self._input_size, tf.constant(1.0), tf.zeros([2]))
    resized = tf.map_fn(
        lambda image: geometry.resize_crop_pad_image(
            preprocess_ops.normalize_image(image), scaled_size, offset, self._input_size),
        images, fn_output_signature=tf.float32)
    image_info = tf.stack([tf.cast(image_size, tf.float32), scaled_size,
                           scaled_size / tf.cast(image_size, tf.float32), offset])
    return resized, image_info

  def _logits(self, images: tf.Tensor, class_embeddings: tf.Tensor):
    """Runs the model; returns mask logits [B, N, H, W] at input size and class logits."""
    model_images, image_info = self._preprocess(images)
    num_classes = tf.shape(class_embeddings)[0]
    outputs = self.model({
        common.IMAGE: model_images,
        common.CLASS_EMBEDDINGS: class_embeddings,
        common.CLASS_VALID: tf.ones([num_classes], tf.bool),
        common.DATASET_ID: tf.constant(0, tf.int32),
    }, training=False)
    mask_logits = outputs[common.MASK_LOGITS][-1]
    class_logits = outputs[common.CLASS_LOGITS][-1]
    batch, queries = tf.shape(mask_logits)[0], tf.shape(mask_logits)[1]
    # All images of a batch share H, W, so one resample maps every query of every image.
    stacked = tf.reshape(tf.transpose(mask_logits, [2, 3, 0, 1]),
                         [tf.shape(mask_logits)[2], tf.shape(mask_logits)[3], -1])
    resized = original_size.resize_to_original(stacked, image_info, method='bilinear')
    height, width = tf.shape(resized)[0], tf.shape(resized)[1]
    resized = tf.transpose(tf.reshape(resized, [height, width, batch, queries]), [2, 3, 0, 1])
    return resized, class_logits

  @staticmethod
  def _names(class_names: tf.Tensor, classes: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    names = tf.gather(class_names, tf.maximum(classes, 0))
    return tf.where(valid, names, tf.constant('', tf.string))

  # ---------------------------------------------------------------------------
  # Read-outs.
  # ---------------------------------------------------------------------------
  def _panoptic(self, images, class_embeddings, class_names, is_thing) -> Dict[str, tf.Tensor]:
    mask_logits, class_logits = self._logits(images, class_embeddings)
    result = postprocessing.panoptic_inference(
        mask_logits, class_logits, is_thing, confidence_threshold=self._confidence,
        overlap_threshold=self._overlap, min_area=self._min_area)
    return {
        'panoptic_map': result['segment_map'],
        'category_map': result['category_map'],
        'segment_classes': result['segment_classes'],
        'segment_class_names': self._names(class_names, result['segment_classes'],
                                           result['segment_valid']),
        'segment_scores': result['segment_scores'],
        'segment_is_thing': result['segment_is_thing'],
        'segment_valid': result['segment_valid'],
    }

  def _semantic(self, images, class_embeddings, class_names) -> Dict[str, tf.Tensor]:
    mask_logits, class_logits = self._logits(images, class_embeddings)
    scores = postprocessing.semantic_inference(mask_logits, class_logits)
    return {'class_map': postprocessing.semantic_label_map(scores),
            'class_names': class_names}

  def _instance(self, images, class_embeddings, class_names) -> Dict[str, tf.Tensor]:
    mask_logits, class_logits = self._logits(images, class_embeddings)
    result = postprocessing.instance_inference(
        mask_logits, class_logits, top_k=self._max_detections, score_threshold=0.0,
        min_area=self._min_area)
    masks = result['masks']
    return {
        'masks': tf.cast(masks, tf.uint8),
        'boxes': masks_to_boxes(masks),
        'classes': result['classes'],
        'class_names': self._names(class_names, result['classes'], result['valid']),
        'scores': result['scores'],
        'valid': result['valid'],
    }

  # ---------------------------------------------------------------------------
  # Signatures.
  # ---------------------------------------------------------------------------
  def get_signatures(self, input_type: str = IMAGE_TENSOR, batch_size: Optional[int] = None
                     ) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    """The concrete functions to export, keyed by signature name.

    Args:
      input_type: 'image_tensor' (uint8 [B, H, W, 3]) or 'image_bytes' (one encoded image).
      batch_size: static B of image_tensor inputs; None accepts any batch size.
    """
    if input_type not in INPUT_TYPES:
      raise ValueError(f'input_type must be one of {INPUT_TYPES}, got {input_type!r}')
    if input_type == IMAGE_TENSOR:
      image_spec = tf.TensorSpec([batch_size, None, None, 3], tf.uint8, name='images')
      to_images = lambda images: images
    else:
      image_spec = tf.TensorSpec([], tf.string, name='image_bytes')
      to_images = decode_image_bytes
    embedding_spec = tf.TensorSpec([None, self._class_embeddings.shape[-1]], tf.float32,
                                   name='class_embeddings')
    names_spec = tf.TensorSpec([None], tf.string, name='class_names')
    thing_spec = tf.TensorSpec([None], tf.bool, name='is_thing')

    def panoptic(images):
      return self._panoptic(to_images(images), self._class_embeddings, self._class_names,
                            self._is_thing)

    def semantic(images):
      return self._semantic(to_images(images), self._class_embeddings, self._class_names)

    def instance(images):
      return self._instance(to_images(images), self._class_embeddings, self._class_names)

    def panoptic_with_vocabulary(images, class_embeddings, class_names, is_thing):
      return self._panoptic(to_images(images), _normalize(class_embeddings), class_names,
                            is_thing)

    def semantic_with_vocabulary(images, class_embeddings, class_names):
      return self._semantic(to_images(images), _normalize(class_embeddings), class_names)

    def instance_with_vocabulary(images, class_embeddings, class_names):
      return self._instance(to_images(images), _normalize(class_embeddings), class_names)

    functions = {
        'panoptic': (panoptic, [image_spec]),
        'semantic': (semantic, [image_spec]),
        'instance': (instance, [image_spec]),
        'panoptic_with_vocabulary': (panoptic_with_vocabulary,
                                     [image_spec, embedding_spec, names_spec, thing_spec]),
        'semantic_with_vocabulary': (semantic_with_vocabulary,
                                     [image_spec, embedding_spec, names_spec]),
        'instance_with_vocabulary': (instance_with_vocabulary,
                                     [image_spec, embedding_spec, names_spec]),
    }
    signatures = {name: tf.function(fn).get_concrete_function(*specs)
                  for name, (fn, specs) in functions.items()}
    signatures['serving_default'] = signatures['panoptic']
    return signatures


def decode_image_bytes(image_bytes: tf.Tensor) -> tf.Tensor:
  """One encoded JPEG/PNG string -> uint8 [1, H, W, 3]; a clear error for anything else."""
  tf.debugging.assert_greater(tf.strings.length(image_bytes), 0,
                              message='image_bytes: empty string')
  image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
  return image[None]


def _normalize(class_embeddings: tf.Tensor) -> tf.Tensor:
  return tf.math.l2_normalize(tf.cast(class_embeddings, tf.float32), axis=-1)


def masks_to_boxes(masks: tf.Tensor) -> tf.Tensor:
  """bool [B, K, H, W] -> float32 [B, K, 4] absolute yxyx (max edges exclusive); 0 if empty."""
  rows = tf.reduce_any(masks, axis=3)
  cols = tf.reduce_any(masks, axis=2)

  def extent(occupied):
    length = tf.shape(occupied)[-1]
    positions = tf.range(length, dtype=tf.int32)
    first = tf.reduce_min(tf.where(occupied, positions, length), axis=-1)
    last = tf.reduce_max(tf.where(occupied, positions, -1), axis=-1) + 1
    empty = tf.logical_not(tf.reduce_any(occupied, axis=-1))
    return tf.where(empty, 0, first), tf.where(empty, 0, last)

  ymin, ymax = extent(rows)
  xmin, xmax = extent(cols)
  return tf.cast(tf.stack([ymin, xmin, ymax, xmax], axis=-1), tf.float32)
