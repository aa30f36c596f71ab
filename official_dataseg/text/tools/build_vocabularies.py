r"""Builds the built-in vocabulary JSON files from the published class lists.

Run once from a source checkout (the shipped JSON files are its output):

  python -m official_dataseg.text.tools.build_vocabularies \
      --coco_categories=PATH/panoptic_coco_categories.json

`--coco_categories` is the COCO panoptic categories file of the panopticapi
release (the project's shared COCO sample has it). The other lists are in
`sources/` beside this script, one class per line as the datasets publish
them; Cityscapes and PASCAL VOC are short enough to be written below. The
synthetic_* vocabularies are not touched.

Cleaning (every change is listed in the file's `cleaning` field):
  * COCO: '-merged', '-other', '-stuff' suffixes dropped; two-part stuff names
    read naturally ('wall-brick' -> 'brick wall'); 'playingfield' split.
  * ADE20K: the first WordNet synonym of objectInfo150 is the display name and
    the rest are synonyms, except for a few rare first terms
    ('windowpane' -> 'window', 'ashcan' -> 'trash can', ...).
  * Objects365: lower case, surrounding spaces removed, misspellings of the
    published list corrected ('Bakset' -> 'basket', ...), 'a/b' split into
    display name 'a' and synonym 'b', 'Other X' -> 'x'.
  * PASCAL: 'pottedplant' -> 'potted plant', 'tvmonitor' -> 'tv monitor', ...
  * Every vocabulary: a synonym that is also a name of another class in the
    same vocabulary (ADE's toilet 'pot' vs the class 'pot') is dropped, since
    it would pull the two text embeddings together.
"""

import argparse
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

from official_dataseg import common
from official_dataseg.text import vocabulary as vocabulary_lib

SOURCES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sources')

# --- COCO -------------------------------------------------------------------
_COCO_SOURCE = ('COCO panoptic categories (panopticapi panoptic_coco_categories.json, '
                'COCO 2017 panoptic split: 80 things, 53 stuff)')
_COCO_SPECIAL = {
    'wall-brick': 'brick wall', 'wall-stone': 'stone wall', 'wall-tile': 'tile wall',
    'wall-wood': 'wood wall', 'floor-wood': 'wood floor', 'window-blind': 'window blind',
    'playingfield': 'playing field', 'hair drier': 'hair dryer',
}

# --- ADE20K -----------------------------------------------------------------
# objectInfo150 first terms that are rare words; the common word prompts better.
_ADE_DISPLAY_OVERRIDES = {
    'windowpane': 'window', 'television receiver': 'television', 'apparel': 'clothes',
    'ashcan': 'trash can', 'plaything': 'toy', 'hovel': 'hut', 'minibike': 'motorbike',
    'conveyer belt': 'conveyor belt', 'bannister': 'banister',
}

# --- Objects365 -------------------------------------------------------------
# Misspellings of the circulating Objects365 v2 list, and names that read
# badly as prompts. Keys are raw names without surrounding spaces.
_O365_CORRECTIONS = {
    'Bakset': 'basket', 'Mushroon': 'mushroom', 'Buttefly': 'butterfly',
    'Ballon': 'balloon', 'Hotair ballon': 'hot air balloon', 'Dinning Table': 'dining table',
    'Moniter/TV': 'monitor/tv', 'Extention Cord': 'extension cord', 'Campel': 'camel',
    'Noddles': 'noodles', 'Table Teniis paddle': 'table tennis paddle',
    'Tape Measur/ Ruler': 'tape measure/ruler', 'Billards': 'billiards',
    'Hamimelon': 'hami melon', 'Head Phone': 'headphone',
    'Cutting/chopping Board': 'cutting board/chopping board',
    'Trash bin Can': 'trash can/trash bin',
    # The sports-ball classes are named after the sport.
    'Soccer': 'soccer ball', 'Tennis': 'tennis ball', 'Table Tennis': 'table tennis ball',
}

# --- PASCAL -----------------------------------------------------------------
_PASCAL_CORRECTIONS = {
    'pottedplant': 'potted plant', 'tvmonitor': 'tv monitor', 'diningtable': 'dining table',
    'casette recorder': 'cassette recorder',
}
_PASCAL_VOC_NAMES = (
    'background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
    'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
    'train', 'tvmonitor')

# --- Cityscapes (labels.py of cityscapesScripts: train id, label id, name, hasInstances) ---
_CITYSCAPES = (
    (0, 7, 'road', False), (1, 8, 'sidewalk', False), (2, 11, 'building', False),
    (3, 12, 'wall', False), (4, 13, 'fence', False), (5, 17, 'pole', False),
    (6, 19, 'traffic light', False), (7, 20, 'traffic sign', False),
    (8, 21, 'vegetation', False), (9, 22, 'terrain', False), (10, 23, 'sky', False),
    (11, 24, 'person', True), (12, 25, 'rider', True), (13, 26, 'car', True),
    (14, 27, 'truck', True), (15, 28, 'bus', True), (16, 31, 'train', True),
    (17, 32, 'motorcycle', True), (18, 33, 'bicycle', True))


