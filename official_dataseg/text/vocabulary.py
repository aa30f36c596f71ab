"""Class vocabularies: the category lists that DaTaSeg classifies against.

A vocabulary is one JSON file (format below) naming a dataset's classes in the
order of the model's class logits: entry `index` i is logit i, `id` is the
dataset's own category id (the value in its annotation files), `name` is the
raw name as the dataset publishes it and `display_name` the cleaned name that
is turned into text prompts, together with `synonyms`. The built-in
vocabularies live in `vocabularies/` beside this module; a path to any JSON
file of the same format works wherever a built-in name does.

JSON format:
  {"name": str, "dataset": str, "task": "semantic" | "panoptic" | "instance",
   "source": str (where the names come from), "cleaning": [str, ...],
   "classes": [{"index": int, "id": int, "name": str, "display_name": str,
                "is_thing": bool, "synonyms": [str, ...], ...}, ...]}
Extra per-class fields (e.g. Cityscapes `train_id`) are kept in `extra`.
"""

import dataclasses
import json
import os
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import numpy as np

from official_dataseg import common

VOCABULARY_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'vocabularies')

_TOP_LEVEL_KEYS = ('name', 'dataset', 'task', 'source', 'cleaning', 'classes')
_CLASS_KEYS = ('index', 'id', 'name', 'display_name', 'is_thing', 'synonyms')


@dataclasses.dataclass(frozen=True)
class VocabularyClass:
  """One class of a vocabulary.

  Attributes:
    index: 0-based position in the vocabulary (= class-logit index).
    id: the dataset's own category id (label value in its annotations).
    name: raw name as published by the dataset (e.g. 'wall-other-merged').
    display_name: cleaned name used for text prompts (e.g. 'wall').
    is_thing: True for countable objects, False for amorphous stuff.
    synonyms: further names of the same class, also used for prompts.
    extra: any further fields of the JSON entry (e.g. {'train_id': 11}).
  """
  index: int
  id: int
  name: str
  display_name: str
  is_thing: bool
  synonyms: Tuple[str, ...] = ()
  extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def prompt_names(self) -> Tuple[str, ...]:
    """The display name followed by the synonyms: every name to prompt with."""
    return (self.display_name,) + tuple(self.synonyms)

  def to_json_dict(self) -> Dict[str, Any]:
    entry = {
        'index': self.index,
        'id': self.id,
        'name': self.name,
        'display_name': self.display_name,
        'is_thing': self.is_thing,
        'synonyms': list(self.synonyms),
    }
    entry.update(self.extra)
    return entry


