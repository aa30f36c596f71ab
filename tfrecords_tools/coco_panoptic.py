"""COCO panoptic format (JSON + RGB-encoded PNGs) -> DaTaSeg TFRecords.

  python -m tfrecords_tools.coco_panoptic --images_dir coco/val2017 \
      --annotations coco/annotations/panoptic_val2017.json \
      --output_prefix out/coco_panoptic_val --num_shards 8 --num_workers 4

The PNG folder defaults to the JSON path without `.json` (the COCO layout).
One object per segment of `segments_info`, in JSON order; the segment map
holds k for segment k-1. With `semantic=True` (coco_semantic.py) segments of
the same category are merged into one object per class instead.

Documented repairs / drops (counted in the report, errors under --strict):
  png_segment_not_in_json   PNG pixels whose id no segment lists -> void;
  segment_absent_from_png   a listed segment with no pixel -> dropped;
  unknown_category_id       a segment whose category is not in "categories"
                            -> dropped, its pixels void.
Skipped images: missing_image, unreadable_image, missing_panoptic_png,
unreadable_panoptic_png, size_mismatch, no_annotation_entry (an image of
"images" that no "annotations" entry names).
"""

import dataclasses
import functools
import os
import sys
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from tfrecords_tools import cli
from tfrecords_tools import coco_json
from tfrecords_tools import example_builder
from tfrecords_tools import image_io
from tfrecords_tools import tfrecord_writer
from tfrecords_tools import vocabulary as vocabulary_lib
from tfrecords_tools.tfrecord_writer import Issue, ImageResult, SkipImage

_REPAIR = tfrecord_writer.ISSUE_REPAIR
_DROP = tfrecord_writer.ISSUE_DROP


# (categories, annotation path) -> (vocabulary entries, JSON category id ->
# vocabulary index).
VocabularyFn = Callable[[Sequence[Dict[str, Any]], str],
                        Tuple[List[Dict[str, Any]], Dict[Any, int]]]
# (images_dir, image record) -> (image path, file name written to the example).
ImagePathFn = Callable[[str, Dict[str, Any]], Tuple[str, str]]


def vocabulary_from_categories(categories, annotations):
  """Default VocabularyFn: the JSON's categories sorted by id."""
  vocabulary = vocabulary_lib.from_coco_categories(categories, annotations)
  return vocabulary, {c['id']: c['index'] for c in vocabulary}


def image_path_from_file_name(images_dir, image_record):
  """Default ImagePathFn: `images_dir/file_name` (the COCO layout)."""
  return (os.path.join(images_dir, image_record['file_name']),
          image_record['file_name'])


@dataclasses.dataclass
class _Config:
  images_dir: str
  masks_dir: str
  annotations: str
  id_to_index: Dict[Any, int]
  class_ids: List[int]  # Vocabulary id of each index (the original_id).
  semantic: bool
  image_path_fn: ImagePathFn


def _panoptic_objects(config: _Config, segment_ids: np.ndarray,
                      segments_info: Sequence[Dict[str, Any]],
                      png_path: str, where: str):
  """Maps panoptic ids to segment indices.

  Args:
    segment_ids: int32 [H, W] panoptic ids.
    segments_info: the annotation's segment records.

  Returns:
    (segment_map int32 [H, W], class_indices [K], original_ids [K],
     is_crowd [K], issues).
  """
  issues = []
  # Pixels are matched against the listed ids by binary search (a full
  # np.unique of the id map costs more than the rest of the conversion).
  listed_ids = np.unique(np.array(
      [int(segment.get('id', 0)) for segment in segments_info] + [0],
      np.int64))
  positions = np.searchsorted(listed_ids, segment_ids)
  positions = np.minimum(positions, len(listed_ids) - 1)
  is_listed = listed_ids[positions] == segment_ids
  present = np.zeros(len(listed_ids), bool)
  present[positions[is_listed]] = True
  position_of_id = {int(i): p for p, i in enumerate(listed_ids) if present[p]}
  # lookup[p] = output value of the p-th listed id (0 = void).
  lookup = np.zeros(len(listed_ids), np.int32)
  listed = set()
  class_indices, original_ids, is_crowd = [], [], []
  for s, segment in enumerate(segments_info):
    coco_json.require(segment, ('id', 'category_id'), config.annotations,
                      f'{where}.segments_info[{s}]')
    segment_id, category_id = int(segment['id']), segment['category_id']
    if segment_id in listed:
      raise tfrecord_writer.ConversionError(
          f'{config.annotations}: {where} lists segment id {segment_id} twice')
    listed.add(segment_id)
    if category_id not in config.id_to_index:
      issues.append(Issue(_DROP, 'unknown_category_id',
                          f'{config.annotations}: {where}.segments_info[{s}] '
                          f'has category_id {category_id}, not in '
                          '"categories"; segment dropped, pixels void'))
      continue
    if segment_id not in position_of_id or segment_id == 0:
      issues.append(Issue(_DROP, 'segment_absent_from_png',
                          f'{png_path}: segment id {segment_id} of {where} has '
                          'no pixel in the PNG; dropped'))
      continue
    class_index = config.id_to_index[category_id]
    crowd = int(bool(segment.get('iscrowd', 0)))
    if config.semantic and class_index in class_indices:
      lookup[position_of_id[segment_id]] = class_indices.index(class_index) + 1
      continue
    class_indices.append(class_index)
    original_ids.append(config.class_ids[class_index])
    is_crowd.append(0 if config.semantic else crowd)
    lookup[position_of_id[segment_id]] = len(class_indices)
  segment_map = np.where(is_listed, lookup[positions], 0)
  if not is_listed.all():
    unlisted = np.unique(segment_ids[~is_listed]).tolist()
    pixels = int((~is_listed).sum())
    issues.append(Issue(_REPAIR, 'png_segment_not_in_json',
                        f'{png_path}: segment ids {unlisted[:5]} are in the '
                        f'PNG but not in {where}.segments_info; {pixels} '
                        'pixels set to void', count=len(unlisted)))
  return segment_map, class_indices, original_ids, is_crowd, issues


