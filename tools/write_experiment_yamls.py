r"""Writes experiments/<name>.yaml, a short override file, for every registered DaTaSeg experiment.

  python tools/write_experiment_yamls.py [--check]

The registered Python experiments (`official_dataseg/configs/dataseg.py`) are the single source of
truth; a file under `experiments/` states, as Model Garden's YAML files do, what an experiment is
in a few lines:
  - an ablation or ViTDet experiment: what it changes of its base experiment (`BASES`), so the file
    also turns the base into it (`--experiment=dataseg_r50 --config_file=<ablation>.yaml`);
  - an experiment without a base (`STATED`): its headline settings (backbone, batch, steps, lr).
Loading a file onto its own experiment changes nothing (tests/configs/test_experiment_files.py).
`experiments/builtin_data.yaml` (the built-in synthetic datasets, to run any paper experiment on a
CPU) is written by hand. `--check` exits with status 1 if a file is missing or differs.
"""
import argparse
import os
import sys
import textwrap
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from official_dataseg.utils import (  # pylint: disable=g-import-not-at-top,unused-import
    quiet_tensorflow)

import yaml  # pylint: disable=g-import-not-at-top

from official.core import exp_factory
from official.modeling import hyperparams
from official_dataseg.configs import dataseg as dataseg_config
from official_dataseg.utils import atomic_write
from official_dataseg.utils import experiment as experiment_lib

EXPERIMENTS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                               'experiments')
MAX_LINES = 40
MAX_WIDTH = 100

# experiment: the experiment whose changes it states.
BASES = {name: 'dataseg_r50' for name in dataseg_config.ABLATIONS}
BASES.update({
    'dataseg_vitdet_b': 'dataseg_r50',
    'dataseg_vitdet_l': 'dataseg_r50',
    'dataseg_vitdet_b_all_specific_modules': 'dataseg_vitdet_b',
    'dataseg_vitdet_l_all_specific_modules': 'dataseg_vitdet_l',
})
# Experiments without a base, or equal to it: the settings their file states ('*' = every item).
_PAPER_HEADLINE = (
    'runtime.distribution_strategy', 'runtime.mixed_precision_dtype',
    'task.init_checkpoint', 'task.model.backbone.type', 'task.model.backbone.resnet.model_id',
    'task.model.transformer_decoder.num_queries', 'task.train_data.global_batch_size',
    'task.train_data.datasets.*.name', 'task.train_data.datasets.*.input_path',
    'trainer.train_steps', 'trainer.optimizer_config.learning_rate.stepwise.boundaries',
    'trainer.optimizer_config.learning_rate.stepwise.values')
STATED = {
    'dataseg_r50': _PAPER_HEADLINE,
    'dataseg_demo': (
        'runtime.distribution_strategy', 'task.model.input_size',
        'task.model.backbone.resnet.model_id', 'task.model.pixel_decoder.num_filters',
        'task.model.transformer_decoder', 'task.train_data.global_batch_size',
        'task.train_data.datasets.*.name', 'task.train_data.datasets.*.input_path',
        'trainer.train_steps', 'trainer.optimizer_config.learning_rate.stepwise.values'),
    'dataseg_r50_o365_100pct': ('task.train_data.datasets.*.name',
                                'task.train_data.datasets.*.data_fraction'),
}
HEADER = """\
{title}
# Written by tools/write_experiment_yamls.py from the registered experiment (the source of truth,
# official_dataseg/configs/dataseg.py); {states}.
#   python train.py --experiment={name} --mode=train_and_eval \\
#       --config_file=experiments/{name}.yaml --model_dir=MODEL_DIR
"""


class _FlowListDumper(yaml.SafeDumper):
  """Lists of numbers in flow style ([1, 2]), lists of dicts as blocks of flow dicts."""


def _represent_list(dumper, data):
  return dumper.represent_sequence('tag:yaml.org,2002:seq', data,
                                   flow_style=not any(isinstance(v, dict) for v in data))


def _represent_dict(dumper, data):
  """Fields in config order; a short dict of scalars on one line."""
  flow = (all(not isinstance(v, (dict, list)) for v in data.values()) and
          len(', '.join(f'{k}: {v}' for k, v in data.items())) <= 64)
  return dumper.represent_mapping('tag:yaml.org,2002:map', data.items(), flow_style=flow)


_FlowListDumper.add_representer(list, _represent_list)
_FlowListDumper.add_representer(dict, _represent_dict)


