"""Parser: decoded tensors -> static-shape model inputs and targets (all tasks).

Training (S = output size, M = max_instances, s = 4):
  flip, large-scale jitter, crop / pad (`geometry`), then targets at 1/4:
  - semantic / panoptic: one target per segment of the segment map (semantic:
    one per class present; panoptic: thing instances and stuff classes) that
    is not crowd / ignored and still covers >= 1 target pixel after the crop;
  - instance (boxes): one target per non-crowd box of positive area after the
    crop; its mask is the filled box (every 1/4 pixel the box overlaps).
  Targets are ordered by visible area, largest first (1/4-pixel count for
  segments, box area for boxes; ties keep the record order); the first M are
  kept and the rest counted in NUM_TRUNCATED. IGNORE_MASK marks void pixels,
  crowd / ignored objects (their segment pixels, or filled box for box data)
  and the padding outside the image.
Evaluation: no flip, long side fits S, offset 0; the image's complete ground
truth (every object, whatever M) at its own resolution, packed into one string
(`ops/groundtruth_codec.py`) that the host evaluator unpacks.

IMAGE_INFO rows: original (H, W), scaled (h, w) = round([H, W] * scale) (the
actual resized size, before crop), scale (h / H, w / W), crop offset (y, x).
The image occupies output rows [0, min(h - y, S_h)) and the same for columns.
"""
from typing import Dict, Sequence

import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official.vision.dataloaders import parser
from official.vision.ops import preprocess_ops
from official_dataseg import common
from official_dataseg.dataloaders import geometry
from official_dataseg.ops import groundtruth_codec

TARGET_STRIDE = 4