@dataclasses.dataclass(frozen=True)
class Vocabulary:
  """A dataset's ordered class list plus where it comes from.

  Attributes:
    name: vocabulary name (the JSON file's stem for built-ins).
    dataset: human-readable dataset description.
    task: one of `common.TASK_TYPES`.
    source: where the class names come from.
    classes: the classes, `classes[i].index == i`.
    cleaning: human-readable list of every raw-name -> display-name change.
  """
  name: str
  dataset: str
  task: str
  source: str
  classes: Tuple[VocabularyClass, ...]
  cleaning: Tuple[str, ...] = ()

  @property
  def num_classes(self) -> int:
    return len(self.classes)

  @property
  def display_names(self) -> List[str]:
    return [c.display_name for c in self.classes]

  @property
  def raw_names(self) -> List[str]:
    return [c.name for c in self.classes]

  @property
  def ids(self) -> np.ndarray:
    """Dataset category ids, int64 [C]."""
    return np.array([c.id for c in self.classes], dtype=np.int64)

  @property
  def is_thing(self) -> np.ndarray:
    """Thing flags, bool [C]."""
    return np.array([c.is_thing for c in self.classes], dtype=bool)

  def id_to_index(self) -> Dict[int, int]:
    """Maps dataset category id -> 0-based vocabulary index."""
    return {c.id: c.index for c in self.classes}

  def to_json_dict(self) -> Dict[str, Any]:
    return {
        'name': self.name,
        'dataset': self.dataset,
        'task': self.task,
        'source': self.source,
        'cleaning': list(self.cleaning),
        'classes': [c.to_json_dict() for c in self.classes],
    }

  @classmethod
  def from_json_dict(cls, data: Mapping[str, Any], origin: str = '<dict>') -> 'Vocabulary':
    """Builds and validates a vocabulary; `origin` names the file in errors."""
    if not isinstance(data, Mapping):
      raise ValueError(f'{origin}: expected a JSON object at top level, got {type(data).__name__}.')
    missing = [k for k in _TOP_LEVEL_KEYS if k not in data]
    if missing:
      raise ValueError(f'{origin}: missing top-level field(s) {missing}; expected {list(_TOP_LEVEL_KEYS)}.')
    if data['task'] not in common.TASK_TYPES:
      raise ValueError(f'{origin}: field "task" is {data["task"]!r}; expected one of {list(common.TASK_TYPES)}.')
    raw_classes = data['classes']
    if not isinstance(raw_classes, list) or not raw_classes:
      raise ValueError(f'{origin}: field "classes" must be a non-empty list.')
    classes = []
    for position, entry in enumerate(raw_classes):
      where = f'{origin}: classes[{position}]'
      missing = [k for k in _CLASS_KEYS if k not in entry]
      if missing:
        raise ValueError(f'{where}: missing field(s) {missing}; expected {list(_CLASS_KEYS)}.')
      if entry['index'] != position:
        raise ValueError(f'{where}: field "index" is {entry["index"]}; expected {position} (classes must be listed in index order).')
      if not isinstance(entry['id'], int) or isinstance(entry['id'], bool):
        raise ValueError(f'{where}: field "id" must be an integer, got {entry["id"]!r}.')
      if not isinstance(entry['is_thing'], bool):
        raise ValueError(f'{where}: field "is_thing" must be true or false, got {entry["is_thing"]!r}.')
      if not isinstance(entry['display_name'], str) or not entry['display_name'].strip():
        raise ValueError(f'{where}: field "display_name" must be a non-empty string.')
      if not isinstance(entry['synonyms'], list) or not all(isinstance(s, str) and s.strip() for s in entry['synonyms']):
        raise ValueError(f'{where}: field "synonyms" must be a list of non-empty strings.')
      classes.append(VocabularyClass(
          index=entry['index'], id=entry['id'], name=entry['name'],
          display_name=entry['display_name'], is_thing=entry['is_thing'],
          synonyms=tuple(entry['synonyms']),
          extra={k: v for k, v in entry.items() if k not in _CLASS_KEYS}))
    _check_unique(origin, 'id', [c.id for c in classes])
    # Identical display names would get identical text embeddings: the model
    # could not tell the classes apart.
    _check_unique(origin, 'display_name', [c.display_name for c in classes])
    return cls(name=data['name'], dataset=data['dataset'], task=data['task'],
               source=data['source'], classes=tuple(classes),
               cleaning=tuple(data['cleaning']))


def _check_unique(origin: str, field: str, values: Sequence[Any]) -> None:
  seen, duplicates = set(), []
  for value in values:
    if value in seen:
      duplicates.append(value)
    seen.add(value)
  if duplicates:
    raise ValueError(f'{origin}: field "{field}" must be unique across classes; duplicated: {duplicates}.')


def list_vocabularies() -> List[str]:
  """Names of the built-in vocabularies (the JSON files in `vocabularies/`)."""
  return sorted(f[:-len('.json')] for f in os.listdir(VOCABULARY_DIR) if f.endswith('.json'))


def vocabulary_path(name_or_path: str) -> str:
  """Resolves a built-in vocabulary name or a JSON path to a file path."""
  if name_or_path.endswith('.json') or os.sep in name_or_path:
    if not os.path.isfile(name_or_path):
      raise FileNotFoundError(f'Vocabulary file {name_or_path!r} does not exist.')
    return name_or_path
  path = os.path.join(VOCABULARY_DIR, name_or_path + '.json')
  if not os.path.isfile(path):
    raise ValueError(f'Unknown vocabulary {name_or_path!r}; built-in vocabularies are '
                     f'{list_vocabularies()} (or pass a path to a vocabulary .json file).')
  return path


def load_vocabulary(name_or_path: str) -> Vocabulary:
  """Loads a built-in vocabulary by name (e.g. 'coco_panoptic') or a JSON file.

  Args:
    name_or_path: a name from `list_vocabularies()` or a path to a `.json`
      file in the vocabulary format.

  Returns:
    The validated `Vocabulary`.

  Raises:
    ValueError: unknown name (the message lists the valid ones) or a file
      that does not follow the format (the message names file and field).
  """
  path = vocabulary_path(name_or_path)
  with open(path, encoding='utf-8') as f:
    try:
      data = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f'{path}: not valid JSON ({e}).') from e
  return Vocabulary.from_json_dict(data, origin=path)


def save_vocabulary(vocabulary: Vocabulary, path: str) -> None:
  """Writes `vocabulary` as JSON (one-space indent, like the shipped files)."""
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(vocabulary.to_json_dict(), f, indent=1, ensure_ascii=False)
    f.write('\n')
