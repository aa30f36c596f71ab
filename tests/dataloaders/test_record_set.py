"""Record sets: only manifest-listed shards are read, and their vocabulary must be the config's."""
import json
import os

import pytest
import tensorflow as tf

from official_dataseg import common
from official_dataseg.configs import data as data_cfg
from official_dataseg.dataloaders import input_builder
from official_dataseg.dataloaders import record_set
from official_dataseg.dataloaders import repeat_factor
from official_dataseg.text import vocabulary as vocabulary_lib
from tests.dataloaders import tfexample_helpers


def _records_with_vocabulary(tmp_path, edit=None):
  """One shard of two placeholder records whose vocabulary file is synthetic_coco, edited."""
  content = vocabulary_lib.load_vocabulary('synthetic_coco').to_json_dict()
  if edit:
    edit(content['classes'])
  vocabulary_file = str(tmp_path / 'coco-vocabulary.json')
  with open(vocabulary_file, 'w') as f:
    json.dump(content, f)
  tfexample_helpers.write_record_set(str(tmp_path / 'coco'), [[b'a', b'b']], vocabulary_file)
  return data_cfg.DatasetConfig(name='synthetic_coco', task_type=common.TASK_PANOPTIC,
                                input_path=str(tmp_path / 'coco-*-of-*'),
                                vocabulary='synthetic_coco')


def test_same_vocabulary_passes(tmp_path):
  config = _records_with_vocabulary(tmp_path)
  assert input_builder.select_input_files(config) == str(tmp_path / 'coco-00000-of-00001.tfrecord')


def test_renamed_class_names_dataset_files_and_class(tmp_path):
  def rename(classes):
    classes[3]['name'] = 'kitten'  # id 17 is 'cat' in synthetic_coco.
  config = _records_with_vocabulary(tmp_path, rename)
  with pytest.raises(record_set.RecordSetError) as error:
    input_builder.select_input_files(config)
  message = str(error.value)
  assert '\n' not in message
  assert message.startswith("dataset 'synthetic_coco': records ")
  assert f"{tmp_path / 'coco-vocabulary.json'} (10 classes)" in message
  assert "DatasetConfig.vocabulary is 'synthetic_coco'" in message
  assert 'synthetic_coco.json, 10 classes' in message
  assert "class index 3: records (id 17, 'kitten'), config (id 17, 'cat')" in message


def test_missing_class_is_named(tmp_path):
  config = _records_with_vocabulary(tmp_path, lambda classes: classes.pop())
  with pytest.raises(record_set.RecordSetError,
                     match=r"\(9 classes\).*class index 9: records none, config \(id 199, "
                     r"'wall-other-merged'\)"):
    input_builder.select_input_files(config)


def test_changed_shard_and_missing_manifest_are_errors(tmp_path):
  config = _records_with_vocabulary(tmp_path)
  shard = str(tmp_path / 'coco-00000-of-00001.tfrecord')
  with open(shard, 'ab') as f:
    f.write(b'extra')
  with pytest.raises(record_set.RecordSetError, match='was changed after its conversion'):
    input_builder.select_input_files(config)
  os.remove(str(tmp_path / 'coco-manifest.json'))
  with pytest.raises(record_set.RecordSetError, match='coco-manifest.json does not exist'):
    input_builder.select_input_files(config)


def test_frequency_file_of_another_class_count_is_an_error(tmp_path):
  config = _records_with_vocabulary(tmp_path).replace(repeat_factor_threshold=0.1)
  with open(tmp_path / 'coco-category_frequency.json', 'w') as f:
    json.dump({'num_images': 2, 'image_count': [1, 2, 0]}, f)
  data_config = data_cfg.DataConfig(datasets=(config,), output_size=[32, 32],
                                    global_batch_size=1)
  with pytest.raises(record_set.RecordSetError,
                     match=r"coco-category_frequency.json counts 3 classes but vocabulary "
                     r"'synthetic_coco' has 10"):
    input_builder.build_train_datasets(data_config)


def test_out_of_range_class_in_repeat_factor_is_an_error():
  with pytest.raises(tf.errors.InvalidArgumentError, match='outside \\[0, number of classes'):
    repeat_factor.image_repeat_factor(tf.constant([0, 3]), tf.constant([1.0, 2.5, 1.5]))
