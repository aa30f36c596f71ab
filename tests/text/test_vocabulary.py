"""Tests of the built-in vocabularies against published lists and hand checks."""

import json
import os
import pathlib

import numpy as np
import pytest

from official_dataseg import common
from official_dataseg.text import vocabulary as vocabulary_lib

_SHARED_DATA = pathlib.Path(__file__).resolve().parents[2].parent / 'shared' / 'data'
_COCO_CATEGORIES = _SHARED_DATA / 'coco_panoptic_sample' / 'panoptic_coco_categories.json'

# name: (number of classes, number of things, task)
_EXPECTED = {
    'coco_panoptic': (133, 80, common.TASK_PANOPTIC),
    'coco_semantic': (133, 80, common.TASK_SEMANTIC),
    'coco_instance': (80, 80, common.TASK_INSTANCE),
    'ade20k_semantic': (150, 100, common.TASK_SEMANTIC),
    'ade20k_panoptic': (150, 100, common.TASK_PANOPTIC),
    'objects365': (365, 365, common.TASK_INSTANCE),
    'pascal_voc': (21, 20, common.TASK_SEMANTIC),
    'pascal_context_59': (59, 0, common.TASK_SEMANTIC),
    'pascal_context_459': (459, 0, common.TASK_SEMANTIC),
    'cityscapes_panoptic': (19, 8, common.TASK_PANOPTIC),
    'synthetic_ade': (10, 5, common.TASK_SEMANTIC),
    'synthetic_coco': (10, 6, common.TASK_PANOPTIC),
    'synthetic_o365': (8, 8, common.TASK_INSTANCE),
    'synthetic_voc': (9, 8, common.TASK_SEMANTIC),
}


def _coco_categories():
  if not _COCO_CATEGORIES.is_file():
    pytest.skip(f'shared COCO sample not found at {_COCO_CATEGORIES}')
  with open(_COCO_CATEGORIES) as f:
    return json.load(f)


def test_list_vocabularies_is_exactly_the_documented_set():
  assert vocabulary_lib.list_vocabularies() == sorted(_EXPECTED)


@pytest.mark.parametrize('name', sorted(_EXPECTED))
def test_counts_task_and_invariants(name):
  num_classes, num_things, task = _EXPECTED[name]
  vocabulary = vocabulary_lib.load_vocabulary(name)
  assert vocabulary.name == name
  assert vocabulary.num_classes == num_classes
  assert int(vocabulary.is_thing.sum()) == num_things
  assert vocabulary.task == task
  assert vocabulary.source
  assert [c.index for c in vocabulary.classes] == list(range(num_classes))
  for cls in vocabulary.classes:
    for text in cls.prompt_names:
      assert text == text.strip() and text, (name, cls)


def test_synthetic_vocabularies_keep_their_class_lists():
  # The data generator and the demo depend on these exact lists.
  expected = {
      'synthetic_ade': ['wall', 'sky', 'grass', 'road', 'water', 'person', 'car', 'dog', 'chair', 'bird'],
      'synthetic_coco': ['person', 'bicycle', 'car', 'cat', 'dog', 'bottle', 'road', 'sky-other-merged',
                         'grass-merged', 'wall-other-merged'],
      'synthetic_o365': ['Person', 'Car', 'Dog', 'Cat', 'Bird', 'Bottle', 'Chair', 'Bicycle'],
      'synthetic_voc': ['background', 'bicycle', 'bird', 'bottle', 'car', 'cat', 'chair', 'dog', 'person'],
  }
  for name, raw_names in expected.items():
    assert vocabulary_lib.load_vocabulary(name).raw_names == raw_names
  assert vocabulary_lib.load_vocabulary('synthetic_coco').ids.tolist() == [1, 2, 3, 17, 18, 44, 149, 187, 193, 199]


def test_coco_panoptic_matches_the_real_categories_file():
  categories = _coco_categories()
  vocabulary = vocabulary_lib.load_vocabulary('coco_panoptic')
  assert vocabulary.ids.tolist() == [c['id'] for c in categories]
  assert vocabulary.raw_names == [c['name'] for c in categories]
  assert vocabulary.is_thing.tolist() == [bool(c['isthing']) for c in categories]
  semantic = vocabulary_lib.load_vocabulary('coco_semantic')
  assert semantic.raw_names == vocabulary.raw_names and semantic.display_names == vocabulary.display_names


