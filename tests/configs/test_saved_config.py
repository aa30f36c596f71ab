"""A saved params.yaml shows the ViT sizes that are built (`model_id` leaves no stale field)."""
import os

import pytest
import yaml

from official.core import exp_factory
from official.core import train_utils
from official.modeling import hyperparams
from official_dataseg import registry_imports  # pylint: disable=unused-import
from official_dataseg.configs import model as model_config


def _saved_vitdet(params, model_dir):
  train_utils.serialize_config(params, str(model_dir))
  with open(os.path.join(model_dir, 'params.yaml')) as f:
    saved = yaml.load(f, Loader=yaml.FullLoader)  # FullLoader: the file holds !!python/tuple.
  return saved['task']['model']['backbone']['vitdet']


@pytest.mark.parametrize('experiment,sizes', [
    ('dataseg_vitdet_l', (24, 1024, 16, [5, 11, 17, 23])),
    ('dataseg_vitdet_b', (12, 768, 12, [2, 5, 8, 11]))])
def test_params_yaml_shows_the_built_sizes(tmp_path, experiment, sizes):
  params = exp_factory.get_exp_config(experiment)
  saved = _saved_vitdet(params, tmp_path)
  assert (saved['num_layers'], saved['hidden_size'], saved['num_heads'],
          saved['global_attention_indices']) == sizes
  built = model_config.resolve_vit_sizes(params.task.model.backbone.vitdet)
  assert (built['num_layers'], built['hidden_size'], built['num_heads'],
          built['global_attention_indices']) == sizes


def test_overriding_model_id_alone_brings_the_preset_sizes(tmp_path):
  params = hyperparams.override_params_dict(
      exp_factory.get_exp_config('dataseg_vitdet_b'),
      'task.model.backbone.vitdet.model_id=vit-l', is_strict=True)
  saved = _saved_vitdet(params, tmp_path)
  assert (saved['num_layers'], saved['hidden_size'], saved['num_heads'],
          saved['drop_path_rate']) == (24, 1024, 16, 0.4)


def test_sizes_stated_with_model_id_win_and_stale_sizes_fail():
  params = hyperparams.override_params_dict(
      exp_factory.get_exp_config('dataseg_vitdet_b'),
      {'task': {'model': {'backbone': {'vitdet': {'model_id': '', 'num_layers': 2}}}}},
      is_strict=True)
  assert model_config.resolve_vit_sizes(params.task.model.backbone.vitdet)['num_layers'] == 2
  vitdet = exp_factory.get_exp_config('dataseg_vitdet_l').task.model.backbone.vitdet
  vitdet.num_layers = 12  # Set directly, not through an override: the preset no longer holds.
  with pytest.raises(ValueError, match="model_id='vit-l'"):
    model_config.resolve_vit_sizes(vitdet)
