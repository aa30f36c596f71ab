"""Cityscapes panoptic (cityscapesScripts layout) -> DaTaSeg TFRecords.

  python -m tfrecords_tools.cityscapes_panoptic \
      --images_dir cityscapes/leftImg8bit/val \
      --annotations cityscapes/gtFine/cityscapes_panoptic_val.json \
      --output_prefix out/cityscapes_panoptic_val

Input: what cityscapesScripts' `createPanopticImgs` writes, i.e. COCO panoptic
format: `gtFine/cityscapes_panoptic_{split}.json` and the RGB-encoded PNGs in
`gtFine/cityscapes_panoptic_{split}/` (id = R + 256 G + 256^2 B; stuff
segment id = label id, thing id = label id * 1000 + instance number, a thing
region without instances is one crowd segment with id = label id; pixels of
classes ignored in evaluation are 0 = void).

Images: an image record's id is `{city}_{seq}_{frame}`; the image is read from
`--images_dir/{city}/{id}_leftImg8bit.png` (the JSON's own `file_name`,
`..._gtFine_leftImg8bit.png`, names no existing file). `image/filename` is
`{city}/{id}_leftImg8bit.png`.

Classes: the JSON's category ids are Cityscapes label ids (7 road .. 33
bicycle), or train ids 0..18 when the JSON was made with `--use-train-id`
(`cityscapes_panoptic_{split}_trainId.json`); either way each category must
match a class of the vocabulary (default the built-in
`cityscapes_panoptic.json`, 19 classes in train-id order) by id and name,
else the conversion stops. `image/object/class/label` is the train id
(vocabulary index), `image/object/class/original_id` the label id.

Repairs, drops and skips are those of coco_panoptic.py.
"""

import functools
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

from official_dataseg.text import vocabulary as text_vocabulary
from tfrecords_tools import cli
from tfrecords_tools import coco_panoptic
from tfrecords_tools import tfrecord_writer
from tfrecords_tools import vocabulary as vocabulary_lib

DEFAULT_VOCABULARY = os.path.join(text_vocabulary.VOCABULARY_DIR,
                                  'cityscapes_panoptic.json')
_IMAGE_SUFFIX = '_leftImg8bit.png'


def image_path(images_dir: str, image_record: Dict[str, Any]):
  """ImagePathFn: `images_dir/{city}/{id}_leftImg8bit.png`.

  Returns:
    (absolute image path, file name relative to images_dir).
  """
  image_id = str(image_record['id'])
  city = image_id.split('_')[0]
  relative = os.path.join(city, image_id + _IMAGE_SUFFIX)
  return os.path.join(images_dir, relative), relative


def match_categories(vocabulary_path: str,
                     categories: Sequence[Dict[str, Any]], annotations: str):
  """VocabularyFn: maps the JSON's categories onto the vocabulary file.

  Returns:
    (vocabulary entries, JSON category id -> vocabulary index).

  Raises:
    ConversionError: a category matches no class by (label id, name) nor,
      for every category, by (train id, name).
  """
  vocabulary = vocabulary_lib.load_json(vocabulary_path)
  if not categories:
    raise tfrecord_writer.ConversionError(f'{annotations}: "categories" is '
                                          'empty')
  train_ids = [c.get('train_id') for c in vocabulary]
  by_label_id = {(c['id'], c['name']): c['index'] for c in vocabulary}
  by_train_id = {(t, c['name']): c['index']
                 for c, t in zip(vocabulary, train_ids) if t is not None}
  keys = []
  for position, category in enumerate(categories):
    for field in ('id', 'name'):
      if field not in category:
        raise tfrecord_writer.ConversionError(
            f'{annotations}: categories[{position}] has no "{field}" field')
    keys.append((category['id'], category['name']))
  for table, kind in ((by_label_id, 'label ids'), (by_train_id, 'train ids')):
    if all(key in table for key in keys):
      return vocabulary, {key[0]: table[key] for key in keys}
  unmatched = [key for key in keys if key not in by_label_id]
  raise tfrecord_writer.ConversionError(
      f'{annotations}: categories {unmatched[:5]} (id, name) match no class of '
      f'{vocabulary_path} by Cityscapes label id (nor are all categories '
      'train ids); expected the categories cityscapesScripts\' '
      'createPanopticImgs writes')


def convert(images_dir: str, annotations: str, output_prefix: str,
            panoptic_masks_dir: Optional[str] = None,
            vocabulary: Optional[str] = None, **writer_flags) -> Dict[str, Any]:
  """Converts one Cityscapes panoptic split; returns the report dict.

  Args:
    images_dir: `leftImg8bit/<split>` (holding one folder per city).
    annotations: `gtFine/cityscapes_panoptic_<split>.json`.
    output_prefix: output path prefix.
    panoptic_masks_dir: PNG folder; default the JSON path without `.json`.
    vocabulary: vocabulary JSON; default the built-in cityscapes_panoptic.
    **writer_flags: num_shards, num_workers, strict, show_progress,
      overwrite, max_skip_fraction of tfrecord_writer.write_sharded.
  """
  return coco_panoptic.convert(
      images_dir, annotations, output_prefix,
      panoptic_masks_dir=panoptic_masks_dir,
      converter_name='cityscapes_panoptic',
      vocabulary_fn=functools.partial(match_categories,
                                      vocabulary or DEFAULT_VOCABULARY),
      image_path_fn=image_path, **writer_flags)


def build_parser():
  parser = cli.base_parser(
      __doc__,
      annotations_help='gtFine/cityscapes_panoptic_<split>.json written by '
      'cityscapesScripts createPanopticImgs.',
      images_dir_help='leftImg8bit/<split> folder (one subfolder per city).')
  parser.add_argument(
      '--panoptic_masks_dir', default=None,
      help='Folder of the panoptic PNGs (default: the JSON path without '
      '".json", i.e. gtFine/cityscapes_panoptic_<split>).')
  parser.add_argument(
      '--vocabulary', default=None,
      help='Vocabulary JSON whose ids are Cityscapes label ids (and '
      'optionally train_id fields); default: the built-in '
      'cityscapes_panoptic.json (19 classes in train-id order).')
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  return cli.run_main(build_parser(), convert, argv)


if __name__ == '__main__':
  sys.exit(main())
