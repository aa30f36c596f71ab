"""ADE20K panoptic in the layout Mask2Former's `prepare_ade20k_pan_seg.py` writes:
`ade20k_panoptic_val.json` (COCO panoptic format, ADE ids 1..150 with isthing) +
`ade20k_panoptic_val/*.png` (id = R + 256 G + 256^2 B) + `images/validation/*.jpg`."""
import json
import os

import numpy as np
from PIL import Image

from official_dataseg import common
from official_dataseg.text import vocabulary as vocabulary_lib
from tests.tfrecords_tools import helpers
from tfrecords_tools import ade20k_panoptic


def _write_dataset(root):
  vocabulary = vocabulary_lib.load_vocabulary('ade20k_panoptic')
  categories = [{'id': int(c.id), 'name': c.name, 'isthing': int(c.is_thing)}
                for c in vocabulary.classes]
  things = [c for c in categories if c['isthing']]
  stuff = [c for c in categories if not c['isthing']]
  images_dir = os.path.join(root, 'images', 'validation')
  masks_dir = os.path.join(root, 'ade20k_panoptic_val')
  os.makedirs(images_dir)
  os.makedirs(masks_dir)
  height, width = 24, 32
  # Two stuff regions (top / bottom) and two instances of one thing class, one of them crowd.
  ids = np.zeros([height, width], np.int64)
  ids[:12] = 1001
  ids[12:] = 2002
  ids[4:10, 4:12] = 3003
  ids[14:20, 20:30] = 4004
  ids[0, 0] = 0  # A void pixel.
  segments = [
      {'id': 1001, 'category_id': stuff[0]['id'], 'iscrowd': 0},
      {'id': 2002, 'category_id': stuff[1]['id'], 'iscrowd': 0},
      {'id': 3003, 'category_id': things[0]['id'], 'iscrowd': 0},
      {'id': 4004, 'category_id': things[0]['id'], 'iscrowd': 1},
  ]
  for segment in segments:
    mask = ids == segment['id']
    rows, cols = np.nonzero(mask)
    segment['area'] = int(mask.sum())
    segment['bbox'] = [int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1),
                       int(rows.max() - rows.min() + 1)]
  rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
  Image.fromarray(rgb).save(os.path.join(masks_dir, 'ADE_val_00000001.png'))
  image = np.random.default_rng(0).integers(0, 255, [height, width, 3], dtype=np.uint8)
  Image.fromarray(image).save(os.path.join(images_dir, 'ADE_val_00000001.jpg'))
  annotations = os.path.join(root, 'ade20k_panoptic_val.json')
  with open(annotations, 'w') as f:
    json.dump({'images': [{'id': 'ADE_val_00000001', 'file_name': 'ADE_val_00000001.jpg',
                           'height': height, 'width': width}],
               'annotations': [{'image_id': 'ADE_val_00000001',
                                'file_name': 'ADE_val_00000001.png',
                                'segments_info': segments}],
               'categories': categories}, f)
  return images_dir, annotations, masks_dir, ids, segments, vocabulary


def test_round_trip(tmp_path):
  images_dir, annotations, masks_dir, ids, segments, vocabulary = _write_dataset(str(tmp_path))
  prefix = str(tmp_path / 'out' / 'ade_panoptic_val')
  report = ade20k_panoptic.convert(images_dir, annotations, prefix,
                                   panoptic_masks_dir=masks_dir, show_progress=False)
  assert report['images_written'] == 1
  (example,) = helpers.read_examples(prefix)
  segment_map = helpers.segment_map(example)
  index_of = vocabulary.id_to_index()
  classes = example[common.TFRECORD_OBJECT_CLASS]
  crowd = example[common.TFRECORD_OBJECT_IS_CROWD]
  assert len(classes) == len(segments)
  for k, (cls, is_crowd) in enumerate(zip(classes, crowd)):
    # Object k is the segment whose pixels carry value k + 1 in the map.
    source_ids = np.unique(ids[segment_map == k + 1])
    assert len(source_ids) == 1
    segment = [s for s in segments if s['id'] == source_ids[0]][0]
    assert cls == index_of[segment['category_id']]
    assert is_crowd == segment['iscrowd']
  assert segment_map[0, 0] == 0
  saved = vocabulary_lib.load_vocabulary(prefix + '-vocabulary.json')
  assert saved.num_classes == 150
  assert int(np.sum(saved.is_thing)) == 100
