"""Objects365 v2 (COCO detection format) -> DaTaSeg TFRecords.

  python -m tfrecords_tools.objects365 --images_dir objects365/train \
      --annotations objects365/zhiyuan_objv2_train.json \
      --output_prefix out/o365_train --num_shards 256 --num_workers 16

Boxes only by default (training); `--include_masks` for the DaTaSeg
Objects365 instance-segmentation evaluation set (masks + is_ignored).
Conversion, image path resolution, drops and repairs: coco_detection.py.
"""

import functools
import sys
from typing import List, Optional

from tfrecords_tools import cli
from tfrecords_tools import coco_detection

convert = functools.partial(coco_detection.convert, converter_name='objects365')


def main(argv: Optional[List[str]] = None) -> int:
  return cli.run_main(coco_detection.build_parser(__doc__), convert, argv)


if __name__ == '__main__':
  sys.exit(main())
