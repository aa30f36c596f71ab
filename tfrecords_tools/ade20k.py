"""ADE20K semantic (ADEChallengeData2016 layout) -> DaTaSeg TFRecords.

  python -m tfrecords_tools.ade20k \
      --images_dir ADEChallengeData2016/images/validation \
      --annotations ADEChallengeData2016/annotations/validation \
      --output_prefix out/ade_val --num_shards 4 --num_workers 4

Each `images/<split>/<name>.jpg` pairs with `annotations/<split>/<name>.png`
whose values are class label values 1..150 (0 = "other", ignored). The
vocabulary is read from `objectInfo150.txt` (default: two folders above
--annotations, i.e. the dataset root), ordered by label value; pass
--vocabulary to use a vocabulary JSON instead (e.g. for thing/stuff flags).
Images without a label PNG are skipped ('missing_label_png').
"""

import os
import sys
from typing import Any, Dict, List, Optional

from tfrecords_tools import cli
from tfrecords_tools import semantic_labels
from tfrecords_tools import vocabulary as vocabulary_lib

ADE_IGNORE_VALUES = (0,)


def convert(images_dir: str, annotations: str, output_prefix: str,
            class_info: Optional[str] = None,
            vocabulary: Optional[str] = None, **writer_flags) -> Dict[str, Any]:
  """Converts one ADEChallengeData2016 split; returns the report dict.

  Args:
    images_dir: `images/training` or `images/validation`.
    annotations: the matching `annotations/<split>` folder of label PNGs.
    output_prefix: output path prefix.
    class_info: objectInfo150.txt; default `<annotations>/../../`.
    vocabulary: optional vocabulary JSON overriding `class_info`.
    **writer_flags: num_shards, num_workers, strict, show_progress,
      overwrite, max_skip_fraction of tfrecord_writer.write_sharded.
  """
  if vocabulary:
    classes, source = vocabulary_lib.load_json(vocabulary), vocabulary
  else:
    class_info = class_info or os.path.join(
        os.path.dirname(os.path.dirname(os.path.normpath(annotations))),
        'objectInfo150.txt')
    classes, source = vocabulary_lib.load_ade_object_info(class_info), class_info
  tasks = semantic_labels.list_image_label_pairs(images_dir, annotations)
  return semantic_labels.convert_semantic(
      tasks, classes, ADE_IGNORE_VALUES, output_prefix, 'ade20k',
      os.path.basename(source), **writer_flags)


def build_parser():
  parser = cli.base_parser(
      __doc__, annotations_help='Folder of label PNGs '
      '(ADEChallengeData2016/annotations/<split>).')
  parser.add_argument('--class_info', default=None,
                      help='objectInfo150.txt (default: dataset root found '
                      'two folders above --annotations).')
  parser.add_argument('--vocabulary', default=None,
                      help='Vocabulary JSON used instead of --class_info.')
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  return cli.run_main(build_parser(), convert, argv)


if __name__ == '__main__':
  sys.exit(main())