def test_coco_instance_is_the_80_things_of_the_real_file():
  things = [c for c in _coco_categories() if c['isthing']]
  vocabulary = vocabulary_lib.load_vocabulary('coco_instance')
  assert vocabulary.ids.tolist() == [c['id'] for c in things]
  assert vocabulary.raw_names == [c['name'] for c in things]


def test_coco_display_names_are_cleaned():
  vocabulary = vocabulary_lib.load_vocabulary('coco_panoptic')
  display = dict(zip(vocabulary.raw_names, vocabulary.display_names))
  assert display['tree-merged'] == 'tree'
  assert display['wall-other-merged'] == 'wall'
  assert display['sky-other-merged'] == 'sky'
  assert display['door-stuff'] == 'door'
  assert display['wall-brick'] == 'brick wall'
  assert display['person'] == 'person'
  for name in vocabulary.display_names:
    assert not any(s in name for s in ('-merged', '-other', '-stuff')), name
  assert 'tree-merged -> tree' in vocabulary.cleaning


def test_ade20k_names_ids_and_thing_split():
  semantic = vocabulary_lib.load_vocabulary('ade20k_semantic')
  panoptic = vocabulary_lib.load_vocabulary('ade20k_panoptic')
  assert semantic.ids.tolist() == list(range(1, 151))
  assert semantic.raw_names == panoptic.raw_names
  assert semantic.raw_names[0] == 'wall' and semantic.raw_names[149] == 'flag'
  assert semantic.raw_names[12] == 'person, individual, someone, somebody, mortal, soul'
  by_display = {c.display_name: c for c in panoptic.classes}
  assert by_display['window'].name == 'windowpane, window'
  assert 'windowpane' in by_display['window'].synonyms
  assert by_display['person'].synonyms == ('individual', 'someone', 'somebody', 'mortal', 'soul')
  # 'pot' and 'stool' are classes of their own, so not synonyms of toilet.
  assert by_display['toilet'].synonyms == ('can', 'commode', 'crapper', 'potty', 'throne')
  for stuff in ('wall', 'sky', 'floor', 'road', 'grass', 'water', 'sea', 'river'):
    assert not by_display[stuff].is_thing, stuff
  for thing in ('person', 'car', 'chair', 'bed', 'bottle', 'clock', 'flag'):
    assert by_display[thing].is_thing, thing


def test_objects365_corrections_are_applied_and_listed():
  vocabulary = vocabulary_lib.load_vocabulary('objects365')
  assert vocabulary.ids.tolist() == list(range(1, 366))
  by_id = {c.id: c for c in vocabulary.classes}
  assert (by_id[1].name, by_id[1].display_name) == ('Person', 'person')
  assert (by_id[53].name, by_id[53].display_name) == ('Bakset', 'basket')
  assert (by_id[292].name, by_id[292].display_name) == ('Mushroon', 'mushroom')
  assert (by_id[322].name, by_id[322].display_name) == ('Buttefly', 'butterfly')
  assert (by_id[38].display_name, by_id[38].synonyms) == ('monitor', ('tv',))
  assert (by_id[300].display_name, by_id[300].synonyms) == ('tape measure', ('ruler',))
  for cls in vocabulary.classes:
    assert '/' not in cls.display_name and cls.display_name == cls.display_name.lower()
    if cls.display_name != cls.name.strip().lower():
      assert any(line.startswith(cls.name.strip() + ' -> ') for line in vocabulary.cleaning), cls


