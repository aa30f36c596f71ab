"""The export module: images in, panoptic / semantic / instance results at original size out.

A Model Garden `export_base.ExportModule`: `serve` runs the bare inference (checked images ->
resize and pad as at evaluation -> model -> mask logits mapped back to each input's [H, W]), and
`get_inference_signatures` builds the signatures, keyed by the function names below:

  panoptic(images), semantic(images), instance(images)
      with the vocabulary baked in at export time (names, text embeddings, thing flags);
  panoptic_with_vocabulary(images, class_embeddings, class_names, is_thing),
  semantic_with_vocabulary(images, class_embeddings, class_names),
  instance_with_vocabulary(images, class_embeddings, class_names)
      with a caller-supplied vocabulary: open vocabulary at serving time, no re-export;
  *_with_class_names (class names as strings, embedded in the graph): see text_signatures.py.

`images` is uint8 [B, H, W, 3] of any size (input type 'image_tensor') or one encoded
JPEG / PNG / GIF / BMP string (input type 'image_bytes'). The read-outs are the evaluation's
(`evaluation/postprocessing.py` on logits resized by `evaluation/original_size.py`), so a served
result equals the evaluated one.

Every input is checked inside the graph, so a bad request gets an `InvalidArgumentError` naming
the input and what was expected in every client (Python or TensorFlow Serving), never a crash or
a silently wrong output. For that reason the image and embedding specs leave rank / width open and
the checks (not the signature's shape) enforce them.
"""
from typing import Dict, Mapping, Optional, Sequence

import tensorflow as tf, tf_keras

from official.core import export_base
from official.vision.ops import preprocess_ops

from official_dataseg import common
from official_dataseg.dataloaders import geometry
from official_dataseg.evaluation import original_size
from official_dataseg.evaluation import postprocessing
from official_dataseg.serving import image_header
from official_dataseg.serving import text_signatures

IMAGE_TENSOR = 'image_tensor'
IMAGE_BYTES = 'image_bytes'
INPUT_TYPES = (IMAGE_TENSOR, IMAGE_BYTES)
TASK_SIGNATURES = ('panoptic', 'semantic', 'instance')
VOCABULARY_SUFFIX = '_with_vocabulary'
FUNCTION_NAMES = TASK_SIGNATURES + tuple(t + VOCABULARY_SUFFIX for t in TASK_SIGNATURES)
# Class-logit columns appended so that N * C >= the number of detections (top-k); they hold
# this logit, probability exactly 0 after the softmax, as the padded vocabulary of evaluation.
_PADDED_CLASS_LOGIT = -1e9


def default_function_keys() -> Dict[str, str]:
  """{function name: signature name}: all six functions under their own names."""
  return {name: name for name in FUNCTION_NAMES}


def _inference_step(inputs: Dict[str, tf.Tensor], model: tf_keras.Model):
  return model(inputs, training=False)


