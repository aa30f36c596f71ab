"""Dataset vocabularies: class lists in index order, as the converters write.

Every entry is {index, id, name, display_name, is_thing, synonyms}, the format
of `official_dataseg/text/vocabularies/*.json`. Index i is the contiguous
0-based label written to `image/object/class/label`; id is the dataset's own
category id (or label value).
"""

import re
from typing import Any, Dict, List, Sequence

import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg.text import vocabulary as text_vocabulary
from tfrecords_tools.tfrecord_writer import ConversionError

# PASCAL VOC 2012 segmentation classes by label value (0 = background).
VOC_CLASS_NAMES = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus',
    'car', 'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike',
    'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')


def make_entry(index: int, class_id: int, name: str, is_thing: bool,
               synonyms: Sequence[str] = ()) -> Dict[str, Any]:
  return {'index': index, 'id': int(class_id), 'name': name,
          'display_name': name, 'is_thing': bool(is_thing),
          'synonyms': list(synonyms)}


def from_coco_categories(categories: Sequence[Dict[str, Any]],
                         source_file: str) -> List[Dict[str, Any]]:
  """Vocabulary from a COCO-style `categories` list, sorted by id.

  `isthing` defaults to 1 (detection files have no such field).

  Raises:
    ConversionError: empty list, a category without id / name, duplicate id.
  """
  if not categories:
    raise ConversionError(f'{source_file}: "categories" is empty; expected '
                          'a list of {"id", "name"} records')
  seen = set()
  for position, category in enumerate(categories):
    for key in ('id', 'name'):
      if key not in category:
        raise ConversionError(f'{source_file}: categories[{position}] has no '
                              f'"{key}" field')
    if category['id'] in seen:
      raise ConversionError(f'{source_file}: category id {category["id"]} '
                            'appears twice in "categories"')
    seen.add(category['id'])
  ordered = sorted(categories, key=lambda c: c['id'])
  return [make_entry(i, c['id'], c['name'], c.get('isthing', 1))
          for i, c in enumerate(ordered)]


def from_names(names: Sequence[str], first_id: int = 0,
               is_thing: Sequence[bool] = ()) -> List[Dict[str, Any]]:
  """Vocabulary whose id i + first_id is the label value of names[i]."""
  return [make_entry(i, i + first_id, name,
                     is_thing[i] if is_thing else False)
          for i, name in enumerate(names)]


def load_json(path: str) -> List[Dict[str, Any]]:
  """Class entries of a vocabulary JSON, read and checked by the one vocabulary
  loader (`official_dataseg.text.vocabulary.load_vocabulary`); extra per-class
  fields (e.g. Cityscapes `train_id`) are kept.

  Raises:
    ConversionError: naming the file and what is wrong with it.
  """
  try:
    vocabulary = text_vocabulary.load_vocabulary(path)
  except (OSError, ValueError) as error:
    raise ConversionError(f'{path}: not a usable vocabulary file ({error})')
  return [c.to_json_dict() for c in vocabulary.classes]


def load_ade_object_info(path: str) -> List[Dict[str, Any]]:
  """Parses ADEChallengeData2016's objectInfo150 table (tab separated).

  Columns: Idx, Ratio, Train, Val, Name. Name lists WordNet synonyms
  separated by ', ' (objectInfo150.txt, e.g. 'building, edifice') or ';'
  (objectInfo150.csv); the entry's `name` is the terms joined by ', ' (as in
  the built-in ade20k_semantic vocabulary, whichever separator the file
  uses), `display_name` the first term and `synonyms` the others. Idx is the label value in the
  PNGs.
  """
  if not tf.io.gfile.exists(path):
    raise ConversionError(f'{path}: ADE class table not found; pass '
                          '--class_info or --vocabulary')
  with tf.io.gfile.GFile(path) as f:
    lines = [line.rstrip('\n') for line in f if line.strip()]
  header = [h.strip() for h in lines[0].split('\t')]
  if 'Idx' not in header or 'Name' not in header:
    raise ConversionError(f'{path}: header {header} lacks "Idx" and "Name"')
  idx_col, name_col = header.index('Idx'), header.index('Name')
  rows = []
  for line_number, line in enumerate(lines[1:], start=2):
    cells = line.split('\t')
    try:
      rows.append((int(cells[idx_col]), cells[name_col].strip()))
    except (IndexError, ValueError):
      raise ConversionError(f'{path}:{line_number}: expected an integer Idx '
                            f'and a Name, got {line!r}') from None
  rows.sort()
  entries = []
  for index, (label_value, names) in enumerate(rows):
    terms = [t.strip() for t in re.split(r'[;,]', names) if t.strip()]
    if not terms:
      raise ConversionError(f'{path}: Idx {label_value} has an empty Name')
    entries.append(make_entry(index, label_value, ', '.join(terms), False,
                              terms[1:]))
    entries[-1]['display_name'] = terms[0]
  return entries
