"""The registered experiments carry the paper's numbers (appendix H, Table 13), and the YAML files
under experiments/ are up to date with them."""
import os
import subprocess
import sys

import pytest

from official.core import exp_factory
from official_dataseg import registry_imports  # pylint: disable=unused-import

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# (batch, steps, learning rate, backbone type, ViT id) from the paper's appendix H.
PAPER = {
    'dataseg_r50': (384, 500000, 3e-5, 'resnet', None),
    'dataseg_vitdet_b': (256, 600000, 6e-5, 'vitdet', 'vit-b'),
    'dataseg_vitdet_l': (256, 540500, 4e-5, 'vitdet', 'vit-l'),
}
# name: (sampling weight, lr multiplier, scale min, scale max, (mu ce, focal, dice, proj),
#        (lambda ce, focal, dice, proj), repeat-factor threshold)
PAPER_DATASETS = {
    'ade20k_semantic': (1, 3, 0.5, 2.0, (1, 20, 5, 0), (1, 20, 5, 0), 0.0),
    'coco_panoptic': (4, 5, 0.1, 2.0, (1, 0, 1, 0), (1, 20, 5, 0), 0.0),
    'objects365': (4, 2, 0.1, 2.0, (1, 0, 0, 0.5), (1, 0, 0, 2), 0.01),
}


@pytest.mark.parametrize('name', sorted(PAPER))
def test_paper_settings(name):
  params = exp_factory.get_exp_config(name)
  batch, steps, learning_rate, backbone, vit_id = PAPER[name]
  assert params.task.train_data.global_batch_size == batch
  assert params.trainer.train_steps == steps
  schedule = params.trainer.optimizer_config.learning_rate.stepwise
  assert schedule.values == pytest.approx([learning_rate, learning_rate / 10, learning_rate / 100])
  assert schedule.boundaries == [int(0.9 * steps), int(0.95 * steps)]
  adamw = params.trainer.optimizer_config.optimizer.adamw
  assert (adamw.weight_decay_rate, adamw.global_clipnorm) == (0.05, 0.1)
  assert params.task.model.backbone.type == backbone
  if vit_id:
    assert params.task.model.backbone.vitdet.model_id == vit_id
  decoder = params.task.model.transformer_decoder
  assert (decoder.num_layers, decoder.hidden_size, decoder.num_heads, decoder.ffn_dim,
          decoder.num_queries) == (9, 256, 8, 2048, 100)
  assert params.task.train_data.output_size == [1024, 1024]
  datasets = {d.name: d for d in params.task.train_data.datasets}
  assert sorted(datasets) == sorted(PAPER_DATASETS)
  for dataset_name, expected in PAPER_DATASETS.items():
    d = datasets[dataset_name]
    w = d.loss
    got = (d.sampling_weight, d.learning_rate_multiplier, d.aug_scale_min, d.aug_scale_max,
           (w.matching_ce, w.matching_focal, w.matching_dice, w.matching_projection),
           (w.ce, w.focal, w.dice, w.projection), d.repeat_factor_threshold)
    assert got == expected, dataset_name
    assert w.background_weight == 0.05
  evaluated = [d.name for d in params.task.validation_data.datasets]
  for required in ('ade20k_semantic', 'coco_panoptic', 'ade20k_panoptic', 'objects365_instance',
                   'pascal_voc', 'pascal_context_59', 'pascal_context_459', 'coco_semantic',
                   'cityscapes_panoptic'):
    assert required in evaluated


@pytest.mark.slow
def test_experiment_yaml_files_are_up_to_date():
  result = subprocess.run([sys.executable, os.path.join(REPO, 'tools', 'write_experiment_yamls.py'),
                           '--check'], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr
