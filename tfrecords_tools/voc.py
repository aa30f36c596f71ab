"""PASCAL VOC 2012 segmentation (VOCdevkit layout) -> DaTaSeg TFRecords.

  python -m tfrecords_tools.voc --images_dir VOCdevkit/VOC2012/JPEGImages \
      --annotations VOCdevkit/VOC2012/SegmentationClass --split val \
      --output_prefix out/voc_val

`SegmentationClass/*.png` are palette PNGs; their palette *indices* are the
labels (0 = background, 1..20 the classes, 255 = ignore on object borders).
Background is class 0 of the vocabulary and is written as a segment like any
other class; 255 becomes 0 (void) in the segment map. The image list is
`ImageSets/Segmentation/<split>.txt` beside the annotations folder (or
--image_set). The vocabulary is VOC's 21 classes by label value, or
--vocabulary (a vocabulary JSON whose ids are the label values).
"""

import os
import sys
from typing import Any, Dict, List, Optional

from tfrecords_tools import cli
from tfrecords_tools import semantic_labels
from tfrecords_tools import vocabulary as vocabulary_lib

VOC_IGNORE_VALUES = (255,)


def convert(images_dir: str, annotations: str, output_prefix: str,
            split: str = 'val', image_set: Optional[str] = None,
            vocabulary: Optional[str] = None, **writer_flags) -> Dict[str, Any]:
  """Converts one VOC segmentation split; returns the report dict.

  Args:
    images_dir: VOC2012/JPEGImages.
    annotations: VOC2012/SegmentationClass.
    output_prefix: output path prefix.
    split: name of the ImageSets/Segmentation list (train / val / trainval).
    image_set: explicit list file, overriding `split`.
    vocabulary: optional vocabulary JSON (ids = label values).
    **writer_flags: num_shards, num_workers, strict, show_progress,
      overwrite, max_skip_fraction of tfrecord_writer.write_sharded.
  """
  if image_set is None:
    image_set = os.path.join(os.path.dirname(os.path.normpath(annotations)),
                             'ImageSets', 'Segmentation', split + '.txt')
  if vocabulary:
    classes, source = vocabulary_lib.load_json(vocabulary), vocabulary
  else:
    classes = vocabulary_lib.from_names(
        vocabulary_lib.VOC_CLASS_NAMES,
        is_thing=[False] + [True] * (len(vocabulary_lib.VOC_CLASS_NAMES) - 1))
    source = 'PASCAL VOC 2012 (21 classes)'
  tasks = semantic_labels.list_image_label_pairs(
      images_dir, annotations, semantic_labels.read_image_set(image_set))
  return semantic_labels.convert_semantic(
      tasks, classes, VOC_IGNORE_VALUES, output_prefix, 'voc',
      os.path.basename(source), **writer_flags)


def build_parser():
  parser = cli.base_parser(
      __doc__, annotations_help='VOC2012/SegmentationClass folder.')
  parser.add_argument('--split', default='val',
                      help='ImageSets/Segmentation/<split>.txt to convert.')
  parser.add_argument('--image_set', default=None,
                      help='Explicit image list file (overrides --split).')
  parser.add_argument('--vocabulary', default=None,
                      help='Vocabulary JSON whose ids are the label values '
                      '(default: the 21 VOC classes).')
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  return cli.run_main(build_parser(), convert, argv)


if __name__ == '__main__':
  sys.exit(main())