class _Draft:
  """Mutable class record used while building a vocabulary."""

  def __init__(self, class_id: int, name: str, display_name: str, is_thing: bool,
               synonyms: Sequence[str] = (), **extra):
    self.id = class_id
    self.name = name
    self.display_name = display_name
    self.is_thing = is_thing
    self.synonyms = [s for s in dict.fromkeys(synonyms) if s != display_name]
    self.extra = extra


def _read_tsv(filename: str) -> List[List[str]]:
  """Rows of a `sources/` file; the last column keeps its inner spaces."""
  rows = []
  with open(os.path.join(SOURCES_DIR, filename), encoding='utf-8') as f:
    for line in f:
      if line.startswith('#') or not line.strip():
        continue
      rows.append(line.rstrip('\n').split('\t'))
  return rows


def _split_alternatives(name: str, separator: str) -> Tuple[str, List[str]]:
  parts = [p.strip() for p in name.split(separator) if p.strip()]
  return parts[0], parts[1:]


def _drop_ambiguous_synonyms(drafts: List[_Draft], cleaning: List[str]) -> None:
  """Removes synonyms that name another class of the same vocabulary."""
  # Decided on the original names, so that the result is order independent.
  names_of = [set([d.display_name] + d.synonyms) for d in drafts]
  kept_synonyms = []
  for i, draft in enumerate(drafts):
    others = set().union(*(names for j, names in enumerate(names_of) if j != i))
    ambiguous = [s for s in draft.synonyms if s in others]
    for s in ambiguous:
      cleaning.append(f"dropped synonym '{s}' of '{draft.display_name}' (also names another class)")
    kept_synonyms.append([s for s in draft.synonyms if s not in ambiguous])
  for draft, synonyms in zip(drafts, kept_synonyms):
    draft.synonyms = synonyms


def _finish(name: str, dataset: str, task: str, source: str, drafts: List[_Draft],
            cleaning: List[str]) -> vocabulary_lib.Vocabulary:
  _drop_ambiguous_synonyms(drafts, cleaning)
  data = {
      'name': name, 'dataset': dataset, 'task': task, 'source': source, 'cleaning': cleaning,
      'classes': [dict(index=i, id=d.id, name=d.name, display_name=d.display_name,
                       is_thing=d.is_thing, synonyms=d.synonyms, **d.extra)
                  for i, d in enumerate(drafts)],
  }
  # Validates (unique ids and display names) exactly as loading will.
  return vocabulary_lib.Vocabulary.from_json_dict(data, origin=name)


def _coco_display_name(raw: str) -> str:
  if raw in _COCO_SPECIAL:
    return _COCO_SPECIAL[raw]
  name = raw
  for suffix in ('-merged', '-other', '-stuff'):
    if name.endswith(suffix):
      name = name[:-len(suffix)]
  return name


def _coco_drafts(categories: Sequence[Dict], cleaning: List[str], things_only: bool) -> List[_Draft]:
  drafts = []
  for category in categories:
    if things_only and not category['isthing']:
      continue
    display = _coco_display_name(category['name'])
    if display != category['name']:
      cleaning.append(f"{category['name']} -> {display}")
    drafts.append(_Draft(category['id'], category['name'], display, bool(category['isthing'])))
  return drafts


def build_coco(categories: Sequence[Dict]) -> List[vocabulary_lib.Vocabulary]:
  """coco_panoptic (133), coco_semantic (133) and coco_instance (80)."""
  if len(categories) != 133:
    raise ValueError(f'COCO panoptic categories: expected 133 entries, got {len(categories)}.')
  vocabularies = []
  for name, dataset, task, things_only in (
      ('coco_panoptic', 'COCO panoptic 2017 (133 classes)', common.TASK_PANOPTIC, False),
      ('coco_semantic', 'COCO 2017 panoptic classes read as semantic segmentation (133 classes)',
       common.TASK_SEMANTIC, False),
      ('coco_instance', 'COCO instance segmentation 2017 (80 thing classes)', common.TASK_INSTANCE, True)):
    cleaning = []
    drafts = _coco_drafts(categories, cleaning, things_only)
    vocabularies.append(_finish(name, dataset, task, _COCO_SOURCE, drafts, cleaning))
  return vocabularies


def build_ade20k() -> List[vocabulary_lib.Vocabulary]:
  """ade20k_semantic and ade20k_panoptic (150 classes, 100 things)."""
  rows = _read_tsv('ade20k_150.tsv')
  source = ('ADE20K SceneParsing objectInfo150 names (ADEChallengeData2016, label values 1..150, '
            '0 = other/ignored); thing/stuff split of the ADE20K panoptic benchmark as in Mask2Former')
  vocabularies = []
  for name, dataset, task in (
      ('ade20k_semantic', 'ADE20K SceneParsing, 150 classes', common.TASK_SEMANTIC),
      ('ade20k_panoptic', 'ADE20K panoptic, 150 classes (100 things, 50 stuff)', common.TASK_PANOPTIC)):
    cleaning, drafts = [], []
    for label, is_thing, raw in rows:
      first, rest = _split_alternatives(raw, ',')
      display = _ADE_DISPLAY_OVERRIDES.get(first, first)
      synonyms = [first] + rest if display != first else rest
      if display != first:
        cleaning.append(f'{raw} -> {display}')
      drafts.append(_Draft(int(label), raw, display, is_thing == '1', synonyms))
    vocabularies.append(_finish(name, dataset, task, source, drafts, cleaning))
  return vocabularies


