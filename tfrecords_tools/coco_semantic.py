"""COCO semantic (133 classes, derived from COCO panoptic) -> DaTaSeg TFRecords.

  python -m tfrecords_tools.coco_semantic --images_dir coco/val2017 \
      --annotations coco/annotations/panoptic_val2017.json \
      --output_prefix out/coco_semantic_val

Reads the panoptic JSON + PNGs (as coco_panoptic.py) and merges the segments
of each category into one object per class present (crowd flags dropped:
crowd pixels belong to their class in semantic evaluation).
"""

import functools
import sys
from typing import List, Optional

from tfrecords_tools import cli
from tfrecords_tools import coco_panoptic

convert = functools.partial(coco_panoptic.convert, semantic=True,
                            converter_name='coco_semantic')


def main(argv: Optional[List[str]] = None) -> int:
  return cli.run_main(coco_panoptic.build_parser(__doc__), convert, argv)


if __name__ == '__main__':
  sys.exit(main())