def process_image(config: _Config, task) -> ImageResult:
  """Converts one (image record, annotation record or None) pair."""
  image_record, annotation = task
  if annotation is None:
    raise SkipImage('no_annotation_entry',
                    f'{config.annotations}: images[id={image_record["id"]}] '
                    f'({image_record["file_name"]}) has no entry in '
                    '"annotations" (no panoptic PNG names it)')
  where = f'annotations[image_id={image_record["id"]}]'
  image_path, file_name = config.image_path_fn(config.images_dir,
                                               image_record)
  image = image_io.load_image(image_path)
  png_path = os.path.join(config.masks_dir, annotation['file_name'])
  segment_ids = image_io.load_panoptic_png(png_path)
  image_io.check_same_size(segment_ids.shape, image, png_path)
  coco_json.check_image_size(image_record, image.height, image.width,
                             config.annotations)
  segment_map, class_indices, original_ids, is_crowd, issues = (
      _panoptic_objects(config, segment_ids, annotation['segments_info'],
                        png_path, where))
  objects = example_builder.objects_from_segment_map(
      segment_map, class_indices, original_ids, is_crowd)
  example = example_builder.build_example(
      image, str(image_record['id']), file_name, objects,
      segment_map=segment_map)
  notes = {'images_reencoded': 1} if image.reencoded_from else {}
  return ImageResult(example_builder.serialize(example), sorted(set(class_indices)),
                     len(objects), issues, notes)


def convert(images_dir: str, annotations: str, output_prefix: str,
            panoptic_masks_dir: Optional[str] = None, semantic: bool = False,
            converter_name: str = 'coco_panoptic',
            vocabulary_fn: VocabularyFn = vocabulary_from_categories,
            image_path_fn: ImagePathFn = image_path_from_file_name,
            **writer_flags) -> Dict[str, Any]:
  """Converts a COCO-panoptic-format dataset; returns the report dict.

  Args:
    images_dir: folder of the images named by `images[].file_name`.
    annotations: the panoptic JSON file.
    output_prefix: output path prefix (see tfrecord_writer).
    panoptic_masks_dir: folder of the PNGs; default `annotations` minus .json.
    **writer_flags: num_shards, num_workers, strict, show_progress,
      overwrite, max_skip_fraction of tfrecord_writer.write_sharded.
    semantic: merge segments by category (one object per class).
    converter_name: recorded in the report.
    vocabulary_fn: builds the vocabulary and the category id -> index map
      from the JSON's categories (default: categories sorted by id).
    image_path_fn: resolves an image record to its file (must be a picklable
      top-level function or partial for --num_workers > 0).
  """
  content = coco_json.load(annotations, ('images', 'annotations',
                                         'categories'))
  vocabulary, id_to_index = vocabulary_fn(content['categories'], annotations)
  images_by_id = coco_json.index_images(content['images'], annotations)
  if not content['annotations']:
    raise tfrecord_writer.ConversionError(f'{annotations}: "annotations" is '
                                          'empty')
  tasks, seen = [], set()
  for position, annotation in enumerate(content['annotations']):
    coco_json.require(annotation, ('image_id', 'file_name', 'segments_info'),
                      annotations, f'annotations[{position}]')
    image_id = annotation['image_id']
    if image_id in seen:
      raise tfrecord_writer.ConversionError(
          f'{annotations}: image_id {image_id} has two entries in '
          '"annotations"')
    seen.add(image_id)
    if image_id not in images_by_id:
      raise tfrecord_writer.ConversionError(
          f'{annotations}: annotations[{position}].image_id {image_id} is not '
          'in "images"')
    tasks.append((images_by_id[image_id], annotation))
  # Listed images without an annotation entry are counted as skipped.
  tasks.extend((record, None) for image_id, record in images_by_id.items()
               if image_id not in seen)
  tasks.sort(key=lambda task: coco_json.sort_key(task[0]['id']))
  if panoptic_masks_dir is None:
    panoptic_masks_dir = os.path.splitext(annotations)[0]
  config = _Config(images_dir, panoptic_masks_dir, annotations, id_to_index,
                   [int(c['id']) for c in vocabulary], semantic,
                   image_path_fn)
  return tfrecord_writer.write_sharded(
      output_prefix, tasks, functools.partial(process_image, config),
      vocabulary, converter_name=converter_name,
      vocabulary_metadata={
          'name': os.path.basename(output_prefix),
          'task': 'semantic' if semantic else 'panoptic',
          'source': os.path.basename(annotations)},
      **writer_flags)


def build_parser(description: str = __doc__):
  parser = cli.base_parser(
      description, annotations_help='COCO panoptic JSON file.')
  parser.add_argument(
      '--panoptic_masks_dir', default=None,
      help='Folder of the panoptic PNGs (default: the JSON path without '
      '".json").')
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  return cli.run_main(build_parser(), convert, argv)


if __name__ == '__main__':
  sys.exit(main())
