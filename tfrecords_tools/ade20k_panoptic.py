"""ADE20K panoptic (COCO panoptic format) -> DaTaSeg TFRecords.

  python -m tfrecords_tools.ade20k_panoptic \
      --images_dir ADEChallengeData2016/images/validation \
      --annotations ADEChallengeData2016/ade20k_panoptic_val.json \
      --panoptic_masks_dir ADEChallengeData2016/ade20k_panoptic_val \
      --output_prefix out/ade_panoptic_val

The ADE20K panoptic annotations (150 classes: 100 things, 50 stuff) are made
from the full ADE20K release by the conversion script of Mask2Former /
Detectron2 (`prepare_ade20k_pan_seg.py`) and follow the COCO panoptic
format, so this is coco_panoptic.py under another name. Used for the
semantic -> panoptic weak-transfer evaluation.
"""

import functools
import sys
from typing import List, Optional

from tfrecords_tools import cli
from tfrecords_tools import coco_panoptic

convert = functools.partial(coco_panoptic.convert,
                            converter_name='ade20k_panoptic')


def main(argv: Optional[List[str]] = None) -> int:
  return cli.run_main(coco_panoptic.build_parser(__doc__), convert, argv)


if __name__ == '__main__':
  sys.exit(main())
