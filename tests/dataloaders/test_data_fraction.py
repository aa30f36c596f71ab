"""`DatasetConfig.data_fraction`: the first ceil(p * num_files) files in sorted order."""
import pytest

from official_dataseg import common
from official_dataseg.configs import data as data_cfg
from official_dataseg.dataloaders import input_builder
from tests.dataloaders import tfexample_helpers


def _write_shards(directory, num_shards):
  tfexample_helpers.write_record_set(f'{directory}/o365', [[b'x']] * num_shards)


@pytest.mark.parametrize('fraction,expected_shards', [
    (0.1, 1), (0.25, 3), (0.5, 5), (1.0, 10), (0.01, 1)])
def test_first_fraction_of_sorted_files(tmp_path, fraction, expected_shards):
  _write_shards(tmp_path, 10)
  config = data_cfg.DatasetConfig(name='o365', task_type=common.TASK_INSTANCE,
                                  input_path=f'{tmp_path}/o365-*-of-*', data_fraction=fraction)
  selected = input_builder.select_input_files(config)
  # ceil(0.25 * 10) = 3; ceil(0.01 * 10) = 1 (never empty).
  assert selected.split(',') == [f'{tmp_path}/o365-{i:05d}-of-00010.tfrecord'
                                 for i in range(expected_shards)]


def test_bad_fraction_and_missing_files_name_the_dataset(tmp_path):
  config = data_cfg.DatasetConfig(name='o365', input_path=f'{tmp_path}/none-*', data_fraction=0.0)
  with pytest.raises(ValueError, match=r"'o365': data_fraction must be in \(0, 1\]"):
    input_builder.select_input_files(config)
  with pytest.raises(ValueError, match="'o365': no file matches input_path"):
    input_builder.select_input_files(config.replace(data_fraction=0.5))