class DataSegExportModule(export_base.ExportModule):
  """Wraps a trained `DataSegModel` with pre- and post-processing for serving.

  Args:
    params: the experiment config (kept as Model Garden's export modules do).
    model: the trained model (weights already restored).
    input_size: (S_h, S_w) of the model input.
    class_names: default vocabulary names, [C].
    class_embeddings: default vocabulary text embeddings, float32 [C, D].
    is_thing: default vocabulary thing flags, [C].
    input_type: 'image_tensor' or 'image_bytes'.
    batch_size: static B of image_tensor inputs; None accepts any B >= 1.
    panoptic_confidence_threshold / panoptic_overlap_threshold / min_segment_area /
      max_detections: read-out settings (the dataset config's numbers).
    max_image_size: inputs with a side above this are rejected (memory grows with H x W x N).
    modules_dataset_id: DATASET_ID of the training dataset whose dataset-specific modules
      (appendix E) every signature uses; as at evaluation (`configs.data.modules_dataset_id`).
      No effect on a model without such modules.
  """

  def __init__(self, params, model: tf_keras.Model, input_size: Sequence[int],
               class_names: Sequence[str], class_embeddings, is_thing: Sequence[bool],
               input_type: str = IMAGE_TENSOR, batch_size: Optional[int] = None,
               panoptic_confidence_threshold: float = 0.8,
               panoptic_overlap_threshold: float = 0.8, min_segment_area: int = 4,
               max_detections: int = 100, max_image_size: int = 4096,
               modules_dataset_id: int = 0):
    if input_type not in INPUT_TYPES:
      raise ValueError(f'input_type must be one of {INPUT_TYPES}, got {input_type!r}')
    if input_type == IMAGE_BYTES and batch_size not in (None, 1):
      raise ValueError(f'input_type {IMAGE_BYTES!r} takes one image: batch_size must be 0 or 1, '
                       f'got {batch_size}')
    if len(class_names) != len(class_embeddings) or len(class_names) != len(is_thing):
      raise ValueError(f'default vocabulary: {len(class_names)} names, {len(class_embeddings)} '
                       f'embeddings and {len(is_thing)} thing flags; expected equal counts')
    super().__init__(params, model, inference_step=_inference_step)
    self._input_type = input_type
    self._batch_size = batch_size
    self._input_size = [int(s) for s in input_size]
    self._class_names = tf.constant(list(class_names), tf.string)
    self._class_embeddings = tf.constant(class_embeddings, tf.float32)
    self._is_thing = tf.constant(list(is_thing), tf.bool)
    self._embedding_dim = int(self._class_embeddings.shape[-1])
    self._confidence = float(panoptic_confidence_threshold)
    self._overlap = float(panoptic_overlap_threshold)
    self._min_area = int(min_segment_area)
    self._max_detections = int(max_detections)
    self._max_image_size = int(max_image_size)
    self._modules_dataset_id = int(modules_dataset_id)
    # A `ClassNameEncoder` adds the *_with_class_names functions (text_signatures.py).
    self.class_name_encoder = None

  @property
  def input_type(self) -> str:
    return self._input_type

  # ---------------------------------------------------------------------------
  # Input checks and pre-processing.
  # ---------------------------------------------------------------------------
  def _check_images(self, images: tf.Tensor) -> tf.Tensor:
    """Any-rank uint8 -> uint8 [B, H, W, 3] after runtime checks with clear messages."""
    expected = f'expected uint8 images [B, H, W, 3] with 1 <= H, W <= {self._max_image_size}'
    rank_check = tf.debugging.assert_equal(
        tf.rank(images), 4, message=f'images: wrong rank; {expected}')
    with tf.control_dependencies([rank_check]):
      shape = tf.shape(images)
    checks = [
        tf.debugging.assert_equal(shape[3], 3,
                                  message=f'images: wrong channel count; {expected}'),
        tf.debugging.assert_positive(shape[0], message=f'images: empty batch; {expected}'),
        tf.debugging.assert_positive(shape[1:3], message=f'images: empty image; {expected}'),
        tf.debugging.assert_less_equal(shape[1:3], self._max_image_size,
                                       message=f'images: image too large; {expected}'),
    ]
    if self._batch_size:
      checks.append(tf.debugging.assert_equal(
          shape[0], self._batch_size,
          message=f'images: this model was exported with batch size {self._batch_size}'))
    with tf.control_dependencies(checks):
      images = tf.identity(images)
    return tf.ensure_shape(images, [self._batch_size, None, None, 3])

  def _check_vocabulary(self, class_embeddings: tf.Tensor, class_names: tf.Tensor,
                        is_thing: Optional[tf.Tensor] = None):
    """Runtime checks of a caller-supplied vocabulary; returns float32 [C, D]."""
    expected = (f'expected class_embeddings float32 [C, {self._embedding_dim}] with C >= 1, '
                'finite, and C class_names' + (' and C is_thing flags' if is_thing is not None
                                               else ''))
    rank_check = tf.debugging.assert_equal(
        tf.rank(class_embeddings), 2, message=f'class_embeddings: wrong rank; {expected}')
    with tf.control_dependencies([rank_check]):
      shape = tf.shape(class_embeddings)
    checks = [
        tf.debugging.assert_equal(shape[1], self._embedding_dim,
                                  message=f'class_embeddings: wrong width D; {expected}'),
        tf.debugging.assert_positive(shape[0], message=f'class_embeddings: no classes; '
                                     f'{expected}'),
        tf.debugging.assert_equal(tf.size(class_names), shape[0],
                                  message=f'class_names: count differs; {expected}'),
        tf.debugging.assert_equal(tf.rank(class_names), 1,
                                  message=f'class_names: wrong rank; {expected}'),
    ]
    if is_thing is not None:
      checks.append(tf.debugging.assert_equal(tf.size(is_thing), shape[0],
                                              message=f'is_thing: count differs; {expected}'))
    with tf.control_dependencies(checks):
      class_embeddings = tf.debugging.assert_all_finite(
          class_embeddings, message=f'class_embeddings: not finite; {expected}')
    # No normalisation here: the classifier L2-normalises the text embeddings itself.
    return tf.ensure_shape(class_embeddings, [None, self._embedding_dim])

  def _preprocess(self, images: tf.Tensor):
    """uint8 [B, H, W, 3] -> (float32 [B, S_h, S_w, 3], image_info float32 [4, 2]).

    The evaluation parser's resize and pad: long side to the input size, aspect kept.
    """
    image_size = tf.shape(images)[1:3]
    scaled_size, offset = geometry.scale_and_offset(
        image_size, self._input_size, tf.constant(1.0), tf.zeros([2]))
    normalized = preprocess_ops.normalize_image(images)
    # The images of a batch share H, W: fold the batch into channels, one resize for all.
    batch = tf.shape(images)[0]
    stacked = tf.reshape(tf.transpose(normalized, [1, 2, 0, 3]),
                         [image_size[0], image_size[1], batch * 3])
    resized = geometry.resize_crop_pad_image(stacked, scaled_size, offset, self._input_size)
    model_images = tf.transpose(
        tf.reshape(resized, self._input_size + [batch, 3]), [2, 0, 1, 3])
    image_info = tf.stack([tf.cast(image_size, tf.float32), scaled_size,
                           scaled_size / tf.cast(image_size, tf.float32), offset])
    return model_images, image_info

  # ---------------------------------------------------------------------------
  # The bare inference.
  # ---------------------------------------------------------------------------
  def serve(self, images: tf.Tensor, class_embeddings: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Last-layer logits with mask logits at the input resolution.

    Args:
      images: uint8 [B, H, W, 3], already checked.
      class_embeddings: float32 [C, D], L2-normalised.

    Returns:
      MASK_LOGITS float32 [B, N, H, W]; CLASS_LOGITS float32 [B, N, C + 1].
    """
    model_images, image_info = self._preprocess(images)
    num_classes = tf.shape(class_embeddings)[0]
    outputs = self.inference_step({
        common.IMAGE: model_images,
        common.CLASS_EMBEDDINGS: class_embeddings,
        common.CLASS_VALID: tf.ones([num_classes], tf.bool),
        common.DATASET_ID: tf.constant(self._modules_dataset_id, tf.int32),
    })
    mask_logits = tf.cast(outputs[common.MASK_LOGITS][-1], tf.float32)
    class_logits = tf.cast(outputs[common.CLASS_LOGITS][-1], tf.float32)
    batch, queries = tf.shape(mask_logits)[0], tf.shape(mask_logits)[1]
    # One resample maps every query of every image (all share H, W): queries into channels.
    stacked = tf.reshape(tf.transpose(mask_logits, [2, 3, 0, 1]),
                         [tf.shape(mask_logits)[2], tf.shape(mask_logits)[3], -1])
    resized = original_size.resize_to_original(stacked, image_info, method='bilinear')
    height, width = tf.shape(resized)[0], tf.shape(resized)[1]
    resized = tf.transpose(tf.reshape(resized, [height, width, batch, queries]), [2, 3, 0, 1])
    return {common.MASK_LOGITS: resized, common.CLASS_LOGITS: class_logits}

  # ---------------------------------------------------------------------------
  # Read-outs.
  # ---------------------------------------------------------------------------
  @staticmethod
  def _names(class_names: tf.Tensor, classes: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    safe = tf.clip_by_value(classes, 0, tf.size(class_names) - 1)
    return tf.where(valid, tf.gather(class_names, safe), tf.constant('', tf.string))

  def _panoptic(self, images, class_embeddings, class_names, is_thing) -> Dict[str, tf.Tensor]:
    logits = self.serve(images, class_embeddings)
    result = postprocessing.panoptic_inference(
        logits[common.MASK_LOGITS], logits[common.CLASS_LOGITS], is_thing,
        confidence_threshold=self._confidence, overlap_threshold=self._overlap,
        min_area=self._min_area)
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
    logits = self.serve(images, class_embeddings)
    scores = postprocessing.semantic_inference(logits[common.MASK_LOGITS],
                                               logits[common.CLASS_LOGITS])
    return {'class_map': postprocessing.semantic_label_map(scores),
            'class_names': class_names}

  def _instance(self, images, class_embeddings, class_names) -> Dict[str, tf.Tensor]:
    logits = self.serve(images, class_embeddings)
    mask_logits, class_logits = logits[common.MASK_LOGITS], logits[common.CLASS_LOGITS]
    class_logits = self._pad_for_top_k(class_logits, mask_logits.shape[1])
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

  def _pad_for_top_k(self, class_logits: tf.Tensor, num_queries: int) -> tf.Tensor:
    """Appends zero-probability columns (before background) until N * C >= max_detections.

    A small vocabulary (N * C < K) would otherwise fail the top-k; the added pairs score 0 and
    are never valid. Real pairs keep their relative order, so the top-k set is unchanged.
    """
    num_classes = tf.shape(class_logits)[-1] - 1
    min_classes = -(-self._max_detections // int(num_queries))
    extra = tf.maximum(min_classes - num_classes, 0)
    padding = tf.fill(tf.concat([tf.shape(class_logits)[:2], [extra]], 0),
                      tf.constant(_PADDED_CLASS_LOGIT, class_logits.dtype))
    return tf.concat([class_logits[..., :-1], padding, class_logits[..., -1:]], axis=-1)

  # ---------------------------------------------------------------------------
  # Signatures.
  # ---------------------------------------------------------------------------
  def _to_images(self, images: tf.Tensor) -> tf.Tensor:
    if self._input_type == IMAGE_BYTES:
      images = decode_image_bytes(images, self._max_image_size)
    return self._check_images(images)

  def _image_spec(self) -> tf.TensorSpec:
    if self._input_type == IMAGE_BYTES:
      return tf.TensorSpec([], tf.string, name='image_bytes')
    # Rank and channels are left open: `_check_images` enforces them with a clear message.
    return tf.TensorSpec(None, tf.uint8, name='images')

  def _functions(self):
    """{function name: (python function, input specs)}."""
    image_spec = self._image_spec()
    embedding_spec = tf.TensorSpec(None, tf.float32, name='class_embeddings')
    names_spec = tf.TensorSpec([None], tf.string, name='class_names')
    thing_spec = tf.TensorSpec([None], tf.bool, name='is_thing')

    def panoptic(images):
      return self._panoptic(self._to_images(images), self._class_embeddings,
                            self._class_names, self._is_thing)

    def semantic(images):
      return self._semantic(self._to_images(images), self._class_embeddings,
                            self._class_names)

    def instance(images):
      return self._instance(self._to_images(images), self._class_embeddings,
                            self._class_names)

    def panoptic_with_vocabulary(images, class_embeddings, class_names, is_thing):
      embeddings = self._check_vocabulary(class_embeddings, class_names, is_thing)
      return self._panoptic(self._to_images(images), embeddings, class_names, is_thing)

    def semantic_with_vocabulary(images, class_embeddings, class_names):
      embeddings = self._check_vocabulary(class_embeddings, class_names)
      return self._semantic(self._to_images(images), embeddings, class_names)

    def instance_with_vocabulary(images, class_embeddings, class_names):
      embeddings = self._check_vocabulary(class_embeddings, class_names)
      return self._instance(self._to_images(images), embeddings, class_names)

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
    if self.class_name_encoder is not None:
      functions.update(text_signatures.class_name_functions(functions, self.class_name_encoder))
    return functions

  def get_inference_signatures(self, function_keys: Mapping[str, str]
                               ) -> Dict[str, tf.types.experimental.ConcreteFunction]:
    """Concrete functions keyed by signature name.

    Args:
      function_keys: {function name (one of FUNCTION_NAMES): signature name}, e.g.
        `default_function_keys()`. Unless a function is mapped to `serving_default`, that
        signature is added as an alias of the first requested function (panoptic by default).
    """
    functions = self._functions()
    unknown = sorted(set(function_keys) - set(functions))
    if unknown or not function_keys:
      raise ValueError(f'unknown serving functions {unknown or "(none given)"}; expected some '
                       f'of {FUNCTION_NAMES}')
    signatures = {signature_name: tf.function(functions[name][0]).get_concrete_function(
        *functions[name][1]) for name, signature_name in function_keys.items()}
    default_key = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
    if default_key not in signatures:
      signatures[default_key] = signatures[next(iter(function_keys.values()))]
    return signatures


def decode_image_bytes(image_bytes: tf.Tensor, max_image_size: int) -> tf.Tensor:
  """One encoded JPEG / PNG / GIF / BMP string -> uint8 [1, H, W, 3] (first frame of a GIF).

  An empty or non-image string, or one whose header declares a side above `max_image_size`,
  fails with an error naming `image_bytes` before the decoder runs (so a small file declaring a
  huge image allocates nothing).
  """
  expected = 'expected one encoded JPEG, PNG, GIF or BMP image'
  not_empty = tf.debugging.assert_greater(tf.strings.length(image_bytes), 0,
                                          message=f'image_bytes: empty string; {expected}')
  with tf.control_dependencies([not_empty]):
    known_format = image_header.format_index(image_bytes) >= 0
  format_check = tf.debugging.Assert(
      known_format, [f'image_bytes: not an image (unknown file signature); {expected}'])
  with tf.control_dependencies([format_check]):
    size_check = tf.debugging.assert_less_equal(
        image_header.image_size(image_bytes), tf.constant(max_image_size, tf.int64),
        message=f'image_bytes: image too large (size read from the header, before decoding); '
        f'expected H, W <= {max_image_size}')
  with tf.control_dependencies([size_check]):
    image = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
  return image[None]


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
