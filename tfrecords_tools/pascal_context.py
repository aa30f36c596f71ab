"""PASCAL Context 59 / 459 (prepared label files) -> DaTaSeg TFRecords.

  python -m tfrecords_tools.pascal_context --num_classes 59 \
      --images_dir VOCdevkit/VOC2010/JPEGImages \
      --annotations VOCdevkit/VOC2010/SegmentationClassContext \
      --image_set VOCdevkit/VOC2010/ImageSets/SegmentationContext/val.txt \
      --output_prefix out/pascal_context_59_val

PASCAL Context ships its labels as .mat files; the common preparation scripts
turn them into one label image per VOC2010 image. Two value conventions are
read (--label_format):

  one_based   value v in 1..N is class id v of the vocabulary, 0 is ignored.
              This is mmsegmentation's `tools/dataset_converters/
              pascal_context.py` (59 classes: uint8 PNGs in
              SegmentationClassContext/, 0 = background, which mmseg's
              reduce_zero_label turns into ignore) and the raw .mat LabelMap
              saved as a PNG (459 classes, 0 = unlabeled). Default for 59.
  zero_based  value v in 0..N-1 is class id v + 1; 255 (59 classes, uint8
              PNG) or 65535 (459 classes, uint16 TIFF / PNG) is ignored. This
              is the detectron2-style `prepare_pascal_context.py` of the
              open-vocabulary segmentation projects (annotations_detectron2/
              pc59_val/*.png, pc459_val/*.tif). Default for 459.

Class ids are those of the built-in vocabularies `pascal_context_59.json`
(ids 1..59: the 59 classes in the order of their full-list ids, the order
both scripts use) and `pascal_context_459.json` (ids 1..459: labels.txt of
the 459-class release); the vocabulary index is id - 1 and
`image/object/class/original_id` is the id. Ignored pixels are void (0) in the
segment map; values above N are voided and counted ('unknown_label_value').

Images: every label file (.png / .tif / .tiff) in --annotations, or the names
listed in --image_set, paired with `--images_dir/<name>.jpg`.
"""

import os
import sys
from typing import Any, Dict, List, Optional

import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg.text import vocabulary as text_vocabulary
from tfrecords_tools import cli
from tfrecords_tools import semantic_labels
from tfrecords_tools import tfrecord_writer
from tfrecords_tools import vocabulary as vocabulary_lib

ONE_BASED, ZERO_BASED = 'one_based', 'zero_based'
_DEFAULT_FORMAT = {59: ONE_BASED, 459: ZERO_BASED}
# Ignore value of zero-based files: the dtype's maximum (uint8 / uint16).
_ZERO_BASED_IGNORE = {59: 255, 459: 65535}
_LABEL_EXTENSIONS = ('.png', '.tif', '.tiff')


def label_convention(num_classes: int, label_format: str):
  """(ignore values, label offset) of a label format.

  label value = class id - label offset.
  """
  if label_format == ONE_BASED:
    return (0,), 0
  if label_format == ZERO_BASED:
    return (_ZERO_BASED_IGNORE[num_classes],), 1
  raise tfrecord_writer.ConversionError(
      f'--label_format must be {ONE_BASED} or {ZERO_BASED}, got '
      f'{label_format!r}')


def _files_by_stem(folder: str, extensions) -> Dict[str, str]:
  return {os.path.splitext(f)[0]: f for f in sorted(tf.io.gfile.listdir(folder))
          if f.lower().endswith(extensions)}


def list_tasks(images_dir: str, labels_dir: str,
               image_set: Optional[str]) -> List[semantic_labels.SemanticTask]:
  """One task per label file (or per --image_set name), sorted by name."""
  for folder, flag in ((images_dir, '--images_dir'),
                       (labels_dir, '--annotations')):
    if not tf.io.gfile.isdir(folder):
      raise tfrecord_writer.ConversionError(f'{folder}: {flag} is not a '
                                            'folder')
  labels = _files_by_stem(labels_dir, _LABEL_EXTENSIONS)
  names = (semantic_labels.read_image_set(image_set) if image_set else
           sorted(labels))
  if not names:
    raise tfrecord_writer.ConversionError(
        f'{labels_dir}: no label files ({", ".join(_LABEL_EXTENSIONS)})')
  images = _files_by_stem(images_dir, semantic_labels.IMAGE_EXTENSIONS)
  # A listed name without its files stays a task so it is reported missing.
  return [semantic_labels.SemanticTask(
      os.path.join(images_dir, images.get(name, name + '.jpg')),
      os.path.join(labels_dir, labels.get(name, name + '.png')),
      name, images.get(name, name + '.jpg')) for name in names]


def convert(images_dir: str, annotations: str, output_prefix: str,
            num_classes: int = 59, label_format: Optional[str] = None,
            image_set: Optional[str] = None,
            vocabulary: Optional[str] = None, **writer_flags) -> Dict[str, Any]:
  """Converts one PASCAL Context split; returns the report dict.

  Args:
    images_dir: VOC2010/JPEGImages.
    annotations: folder of prepared label files.
    output_prefix: output path prefix.
    num_classes: 59 or 459.
    label_format: 'one_based' or 'zero_based' (see the module docstring);
      default one_based for 59, zero_based for 459.
    image_set: optional list of image names to convert.
    vocabulary: vocabulary JSON; default the built-in
      pascal_context_<num_classes>.json.
    **writer_flags: num_shards, num_workers, strict, show_progress,
      overwrite, max_skip_fraction of tfrecord_writer.write_sharded.
  """
  if num_classes not in _DEFAULT_FORMAT:
    raise tfrecord_writer.ConversionError(
        f'--num_classes must be 59 or 459, got {num_classes}')
  label_format = label_format or _DEFAULT_FORMAT[num_classes]
  ignore_values, label_offset = label_convention(num_classes, label_format)
  vocabulary = vocabulary or os.path.join(
      text_vocabulary.VOCABULARY_DIR, f'pascal_context_{num_classes}.json')
  classes = vocabulary_lib.load_json(vocabulary)
  if len(classes) != num_classes:
    raise tfrecord_writer.ConversionError(
        f'{vocabulary}: has {len(classes)} classes but --num_classes is '
        f'{num_classes}')
  tasks = list_tasks(images_dir, annotations, image_set)
  return semantic_labels.convert_semantic(
      tasks, classes, ignore_values, output_prefix,
      f'pascal_context_{num_classes}', os.path.basename(vocabulary),
      label_offset=label_offset, **writer_flags)


def build_parser():
  parser = cli.base_parser(
      __doc__, annotations_help='Folder of prepared label files (PNG / TIFF).',
      images_dir_help='VOC2010/JPEGImages.')
  parser.add_argument('--num_classes', type=int, default=59,
                      choices=(59, 459), help='Class set: 59 or 459.')
  parser.add_argument(
      '--label_format', default=None, choices=(ONE_BASED, ZERO_BASED),
      help='Label value convention (see above); default one_based for 59 '
      '(mmsegmentation), zero_based for 459 (detectron2 TIFF).')
  parser.add_argument('--image_set', default=None,
                      help='Image list file (one name per line); default: '
                      'every label file in --annotations.')
  parser.add_argument('--vocabulary', default=None,
                      help='Vocabulary JSON whose ids are the one-based class '
                      'ids (default: the built-in pascal_context_<N>.json).')
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  return cli.run_main(build_parser(), convert, argv)


if __name__ == '__main__':
  sys.exit(main())
