"""COCO instance segmentation (instances_*.json) -> DaTaSeg TFRecords.

  python -m tfrecords_tools.coco_instance --images_dir coco/val2017 \
      --annotations coco/annotations/instances_val2017.json \
      --output_prefix out/coco_instance_val

coco_detection.py with masks always on: per-object `image/object/mask` PNGs
from the polygons / RLE (crowd regions keep is_crowd = 1) and
`image/object/is_ignored` (0 unless an annotation is flagged or has no
segmentation).
"""

import functools
import sys
from typing import List, Optional

from tfrecords_tools import cli
from tfrecords_tools import coco_detection

convert = functools.partial(coco_detection.convert, include_masks=True,
                            converter_name='coco_instance')


def main(argv: Optional[List[str]] = None) -> int:
  return cli.run_main(cli.base_parser(
      __doc__, annotations_help='COCO instances JSON file.'), convert, argv)


if __name__ == '__main__':
  sys.exit(main())