def build_objects365() -> vocabulary_lib.Vocabulary:
  """objects365 (365 classes, all things)."""
  cleaning, drafts = [], []
  for class_id, raw in _read_tsv('objects365_v2.tsv'):
    name = raw.strip()
    if name in _O365_CORRECTIONS:
      name = _O365_CORRECTIONS[name]
    elif name.startswith('Other '):
      name = name[len('Other '):]
    name = name.lower()
    display, synonyms = _split_alternatives(name, '/')
    if display != raw.strip().lower() or synonyms:
      cleaning.append(f'{raw.strip()} -> {display}' + (f' (synonyms {synonyms})' if synonyms else ''))
    drafts.append(_Draft(int(class_id), raw, display, True, synonyms))
  source = ('Objects365 v2 category list (ids 1..365 of the v2 annotation files), '
            'lower-cased with misspellings corrected (see cleaning)')
  return _finish('objects365', 'Objects365 v2 (365 classes, boxes)', common.TASK_INSTANCE, source,
                 drafts, cleaning)


def _pascal_display(raw: str, cleaning: List[str]) -> str:
  display = _PASCAL_CORRECTIONS.get(raw, raw)
  if display != raw:
    cleaning.append(f'{raw} -> {display}')
  return display


def build_pascal() -> List[vocabulary_lib.Vocabulary]:
  """pascal_voc (21), pascal_context_59 and pascal_context_459."""
  vocabularies = []
  cleaning = []
  drafts = [_Draft(i, raw, _pascal_display(raw, cleaning), raw != 'background',
                   ['airplane'] if raw == 'aeroplane' else [])
            for i, raw in enumerate(_PASCAL_VOC_NAMES)]
  cleaning.append("aeroplane: added synonym 'airplane'")
  vocabularies.append(_finish(
      'pascal_voc', 'PASCAL VOC 2012 segmentation, 21 classes (0 = background, 255 = ignore)',
      common.TASK_SEMANTIC, 'PASCAL VOC 2012 class list (VOCdevkit)', drafts, cleaning))

  # PASCAL-Context has no official thing/stuff split: is_thing is False for all.
  cleaning = []
  drafts = [_Draft(int(label), raw, _pascal_display(raw, cleaning), False, context_459_id=int(id459))
            for label, id459, raw in _read_tsv('pascal_context_59.tsv')]
  vocabularies.append(_finish(
      'pascal_context_59', 'PASCAL-Context 59 classes (label values 1..59, 0 = background, ignored)',
      common.TASK_SEMANTIC,
      'PASCAL-Context 59-class benchmark split (Mottaghi et al. 2014); context_459_id = label in the full list',
      drafts, cleaning))

  cleaning = []
  drafts = [_Draft(int(label), raw, _pascal_display(raw, cleaning), False)
            for label, raw in _read_tsv('pascal_context_459.tsv')]
  vocabularies.append(_finish(
      'pascal_context_459', 'PASCAL-Context full 459 classes (label values 1..459, 0 = unlabeled)',
      common.TASK_SEMANTIC, 'PASCAL-Context labels.txt (Mottaghi et al. 2014)', drafts, cleaning))
  return vocabularies


def build_cityscapes() -> vocabulary_lib.Vocabulary:
  """cityscapes_panoptic: the 19 train ids (8 things)."""
  drafts = [_Draft(label_id, name, name, is_thing, train_id=train_id)
            for train_id, label_id, name, is_thing in _CITYSCAPES]
  return _finish(
      'cityscapes_panoptic', 'Cityscapes panoptic, 19 train-id classes (8 things, 11 stuff)',
      common.TASK_PANOPTIC,
      'cityscapesScripts helpers/labels.py: id = label id, train_id = train id, is_thing = hasInstances',
      drafts, [])


def build_all(coco_categories: Sequence[Dict]) -> List[vocabulary_lib.Vocabulary]:
  return (build_coco(coco_categories) + build_ade20k() + [build_objects365()] + build_pascal()
          + [build_cityscapes()])


def main(argv: Optional[Sequence[str]] = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--coco_categories', required=True,
                      help='panoptic_coco_categories.json of the COCO panoptic release.')
  parser.add_argument('--output_dir', default=vocabulary_lib.VOCABULARY_DIR)
  args = parser.parse_args(argv)
  with open(args.coco_categories, encoding='utf-8') as f:
    categories = json.load(f)
  for vocabulary in build_all(categories):
    path = os.path.join(args.output_dir, vocabulary.name + '.json')
    vocabulary_lib.save_vocabulary(vocabulary, path)
    print(f'{path}: {vocabulary.num_classes} classes, {int(vocabulary.is_thing.sum())} things')


if __name__ == '__main__':
  main()