class DataSegParser(parser.Parser):
  """Parses one dataset's decoded examples; every dataset yields the same keys."""

  def __init__(self,
               task_type: str,
               dataset_id: int,
               output_size: Sequence[int],
               max_instances: int,
               eval_groundtruth_size: Sequence[int],
               aug_rand_hflip: bool = True,
               aug_scale_min: float = 0.1,
               aug_scale_max: float = 2.0,
               seed: int = 0,
               dtype: str = 'float32'):
    """Initialises the parser.

    Args:
      task_type: one of `common.TASK_TYPES`.
      dataset_id: index of the dataset in the DataConfig (DATASET_ID).
      output_size: (S_h, S_w), multiples of 4.
      max_instances: M.
      eval_groundtruth_size: unused (evaluation ground truth keeps each image's own size);
        kept so that existing callers and configs work.
      aug_rand_hflip: random horizontal flip in training.
      aug_scale_min: lower bound of the jitter scale.
      aug_scale_max: upper bound of the jitter scale.
      seed: used when a decoded dict carries no DECODED_AUGMENTATION_SEED.
      dtype: IMAGE dtype ('float32', 'bfloat16', 'float16').

    Raises:
      ValueError: naming the bad argument.
    """
    if task_type not in common.TASK_TYPES:
      raise ValueError(f'task_type must be one of {common.TASK_TYPES}, got '
                       f'{task_type!r}')
    if len(output_size) != 2 or any(
        s <= 0 or s % TARGET_STRIDE for s in output_size):
      raise ValueError('output_size must be [height, width], positive '
                       f'multiples of {TARGET_STRIDE}, got {output_size}')
    if max_instances <= 0:
      raise ValueError(f'max_instances must be > 0, got {max_instances}')
    if not 0 < aug_scale_min <= aug_scale_max:
      raise ValueError('need 0 < aug_scale_min <= aug_scale_max, got '
                       f'{aug_scale_min}, {aug_scale_max}')
    self._task_type = task_type
    self._dataset_id = dataset_id
    self._output_size = [int(s) for s in output_size]
    self._max_instances = max_instances
    del eval_groundtruth_size  # Evaluation ground truth keeps each image's own size.
    self._aug_rand_hflip = aug_rand_hflip
    self._aug_scale_min = aug_scale_min
    self._aug_scale_max = aug_scale_max
    self._seed = seed
    self._dtype = tf.dtypes.as_dtype(dtype)

  @classmethod
  def from_config(cls, dataset_config, data_config, dataset_id: int):
    """Builds the parser of `dataset_config` (a DatasetConfig) in `data_config` (a DataConfig)."""
    return cls(task_type=dataset_config.task_type,
               dataset_id=dataset_id,
               output_size=data_config.output_size,
               max_instances=data_config.max_instances,
               eval_groundtruth_size=data_config.eval_groundtruth_size,
               aug_rand_hflip=dataset_config.aug_rand_hflip,
               aug_scale_min=dataset_config.aug_scale_min,
               aug_scale_max=dataset_config.aug_scale_max,
               seed=data_config.seed or 0,
               dtype=data_config.dtype)

  @property
  def target_size(self):
    return [s // TARGET_STRIDE for s in self._output_size]

  # ---------------------------------------------------------------- training
  def _parse_train_data(self, decoded_tensors):
    seed = decoded_tensors.get(common.DECODED_AUGMENTATION_SEED)
    if seed is None:
      seed = tf.constant([self._seed, 0], tf.int64)
    augmentation = geometry.sample_augmentation(
        seed, self._aug_rand_hflip, self._aug_scale_min, self._aug_scale_max)
    return self.parse_train_with_augmentation(decoded_tensors, augmentation)

  def parse_train_with_augmentation(
      self, decoded: Dict[str, tf.Tensor],
      augmentation: geometry.Augmentation) -> Dict[str, tf.Tensor]:
    """Training targets for given augmentation draws (tests fix them).

    Args:
      decoded: the DataSegDecoder dict.
      augmentation: the flip / jitter / crop draws.

    Returns:
      IMAGE [S_h, S_w, 3] dtype; IMAGE_INFO float32 [4, 2]; DATASET_ID int32 [];
      GT_MASKS uint8 [M, S_h/4, S_w/4]; GT_CLASSES int32 [M]; GT_BOXES float32
      [M, 4] yxyx normalised to the padded S_h x S_w image; GT_VALID float32
      [M]; IGNORE_MASK uint8 [S_h/4, S_w/4]; NUM_TRUNCATED int32 [].
    """
    image, segmentation, boxes = geometry.flip_left_right(
        decoded[common.DECODED_IMAGE], decoded[common.DECODED_SEGMENTATION],
        decoded[common.DECODED_BOXES], augmentation.flip)
    image_size = tf.shape(image)[:2]
    scaled_size, offset = geometry.scale_and_offset(
        image_size, self._output_size, augmentation.jitter_scale,
        augmentation.crop_fraction)
    image = geometry.resize_crop_pad_image(
        preprocess_ops.normalize_image(image), scaled_size, offset,
        self._output_size)
    image_scale = scaled_size / tf.cast(image_size, tf.float32)

    image_hw = tf.tile(tf.cast(image_size, tf.float32), [2])
    output_hw = tf.constant(self._output_size * 2, tf.float32)
    boxes = preprocess_ops.resize_and_crop_boxes(
        boxes * image_hw, image_scale, self._output_size, offset)
    inside = geometry.inside_image_mask(scaled_size, offset,
                                        self._output_size, TARGET_STRIDE)
    unsupervised = (decoded[common.DECODED_IS_CROWD] |
                    decoded[common.DECODED_IS_IGNORED])
    if self._task_type == common.TASK_INSTANCE:
      targets = self._box_targets(boxes, unsupervised, inside)
    else:
      targets = self._segment_targets(segmentation, scaled_size, offset,
                                      unsupervised, inside)
    masks, ignore, visible_area = targets

    selected, valid, num_truncated = self._select_largest(
        visible_area, (visible_area > 0) & ~unsupervised)
    valid_f = tf.cast(valid, tf.float32)
    classes = tf.gather(_append_zero(decoded[common.DECODED_CLASSES]),
                        selected) * tf.cast(valid, tf.int32)
    boxes = tf.gather(_append_zero(boxes / output_hw), selected) * valid_f[:, None]
    if self._task_type == common.TASK_INSTANCE:
      masks = tf.gather(_append_zero(masks), selected)
    else:
      masks = tf.equal(masks[None], selected[:, None, None] + 1)
    masks = masks & valid[:, None, None]

    image_info = tf.stack([tf.cast(image_size, tf.float32), scaled_size,
                           image_scale, offset])
    return {
        common.IMAGE: tf.cast(image, self._dtype),
        common.IMAGE_INFO: image_info,
        common.DATASET_ID: tf.constant(self._dataset_id, tf.int32),
        common.GT_MASKS: tf.cast(masks, tf.uint8),
        common.GT_CLASSES: classes,
        common.GT_BOXES: boxes,
        common.GT_VALID: valid_f,
        common.IGNORE_MASK: tf.cast(ignore, tf.uint8),
        common.NUM_TRUNCATED: num_truncated,
    }

  def _segment_targets(self, segmentation, scaled_size, offset, unsupervised,
                       inside):
    """Target map int32 [S/4, S/4] (k -> object k-1), ignore bool [S/4, S/4], areas [K]."""
    num_objects = tf.shape(unsupervised)[0]
    target_map = geometry.sample_index_map(
        segmentation, scaled_size, offset, self._output_size, TARGET_STRIDE)
    # Map values without an object record are treated as void.
    target_map = tf.where(target_map > num_objects, 0, target_map)
    visible_area = tf.math.bincount(target_map, minlength=num_objects + 1,
                                    maxlength=num_objects + 1,
                                    dtype=tf.int32)[1:]
    ignored_value = tf.concat([[True], unsupervised], axis=0)
    ignore = tf.gather(ignored_value, target_map) | ~inside
    return target_map, ignore, tf.cast(visible_area, tf.float32)

  def _box_targets(self, boxes, unsupervised, inside):
    """Box masks bool [K, S/4, S/4], ignore bool [S/4, S/4], box areas float32 [K]."""
    masks = geometry.box_masks(boxes, self._output_size, TARGET_STRIDE)
    ignore = ~inside | tf.reduce_any(masks & unsupervised[:, None, None],
                                     axis=0)
    areas = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    return masks, ignore, areas

  def _select_largest(self, areas, keep):
    """Indices of the M largest kept objects.

    Args:
      areas: float32 [K].
      keep: bool [K].

    Returns:
      selected: int32 [M], K (a zero dummy) for padding.
      valid: bool [M].
      num_truncated: int32 [].
    """
    num_objects = tf.shape(areas)[0]
    order = tf.argsort(tf.where(keep, areas, -1.0), direction='DESCENDING',
                       stable=True)
    num_kept = tf.reduce_sum(tf.cast(keep, tf.int32))
    valid = tf.range(self._max_instances) < num_kept
    selected = preprocess_ops.clip_or_pad_to_fixed_size(
        tf.cast(order, tf.int32), self._max_instances, num_objects)
    selected = tf.where(valid, selected, num_objects)
    return selected, valid, tf.maximum(num_kept - self._max_instances, 0)

  # -------------------------------------------------------------- evaluation
  def _parse_eval_data(self, decoded_tensors):
    """Evaluation inputs and the image's complete ground truth.

    Returns:
      IMAGE, IMAGE_INFO, DATASET_ID as in training; SOURCE_ID string [];
      EVAL_GROUNDTRUTH string []: every object of the image at its own resolution, none
      truncated (`ops/groundtruth_codec.py`; instance data: with the per-object masks);
      EVAL_IS_PADDING bool [] (False).
    """
    decoded = decoded_tensors
    image = decoded[common.DECODED_IMAGE]
    image_size = tf.shape(image)[:2]
    scaled_size, offset = geometry.scale_and_offset(
        image_size, self._output_size, tf.constant(1.0), tf.zeros([2]))
    resized = geometry.resize_crop_pad_image(
        preprocess_ops.normalize_image(image), scaled_size, offset,
        self._output_size)
    image_info = tf.stack([tf.cast(image_size, tf.float32), scaled_size,
                           scaled_size / tf.cast(image_size, tf.float32),
                           offset])
    instance_masks = None
    if self._task_type == common.TASK_INSTANCE:
      instance_masks = decoded.get(common.DECODED_INSTANCE_MASKS)
    groundtruth = groundtruth_codec.encode_groundtruth(
        decoded[common.DECODED_SEGMENTATION], decoded[common.DECODED_CLASSES],
        decoded[common.DECODED_IS_CROWD], decoded[common.DECODED_IS_IGNORED],
        decoded[common.DECODED_BOXES], instance_masks)
    return {
        common.IMAGE: tf.cast(resized, self._dtype),
        common.IMAGE_INFO: image_info,
        common.DATASET_ID: tf.constant(self._dataset_id, tf.int32),
        common.SOURCE_ID: decoded[common.DECODED_SOURCE_ID],
        common.EVAL_GROUNDTRUTH: groundtruth,
        common.EVAL_IS_PADDING: tf.constant(False),
    }


def _append_zero(values: tf.Tensor) -> tf.Tensor:
  """[K, ...] -> [K + 1, ...] with a zero row at index K (the padding slot)."""
  zero_row = tf.zeros(tf.concat([[1], tf.shape(values)[1:]], axis=0),
                      values.dtype)
  return tf.concat([values, zero_row], axis=0)