def config_changes(base: hyperparams.Config, config: hyperparams.Config) -> Dict[str, Any]:
  """The overrides that turn `base` into `config`, as nested dicts.

  Lists of configs of equal length are overridden item by item (Model Garden's rule), so an item
  states its changed fields plus its `name`; a list of another length replaces the whole list, so
  its items state every field that differs from the item type's defaults.
  """
  changes = {}
  for key, value in config.as_dict().items():
    new = getattr(config, key)
    if key not in base.__dict__:
      changes[key] = value
      continue
    old = getattr(base, key)
    if isinstance(new, hyperparams.Config) and isinstance(old, hyperparams.Config):
      sub = config_changes(old, new)
      if sub:
        changes[key] = sub
    elif (isinstance(new, (list, tuple)) and new and isinstance(new[0], hyperparams.Config)):
      if old is not None and len(old) == len(new):
        items = [config_changes(o, n) for o, n in zip(old, new)]
        if any(items):
          changes[key] = [dict(name=n.name, **item) if hasattr(n, 'name') else item
                          for n, item in zip(new, items)]
      else:
        changes[key] = [config_changes(type(n)(), n) for n in new]
    elif _plain(old) != value:
      changes[key] = value
  return changes


def _plain(value):
  return value.as_dict() if isinstance(value, hyperparams.Config) else (
      list(value) if isinstance(value, tuple) else value)


def stated_settings(config_dict: Dict[str, Any], paths) -> Dict[str, Any]:
  """The values at dotted `paths` ('*' walks every item of a list), as nested dicts."""
  stated: Dict[str, Any] = {}
  for path in paths:
    _merge_into(stated, _pick(config_dict, path.split('.')))
  return stated


def _pick(value, parts: List[str]):
  if not parts:
    return value
  if parts[0] == '*':
    return [_pick(item, parts[1:]) for item in value]
  return {parts[0]: _pick(value[parts[0]], parts[1:])}


def _merge_into(target: Dict[str, Any], addition: Dict[str, Any]) -> None:
  for key, value in addition.items():
    if isinstance(value, dict) and isinstance(target.get(key), dict):
      _merge_into(target[key], value)
    elif isinstance(value, list) and isinstance(target.get(key), list):
      for item, extra in zip(target[key], value):
        _merge_into(item, extra)
    else:
      target[key] = value


def _description(name: str) -> str:
  if name in dataseg_config.ABLATIONS:
    return dataseg_config.ABLATIONS[name][1]
  factory = getattr(dataseg_config, name)
  return factory.__doc__.strip().splitlines()[0].rstrip('.')


def experiment_file(name: str) -> str:
  """The YAML text of experiments/<name>.yaml."""
  config = exp_factory.get_exp_config(name)
  if name in STATED:
    body = stated_settings(config.as_dict(), STATED[name])
    states = 'it states the settings that define it'
  else:
    body = config_changes(exp_factory.get_exp_config(BASES[name]), config)
    states = f'it states what this experiment changes of {BASES[name]}'
  body = {section: body[section] for section in ('runtime', 'task', 'trainer') if section in body}
  title = '\n'.join(textwrap.wrap(f'{name}: {_description(name)}.', width=MAX_WIDTH - 2,
                                  initial_indent='# ', subsequent_indent='#   '))
  text = HEADER.format(title=title, name=name, states=states) + yaml.dump(
      body, Dumper=_FlowListDumper, sort_keys=False, width=MAX_WIDTH - 14)
  if text.count('\n') > MAX_LINES:
    raise ValueError(f'{name}.yaml would have {text.count(chr(10))} lines (> {MAX_LINES}).')
  if max(len(line) for line in text.splitlines()) > MAX_WIDTH:
    raise ValueError(f'{name}.yaml would have a line over {MAX_WIDTH} characters.')
  return text


def expected_files() -> Dict[str, str]:
  """{file name: YAML text} of every registered experiment."""
  return {f'{name}.yaml': experiment_file(name)
          for name in experiment_lib.registered_experiments()}


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--check', action='store_true', help='Only compare; write nothing.')
  args = parser.parse_args(argv)
  stale = []
  for file_name, text in expected_files().items():
    path = os.path.join(EXPERIMENTS_DIR, file_name)
    current = open(path).read() if os.path.exists(path) else None
    if current == text:
      continue
    stale.append(file_name)
    if not args.check:
      with atomic_write.atomic_write(path) as f:
        f.write(text)
      print(f'wrote {path}')
  if args.check and stale:
    print(f'out of date: {stale}; run python tools/write_experiment_yamls.py', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
