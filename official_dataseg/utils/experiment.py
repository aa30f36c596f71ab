"""Experiment configs for the tools around training (export, predict, evaluation scripts)."""
from typing import Optional, Sequence

from absl import flags

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


def define_experiment_flags() -> None:
  """--experiment, --config_file, --params_override, as `train.py` takes them.

  Defined once per process, so scripts that share them (export_saved_model.py, predict.py) can be
  imported together (as the tests do).
  """
  if 'experiment' in flags.FLAGS:
    return
  flags.DEFINE_string('experiment', None, 'Registered experiment name (e.g. dataseg_demo).')
  flags.DEFINE_multi_string('config_file', [], 'YAML config files applied in order '
                            '(usually MODEL_DIR/params.yaml).')
  flags.DEFINE_string('params_override', '', 'Overrides: "a.b=1,c.d=x" or YAML.')
