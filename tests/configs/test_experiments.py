"""The registered experiments carry the paper's numbers (appendix H, Table 13)."""
import pytest

from official.core import exp_factory
from official_dataseg import registry_imports  # pylint: disable=unused-import

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


def _datasets(config):
  return {d.name: d for d in config.task.train_data.datasets}


# Appendix Tables 7-12 (and the Table 2 baselines): what each ablation changes of dataseg_r50.
@pytest.mark.parametrize('name,weights', [
    ('dataseg_r50', (1, 4, 4)), ('dataseg_r50_sampling_1_2_2', (1, 2, 2)),
    ('dataseg_r50_sampling_1_1_1', (1, 1, 1))])
def test_table7_sampling_ratios(name, weights):
  datasets = _datasets(exp_factory.get_exp_config(name))
  assert tuple(datasets[n].sampling_weight
               for n in ('ade20k_semantic', 'coco_panoptic', 'objects365')) == weights


@pytest.mark.parametrize('percent', [10, 25, 50, 100])
def test_table8_o365_portion(percent):
  datasets = _datasets(exp_factory.get_exp_config(f'dataseg_r50_o365_{percent}pct'))
  assert datasets['objects365'].data_fraction == percent / 100
  assert datasets['ade20k_semantic'].data_fraction == datasets['coco_panoptic'].data_fraction == 1


@pytest.mark.parametrize('name,weights', [('dataseg_r50', (2.0, 0.5)),
                                          ('dataseg_r50_projection_5_1', (5.0, 1.0))])
def test_table9_projection_weights(name, weights):
  loss = _datasets(exp_factory.get_exp_config(name))['objects365'].loss
  assert (loss.projection, loss.matching_projection) == weights
  assert (loss.ce, loss.focal, loss.dice, loss.matching_ce) == (1, 0, 0, 1)


@pytest.mark.parametrize('name,queries,classification', [
    ('dataseg_r50', 0, False), ('dataseg_r50_queries_10', 10, False),
    ('dataseg_r50_queries_20', 20, False), ('dataseg_r50_queries_30', 30, False),
    ('dataseg_r50_specific_classification', 0, True),
    ('dataseg_r50_all_specific_modules', 10, True),
    ('dataseg_vitdet_b_all_specific_modules', 10, True),
    ('dataseg_vitdet_l_all_specific_modules', 10, True)])
def test_tables10_to_12_dataset_specific_modules(name, queries, classification):
  config = exp_factory.get_exp_config(name)
  specific = config.task.model.dataset_specific
  assert (specific.num_queries_per_dataset, specific.class_head, specific.background) == (
      queries, classification, classification)
  base = exp_factory.get_exp_config(name.split('_all_')[0] if '_all_' in name else 'dataseg_r50')
  assert config.task.model.backbone.as_dict() == base.task.model.backbone.as_dict()


@pytest.mark.parametrize('name,dataset', [('dataseg_r50_ade20k_only', 'ade20k_semantic'),
                                          ('dataseg_r50_coco_only', 'coco_panoptic'),
                                          ('dataseg_r50_o365_only', 'objects365')])
def test_single_dataset_baselines(name, dataset):
  config = exp_factory.get_exp_config(name)
  assert list(_datasets(config)) == [dataset]
  expected = PAPER_DATASETS[dataset]
  assert _datasets(config)[dataset].learning_rate_multiplier == expected[1]
  assert config.trainer.train_steps == PAPER['dataseg_r50'][1]
