"""COCO detection-format JSON -> DaTaSeg TFRecords: what objects365.py and coco_instance.py share.

Boxes only by default (Objects365 training: no segment map, no masks).
`include_masks` also decodes each annotation's `segmentation` (polygons,
uncompressed or compressed RLE) into `image/object/mask` and writes
`image/object/is_ignored`: 1 for annotations the raters skipped in the
DaTaSeg Objects365 evaluation set. **Interpretation** (the release format is
not public here): an annotation is "skipped" when any of `skipped`,
`is_ignored` or `ignore` is truthy or it has no / an empty `segmentation`
(`instance_metrics.is_skipped_annotation`, the file evaluator's rule too);
it keeps its box and gets an all-zero mask.

Image paths: `file_name` is tried under --images_dir as given, then by its
last two components (Objects365 v2 lists `images/v1/patch8/x.jpg` while the
download unpacks to `train/patch8/x.jpg`), then by its base name.

Documented drops (counted; errors under --strict): unknown_category_id,
malformed_bbox, non_positive_box, box_outside_image,
unreadable_segmentation (also: no valid polygon). Repairs: box_clipped (a
box crossing the image edge by more than 1 pixel is clipped; smaller
overshoots are rounding and clipped silently), invalid_polygon (a polygon
with fewer than 3 points or an odd number of coordinates is left out of the
mask; the object's other polygons are kept). Images without annotations are
written with zero objects.
"""

import collections
import dataclasses
import functools
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
from pycocotools import mask as mask_api
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg.evaluation import instance_metrics
from tfrecords_tools import cli
from tfrecords_tools import coco_json
from tfrecords_tools import example_builder
from tfrecords_tools import image_io
from tfrecords_tools import tfrecord_writer
from tfrecords_tools import vocabulary as vocabulary_lib
from tfrecords_tools.tfrecord_writer import Issue, ImageResult

_DROP = tfrecord_writer.ISSUE_DROP
_CLIP_TOLERANCE_PX = 1.0


@dataclasses.dataclass
class _Config:
  images_dir: str
  annotations: str
  id_to_index: Dict[Any, int]
  include_masks: bool


def resolve_image_path(images_dir: str, file_name: str) -> str:
  """First existing candidate path of `file_name` (see module docstring)."""
  parts = file_name.replace('\\', '/').split('/')
  candidates = [os.path.join(images_dir, file_name),
                os.path.join(images_dir, *parts[-2:]),
                os.path.join(images_dir, parts[-1])]
  for candidate in candidates:
    if tf.io.gfile.exists(candidate):
      return candidate
  return candidates[0]


def split_polygons(polygons) -> Tuple[List[List[float]], List[str]]:
  """Valid COCO polygons and a description of each invalid one.

  A valid polygon is a flat list of an even number (>= 6: three points) of
  finite numbers. pycocotools reads a first polygon of exactly 4 numbers as a
  box list and fails on shorter ones, so invalid polygons never reach it.

  Returns:
    (valid polygons as float lists, ['polygon i: why', ...]).
  """
  valid, invalid = [], []
  for position, polygon in enumerate(polygons):
    try:
      coordinates = np.asarray(polygon, np.float64)
    except (TypeError, ValueError):
      invalid.append(f'polygon {position}: not a list of numbers')
      continue
    if coordinates.ndim != 1 or coordinates.size % 2:
      invalid.append(f'polygon {position}: {coordinates.size} numbers, expected '
                     'an even count (x, y pairs)')
    elif coordinates.size < 6:
      invalid.append(f'polygon {position}: {coordinates.size // 2} points, '
                     'expected at least 3')
    elif not np.all(np.isfinite(coordinates)):
      invalid.append(f'polygon {position}: non-finite coordinates')
    else:
      valid.append(coordinates.tolist())
  return valid, invalid


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
  """COCO polygons (valid ones, see `split_polygons`) / RLE -> uint8 [H, W] 0/1.

  Raises:
    ValueError: no valid polygon, malformed input, or an RLE whose size
      differs from the image.
  """
  if isinstance(segmentation, list):
    polygons, invalid = split_polygons(segmentation)
    if not polygons:
      raise ValueError(f'no valid polygon ({"; ".join(invalid)})')
    rle = mask_api.merge(mask_api.frPyObjects(polygons, height, width))
  elif isinstance(segmentation, dict):
    size = list(segmentation.get('size', []))
    if size != [height, width]:
      raise ValueError(f'RLE size {size} differs from image [{height}, '
                       f'{width}]')
    if isinstance(segmentation.get('counts'), list):
      rle = mask_api.frPyObjects(segmentation, height, width)
    else:
      counts = segmentation['counts']
      rle = {'size': size,
             'counts': counts.encode() if isinstance(counts, str) else counts}
  else:
    raise ValueError(f'unsupported segmentation type {type(segmentation)}')
  return np.asarray(mask_api.decode(rle), np.uint8)


