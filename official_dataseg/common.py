"""Names shared by every stage of DaTaSeg: one constant per tensor key.

Data flows tf.Example (TFRECORD_*) -> decoder dict (DECODED_*) -> parser dict
(IMAGE, GT_*, ...) -> model outputs (MASK_LOGITS, CLASS_LOGITS) -> losses and
post-processing. Every module refers to these names instead of string
literals, so a key is spelled once.
"""

# ---------------------------------------------------------------------------
# Task types: how a dataset is supervised and how it is read out.
# ---------------------------------------------------------------------------
TASK_SEMANTIC = 'semantic'
TASK_PANOPTIC = 'panoptic'
TASK_INSTANCE = 'instance'  # Box supervision in training, masks at evaluation.
TASK_TYPES = (TASK_SEMANTIC, TASK_PANOPTIC, TASK_INSTANCE)

# ---------------------------------------------------------------------------
# tf.Example feature keys written by `tfrecords_tools/` (schema in
# docs/datasets.md). `[K]` is the number of objects (segments) in the image.
# ---------------------------------------------------------------------------
TFRECORD_IMAGE_ENCODED = 'image/encoded'          # bytes: JPEG or PNG, RGB.
TFRECORD_IMAGE_FORMAT = 'image/format'            # bytes: b'jpeg' | b'png'.
TFRECORD_IMAGE_HEIGHT = 'image/height'            # int64.
TFRECORD_IMAGE_WIDTH = 'image/width'              # int64.
TFRECORD_IMAGE_SOURCE_ID = 'image/source_id'      # bytes: dataset image id.
TFRECORD_IMAGE_FILENAME = 'image/filename'        # bytes.
# PNG (uint8, or uint16 when K > 255) segment-index map at full resolution:
# pixel value k in 1..K belongs to object k-1; 0 is void / ignore.
# Present for semantic and panoptic data (semantic: one object per class).
TFRECORD_SEGMENTATION_ENCODED = 'image/segmentation/encoded'
TFRECORD_OBJECT_CLASS = 'image/object/class/label'            # int64 [K], 0-based vocab index.
TFRECORD_OBJECT_ORIGINAL_ID = 'image/object/class/original_id'  # int64 [K], dataset's own id.
TFRECORD_OBJECT_YMIN = 'image/object/bbox/ymin'   # float [K], normalised to [0, 1].
TFRECORD_OBJECT_XMIN = 'image/object/bbox/xmin'
TFRECORD_OBJECT_YMAX = 'image/object/bbox/ymax'
TFRECORD_OBJECT_XMAX = 'image/object/bbox/xmax'
TFRECORD_OBJECT_IS_CROWD = 'image/object/is_crowd'  # int64 [K].
TFRECORD_OBJECT_AREA = 'image/object/area'          # float [K], pixels.
# Per-object PNG masks (uint8 0/1, full resolution) for instance data whose
# masks may overlap (COCO instance, DaTaSeg O365 evaluation set). Optional.
TFRECORD_OBJECT_MASK = 'image/object/mask'          # bytes [K].
# 1 for annotations the raters skipped (DaTaSeg O365 set): no mask, and an
# optional "ignore" at evaluation.
TFRECORD_OBJECT_IS_IGNORED = 'image/object/is_ignored'  # int64 [K].

# ---------------------------------------------------------------------------
# Decoder output (tf.Example -> dict); dynamic shapes, full resolution.
# ---------------------------------------------------------------------------
DECODED_IMAGE = 'image'                  # uint8 [H, W, 3].
DECODED_SOURCE_ID = 'source_id'          # string [].
DECODED_HEIGHT = 'height'                # int32 [].
DECODED_WIDTH = 'width'                  # int32 [].
DECODED_SEGMENTATION = 'segmentation'    # int32 [H, W]: 0 void, k -> object k-1.
DECODED_CLASSES = 'classes'              # int32 [K].
DECODED_BOXES = 'boxes'                  # float32 [K, 4] normalised yxyx.
DECODED_IS_CROWD = 'is_crowd'            # bool [K].
DECODED_IS_IGNORED = 'is_ignored'        # bool [K].
DECODED_AREAS = 'areas'                  # float32 [K].
DECODED_INSTANCE_MASKS = 'instance_masks'  # uint8 [K, H, W] (instance data with masks).

# ---------------------------------------------------------------------------
# Parser output: static shapes. S = output size, M = max_instances.
# ---------------------------------------------------------------------------
IMAGE = 'image'                  # float32 [S_h, S_w, 3], normalised.
IMAGE_INFO = 'image_info'        # float32 [4, 2]: original hw, scaled hw, scale, offset.
DATASET_ID = 'dataset_id'        # int32 []: index of the dataset in the config list.
GT_MASKS = 'gt_masks'            # uint8 [M, S_h/4, S_w/4]: 1 inside the object.
GT_CLASSES = 'gt_classes'        # int32 [M]: 0-based vocabulary index (0 for padding).
GT_BOXES = 'gt_boxes'            # float32 [M, 4]: yxyx normalised to the padded image.
GT_VALID = 'gt_valid'            # float32 [M]: 1 real object, 0 padding.
IGNORE_MASK = 'ignore_mask'      # uint8 [S_h/4, S_w/4]: 1 where no loss applies.
NUM_TRUNCATED = 'num_truncated'  # int32 []: training objects dropped for exceeding M.
# Evaluation: the image's complete ground truth (every object, none truncated) at its original
# resolution, packed into one string by `ops/groundtruth_codec.py`.
EVAL_GROUNDTRUTH = 'eval_groundtruth'    # string [].
SOURCE_ID = 'source_id'                  # string [].

# Class-map value of void pixels in memory (label maps, metrics). Negative, so that no vocabulary
# index can take it (PASCAL Context 459 has a class 255). Label PNG files use 255 (8-bit) or
# 65535 (16-bit) instead; see docs/evaluation.md.
VOID_LABEL = -1

# ---------------------------------------------------------------------------
# Model inputs and outputs. L = decoder layers, B = batch, N = queries,
# C = padded vocabulary size, D = text-embedding width.
# ---------------------------------------------------------------------------
CLASS_EMBEDDINGS = 'class_embeddings'  # float32 [C, D]: frozen text embeddings.
CLASS_VALID = 'class_valid'            # bool [C]: False for vocabulary padding.
MASK_LOGITS = 'mask_logits'            # float32 [L, B, N, S_h/4, S_w/4].
CLASS_LOGITS = 'class_logits'          # float32 [L, B, N, C + 1]; last = background.

# ---------------------------------------------------------------------------
# Input-pipeline bookkeeping (dataloaders/input_builder.py).
# ---------------------------------------------------------------------------
# bool []: True for the filler elements that pad an evaluation dataset's last
# partial batch to the full batch size; metrics must skip them.
EVAL_IS_PADDING = 'eval_is_padding'
# int64 [2]: stateless seed of one element's random augmentation; the input
# builder adds it to the decoder dict from (seed, element position), so a
# restored iterator replays the same augmentation.
DECODED_AUGMENTATION_SEED = 'augmentation_seed'