def test_pascal_vocabularies():
  voc = vocabulary_lib.load_vocabulary('pascal_voc')
  assert voc.ids.tolist() == list(range(21))
  assert voc.display_names[0] == 'background' and not voc.classes[0].is_thing
  assert voc.display_names[11] == 'dining table' and voc.display_names[20] == 'tv monitor'
  full = vocabulary_lib.load_vocabulary('pascal_context_459')
  assert full.ids.tolist() == list(range(1, 460))
  assert full.raw_names == sorted(full.raw_names)  # labels.txt is alphabetical.
  assert (full.raw_names[0], full.raw_names[-1]) == ('accordion', 'wool')
  context59 = vocabulary_lib.load_vocabulary('pascal_context_59')
  assert context59.ids.tolist() == list(range(1, 60))
  # Each of the 59 classes points at the class of the same name in the full list.
  full_by_id = {c.id: c.name for c in full.classes}
  for cls in context59.classes:
    assert full_by_id[cls.extra['context_459_id']] == cls.name
  assert [c.extra['context_459_id'] for c in context59.classes][:5] == [2, 9, 18, 19, 22]


def test_cityscapes_matches_cityscapesscripts():
  labels = pytest.importorskip('cityscapesscripts.helpers.labels')
  train_labels = sorted((l for l in labels.labels if 0 <= l.trainId < 255), key=lambda l: l.trainId)
  vocabulary = vocabulary_lib.load_vocabulary('cityscapes_panoptic')
  assert [c.extra['train_id'] for c in vocabulary.classes] == [l.trainId for l in train_labels]
  assert vocabulary.ids.tolist() == [l.id for l in train_labels]
  assert vocabulary.raw_names == [l.name for l in train_labels]
  assert vocabulary.is_thing.tolist() == [l.hasInstances for l in train_labels]


def test_unknown_name_lists_valid_ones():
  with pytest.raises(ValueError, match='Unknown vocabulary .*coco_panoptic'):
    vocabulary_lib.load_vocabulary('coco_panoptik')


def _write(tmp_path, data):
  path = os.path.join(tmp_path, 'vocab.json')
  with open(path, 'w') as f:
    json.dump(data, f)
  return path


def _minimal():
  return {'name': 'mini', 'dataset': 'd', 'task': 'semantic', 'source': 's', 'cleaning': [],
          'classes': [{'index': 0, 'id': 1, 'name': 'a', 'display_name': 'a', 'is_thing': False, 'synonyms': []},
                      {'index': 1, 'id': 2, 'name': 'b', 'display_name': 'b', 'is_thing': True, 'synonyms': ['bee']}]}


def test_bad_files_name_file_and_field(tmp_path):
  data = _minimal()
  del data['classes'][1]['display_name']
  with pytest.raises(ValueError, match=r'vocab\.json: classes\[1\]: missing field.*display_name'):
    vocabulary_lib.load_vocabulary(_write(tmp_path, data))
  data = _minimal()
  data['classes'][1]['display_name'] = 'a'
  with pytest.raises(ValueError, match='"display_name" must be unique.*duplicated'):
    vocabulary_lib.load_vocabulary(_write(tmp_path, data))
  data = _minimal()
  data['task'] = 'detection'
  with pytest.raises(ValueError, match='"task" is .detection.; expected one of'):
    vocabulary_lib.load_vocabulary(_write(tmp_path, data))
  data = _minimal()
  data['classes'][1]['index'] = 5
  with pytest.raises(ValueError, match='"index" is 5; expected 1'):
    vocabulary_lib.load_vocabulary(_write(tmp_path, data))
  with pytest.raises(FileNotFoundError, match='does not exist'):
    vocabulary_lib.load_vocabulary(os.path.join(tmp_path, 'missing.json'))


def test_save_load_round_trip_and_extra_fields(tmp_path):
  data = _minimal()
  data['classes'][0]['train_id'] = 7
  vocabulary = vocabulary_lib.load_vocabulary(_write(tmp_path, data))
  assert vocabulary.classes[0].extra == {'train_id': 7}
  assert vocabulary.classes[1].prompt_names == ('b', 'bee')
  assert vocabulary.id_to_index() == {1: 0, 2: 1}
  path = os.path.join(tmp_path, 'again.json')
  vocabulary_lib.save_vocabulary(vocabulary, path)
  assert vocabulary_lib.load_vocabulary(path) == vocabulary
  np.testing.assert_array_equal(vocabulary.is_thing, [False, True])