def _box_object(config: _Config, annotation, where: str, height: int,
                width: int):
  """Returns (ObjectRecord or None, issues) for one annotation."""
  category_id = annotation['category_id']
  if category_id not in config.id_to_index:
    return None, [Issue(_DROP, 'unknown_category_id',
                        f'{config.annotations}: {where}.category_id '
                        f'{category_id} is not in "categories"; dropped')]
  bbox = annotation['bbox']
  try:
    x, y, w, h = (float(v) for v in bbox)
  except (TypeError, ValueError):
    return None, [Issue(_DROP, 'malformed_bbox',
                        f'{config.annotations}: {where}.bbox is {bbox!r}; '
                        'expected [x, y, width, height]; dropped')]
  if not (w > 0 and h > 0):
    return None, [Issue(_DROP, 'non_positive_box',
                        f'{config.annotations}: {where}.bbox {bbox} has a '
                        'non-positive width or height; dropped')]
  ymin, xmin = max(y, 0.0), max(x, 0.0)
  ymax, xmax = min(y + h, float(height)), min(x + w, float(width))
  if ymax <= ymin or xmax <= xmin:
    return None, [Issue(_DROP, 'box_outside_image',
                        f'{config.annotations}: {where}.bbox {bbox} lies '
                        f'outside the {height}x{width} image; dropped')]
  issues = []
  overshoot = max(-x, -y, x + w - width, y + h - height)
  if overshoot > _CLIP_TOLERANCE_PX:
    issues.append(Issue(tfrecord_writer.ISSUE_REPAIR, 'box_clipped',
                        f'{config.annotations}: {where}.bbox {bbox} crosses '
                        f'the {height}x{width} image edge; clipped'))
  record = example_builder.ObjectRecord(
      config.id_to_index[category_id], int(category_id),
      (ymin, xmin, ymax, xmax),
      float(annotation.get('area', (ymax - ymin) * (xmax - xmin))),
      int(bool(annotation.get('iscrowd', 0))))
  return record, issues


def _attach_mask(config: _Config, record, annotation, where: str, height: int,
                 width: int):
  """Sets record.mask / is_ignored; returns a list of issues."""
  segmentation = annotation.get('segmentation')
  if instance_metrics.is_skipped_annotation(annotation):
    record.mask = np.zeros((height, width), np.uint8)
    record.is_ignored = 1
    return []
  try:
    record.mask = decode_segmentation(segmentation, height, width)
  except Exception as error:  # pylint: disable=broad-except
    return [Issue(_DROP, 'unreadable_segmentation',
                  f'{config.annotations}: {where}.segmentation cannot be '
                  f'decoded ({error}); dropped')]
  if isinstance(segmentation, list):
    invalid = split_polygons(segmentation)[1]
    if invalid:
      return [Issue(tfrecord_writer.ISSUE_REPAIR, 'invalid_polygon',
                    f'{config.annotations}: {where}.segmentation: '
                    f'{"; ".join(invalid)}; left out of the mask',
                    count=len(invalid))]
  return []


