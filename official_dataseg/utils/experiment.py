"""Experiment configs for the tools around training (export, predict, evaluation scripts)."""
from typing import Optional, Sequence

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.core import train_utils

from official_dataseg import registry_imports  # pylint: disable=unused-import


def registered_experiments() -> Sequence[str]:
  """The DaTaSeg experiments (Model Garden's own registrations are left out)."""
  return sorted(name for name in exp_factory._REGISTERED_CONFIGS  # pylint: disable=protected-access
                if name.startswith('dataseg'))


def parse_experiment(experiment: str, config_files: Optional[Sequence[str]] = None,
                     params_override: str = '') -> cfg.ExperimentConfig:
  """The experiment config after YAML files and overrides, as `train.py` builds it.

  Raises:
    ValueError: unknown experiment name (the message lists the registered ones).
  """
  if experiment not in registered_experiments():
    raise ValueError(f'unknown experiment {experiment!r}; registered experiments: '
                     f'{", ".join(registered_experiments())}')
  options = train_utils.ParseConfigOptions(
      experiment=experiment, config_file=list(config_files or []),
      params_override=params_override or '')
  return train_utils.parse_configuration(options, lock_return=False, print_return=False)
