"""The files under experiments/ are short overrides of the registered experiments.

The registered Python experiments are the source of truth. Each `experiments/<name>.yaml` loaded
onto `<name>` must give the registered config with exactly the file's values applied (the expected
config is computed here, independently of Model Garden's override code), and those values must be
the registered ones; an ablation's file must also turn its base experiment into the ablation.
"""
import copy
import glob
import os

import pytest
import yaml

from official.core import exp_factory
from official.modeling import hyperparams
from official_dataseg import registry_imports  # pylint: disable=unused-import
from official_dataseg.configs import data as data_config
from official_dataseg.utils import experiment as experiment_lib
from tests import tool_modules

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXPERIMENTS_DIR = os.path.join(REPO, 'experiments')
BUILTIN_DATA = 'builtin_data'
FILES = sorted(os.path.basename(p)[:-len('.yaml')]
               for p in glob.glob(os.path.join(EXPERIMENTS_DIR, '*.yaml')))
EXPERIMENT_FILES = [name for name in FILES if name != BUILTIN_DATA]
# A list of configs overridden with a list of another length is rebuilt from the item defaults.
ITEM_DEFAULTS = {'datasets': data_config.DatasetConfig().as_dict()}


def _path(name):
  return os.path.join(EXPERIMENTS_DIR, f'{name}.yaml')


def _read(name):
  with open(_path(name)) as f:
    return yaml.safe_load(f)


def _with_overrides(config: dict, overrides: dict) -> dict:
  """`config` with `overrides` applied: dicts merge, equal-length lists of dicts merge item by
  item, other values (and lists of another length, from item defaults) replace."""
  result = copy.deepcopy(config)
  for key, value in overrides.items():
    assert key in result, f'{key!r} is not a config field'
    if isinstance(value, dict):
      result[key] = _with_overrides(result[key], value)
    elif isinstance(value, list) and value and isinstance(value[0], dict):
      if len(value) == len(result[key]):
        result[key] = [_with_overrides(old, new) for old, new in zip(result[key], value)]
      else:
        result[key] = [_with_overrides(ITEM_DEFAULTS[key], new) for new in value]
    else:
      result[key] = value
  return result


def _lists(value):
  """Tuples as lists, recursively (a config keeps the sequence type it was given)."""
  if isinstance(value, dict):
    return {k: _lists(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_lists(v) for v in value]
  return value


def _registered(experiment) -> dict:
  return _lists(exp_factory.get_exp_config(experiment).as_dict())


def _load(experiment, file_name) -> dict:
  return _lists(hyperparams.override_params_dict(
      exp_factory.get_exp_config(experiment), _path(file_name), is_strict=True).as_dict())


def _load_tool():
  return tool_modules.load_tool('write_experiment_yamls')


def test_one_file_per_registered_experiment():
  assert EXPERIMENT_FILES == list(experiment_lib.registered_experiments())


@pytest.mark.parametrize('name', FILES)
def test_file_is_short(name):
  with open(_path(name)) as f:
    assert len(f.read().splitlines()) <= 40


@pytest.mark.parametrize('name', EXPERIMENT_FILES)
def test_file_on_its_experiment_applies_exactly_its_overrides(name):
  registered = _registered(name)
  overrides = _read(name)
  expected = _with_overrides(registered, overrides)
  assert _load(name, name) == expected
  # The values stated are the registered ones: the file restates, Python decides.
  assert expected == registered


@pytest.mark.parametrize('name', sorted(set(EXPERIMENT_FILES) & set(_load_tool().BASES)))
def test_file_turns_its_base_into_the_experiment(name):
  base = _load_tool().BASES[name]
  assert _load(base, name) == _registered(name)


@pytest.mark.parametrize('experiment', ['dataseg_r50', 'dataseg_vitdet_l'])
def test_builtin_data_file(experiment):
  registered = _registered(experiment)
  loaded = _load(experiment, BUILTIN_DATA)
  assert loaded == _with_overrides(registered, _read(BUILTIN_DATA))
  demo = _registered('dataseg_demo')
  # Evaluation is the demo's; training keeps the experiment's sampling and loss settings.
  assert loaded['task']['validation_data']['datasets'] == demo['task']['validation_data'][
      'datasets']
  for got, paper, builtin in zip(loaded['task']['train_data']['datasets'],
                                 registered['task']['train_data']['datasets'],
                                 demo['task']['train_data']['datasets']):
    assert (got['name'], got['input_path'], got['vocabulary']) == (
        builtin['name'], builtin['input_path'], builtin['vocabulary'])
    assert (got['sampling_weight'], got['loss']) == (paper['sampling_weight'], paper['loss'])


def test_files_are_what_the_tool_writes():
  for file_name, text in _load_tool().expected_files().items():
    with open(os.path.join(EXPERIMENTS_DIR, file_name)) as f:
      assert f.read() == text, f'{file_name}: run python tools/write_experiment_yamls.py'