def process_image(config: _Config, task) -> ImageResult:
  """Converts one image record and its annotations."""
  image_record, annotations = task
  image = image_io.load_image(
      resolve_image_path(config.images_dir, image_record['file_name']))
  coco_json.check_image_size(image_record, image.height, image.width,
                             config.annotations)
  objects, issues = [], []
  for position, annotation in annotations:
    where = f'annotations[{position}]'
    record, box_issues = _box_object(config, annotation, where, image.height,
                                     image.width)
    issues.extend(box_issues)
    if record is None:
      continue
    if config.include_masks:
      mask_issues = _attach_mask(config, record, annotation, where,
                                 image.height, image.width)
      issues.extend(mask_issues)
      if record.mask is None:
        continue
    objects.append(record)
  example = example_builder.build_example(
      image, str(image_record['id']), image_record['file_name'], objects,
      include_masks=config.include_masks,
      include_is_ignored=config.include_masks)
  notes = {'images_reencoded': 1} if image.reencoded_from else {}
  if not objects:
    notes['images_without_objects'] = 1
  return ImageResult(example_builder.serialize(example),
                     sorted({o.class_index for o in objects}), len(objects),
                     issues, notes)


def convert(images_dir: str, annotations: str, output_prefix: str,
            include_masks: bool = False,
            converter_name: str = 'coco_detection',
            **writer_flags) -> Dict[str, Any]:
  """Converts a COCO detection-format dataset; returns the report dict.

  Args:
    images_dir: image root (see module docstring for path resolution).
    annotations: the detection JSON (images, annotations, categories).
    output_prefix: output path prefix.
    include_masks: decode `segmentation` into per-object masks and write
      `is_ignored` (evaluation sets, COCO instance).
    **writer_flags: num_shards, num_workers, strict, show_progress,
      overwrite, max_skip_fraction of tfrecord_writer.write_sharded.
    converter_name: recorded in the report.
  """
  content = coco_json.load(annotations, ('images', 'annotations',
                                         'categories'))
  vocabulary = vocabulary_lib.from_coco_categories(content['categories'],
                                                   annotations)
  images_by_id = coco_json.index_images(content['images'], annotations)
  if not content['annotations']:
    raise tfrecord_writer.ConversionError(
        f'{annotations}: "annotations" is empty (an image-info file?)')
  by_image = collections.defaultdict(list)
  for position, annotation in enumerate(content['annotations']):
    coco_json.require(annotation, ('image_id', 'category_id', 'bbox'),
                      annotations, f'annotations[{position}]')
    if annotation['image_id'] not in images_by_id:
      raise tfrecord_writer.ConversionError(
          f'{annotations}: annotations[{position}].image_id '
          f'{annotation["image_id"]} is not in "images"')
    by_image[annotation['image_id']].append((position, annotation))
  tasks = [(images_by_id[i], by_image.get(i, []))
           for i in sorted(images_by_id, key=coco_json.sort_key)]
  del content
  config = _Config(images_dir, annotations,
                   {c['id']: c['index'] for c in vocabulary}, include_masks)
  return tfrecord_writer.write_sharded(
      output_prefix, tasks, functools.partial(process_image, config),
      vocabulary, converter_name=converter_name,
      vocabulary_metadata={'name': os.path.basename(output_prefix),
                           'task': 'instance',
                           'source': os.path.basename(annotations)},
      **writer_flags)


def build_parser(description: str):
  """The converter flags plus --include_masks."""
  parser = cli.base_parser(
      description, annotations_help='COCO detection-format JSON file.')
  parser.add_argument(
      '--include_masks', action='store_true',
      help='Decode "segmentation" into image/object/mask and write '
      'image/object/is_ignored (evaluation sets).')
  return parser


