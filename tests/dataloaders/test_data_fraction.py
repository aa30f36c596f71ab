"""`DatasetConfig.data_fraction`: the first ceil(p * num_files) files in sorted order."""
import pytest
import tensorflow as tf

from official_dataseg import common
from official_dataseg.configs import data as data_cfg
from official_dataseg.dataloaders import input_builder


def _write_shards(directory, num_shards):
  # Shards named out of order on disk creation, to check the sort.
  for shard in reversed(range(num_shards)):
    with tf.io.TFRecordWriter(f'{directory}/o365-{shard:05d}-of-{num_shards:05d}') as writer:
      writer.write(b'x')


@pytest.mark.parametrize('fraction,expected_shards', [
    (0.1, 1), (0.25, 3), (0.5, 5), (1.0, 10), (0.01, 1)])
def test_first_fraction_of_sorted_files(tmp_path, fraction, expected_shards):
  _write_shards(tmp_path, 10)
  config = data_cfg.DatasetConfig(name='o365', task_type=common.TASK_INSTANCE,
                                  input_path=f'{tmp_path}/o365-*-of-*', data_fraction=fraction)
  selected = input_builder.select_input_files(config)
  if fraction == 1.0:
    assert selected == config.input_path
    return
  # ceil(0.25 * 10) = 3; ceil(0.01 * 10) = 1 (never empty).
  assert selected.split(',') == [f'{tmp_path}/o365-{i:05d}-of-00010'
                                 for i in range(expected_shards)]


def test_bad_fraction_and_missing_files_name_the_dataset(tmp_path):
  config = data_cfg.DatasetConfig(name='o365', input_path=f'{tmp_path}/none-*', data_fraction=0.0)
  with pytest.raises(ValueError, match=r"'o365': data_fraction must be in \(0, 1\]"):
    input_builder.select_input_files(config)
  with pytest.raises(ValueError, match="'o365': no file matches"):
    input_builder.select_input_files(config.replace(data_fraction=0.5))
