"""tools/fidelity_study.py without training: the verdict rule, the claim logic, the run configs.

The study itself trains 33 small models per suite seed (about an hour); its numbers are in
docs/results.md. Here every rule that turns numbers into verdicts is checked on hand-made numbers,
and every configuration is built and validated against the real config classes.
"""
import os

import numpy as np
import pytest

from tests import tool_modules


@pytest.fixture(scope='module')
def study():
  return tool_modules.load_tool('fidelity_study')


def _results(study, value_of, seeds=(0, 1, 2)):
  """Fake cached runs: every evaluation set of every config, metric values from `value_of`."""
  sets = ('synthetic_ade', 'synthetic_coco', 'synthetic_o365', 'synthetic_o365_boxfill',
          'synthetic_ade_panoptic', 'synthetic_voc', 'synthetic_voc_shuffled',
          'synthetic_voc_synonyms')
  return [{'config': c.name, 'seed': s,
           'metrics': {name: {m: value_of(c.name, name, s) for m in ('mIoU', 'PQ', 'mask_AP')}
                       for name in sets}}
          for c in study.CONFIGS for s in seeds]


def test_verdict_rule_is_twice_the_larger_std(study):
  # cotrain ADE: 50, 52, 54 (std 2); ade_only ADE: 40, 41, 42 (std 1): difference 11 > 4.
  def value_of(config, dataset, seed):
    if dataset == 'synthetic_ade':
      return {'cotrain': 50 + 2 * seed, 'ade_only': 40 + seed}.get(config, 45.0)
    return 30.0 + seed  # Every other arm: identical values, difference 0.
  claims = {c['number']: c for c in study.analyse(_results(study, value_of), [0, 1, 2])}
  ade = claims[1]['comparisons'][0]
  assert ade['better']['mean'] == pytest.approx(52.0)
  assert ade['better']['std'] == pytest.approx(np.std([50, 52, 54], ddof=1))
  assert ade['worse']['values'] == [40.0, 41.0, 42.0]
  assert ade['difference'] == pytest.approx(11.0)
  assert ade['threshold'] == pytest.approx(4.0)
  assert ade['verdict'] == 'reproduced'
  assert claims[1]['comparisons'][1]['verdict'] == 'not reproduced (within noise)'
  assert claims[1]['verdict'].startswith('partly: 1 of 3 reproduced; the gain is the largest')
  # Claim 5 compares cotrain (52) with no_merge (45): 7 > 2 x 2; the paper's MERGE (45) does
  # not beat it.
  assert [row['verdict'] for row in claims[5]['comparisons']] == [
      'reproduced', 'not reproduced (within noise)']
  assert claims[5]['verdict'] == '1 of 2 comparisons reproduced'
  # Claim 7: shared (52) vs specific (45) on ADE is reproduced, the rest equal.
  assert claims[7]['verdict'] == '1 of 4 comparisons reproduced'


def test_difference_inside_the_noise_is_not_reproduced(study):
  # 50 +- 5 against 45 +- 5: difference 5 < 10.
  def value_of(config, dataset, seed):
    return (45.0 if config == 'ade_only' else 50.0) + 5 * (seed - 1)
  claims = {c['number']: c for c in study.analyse(_results(study, value_of), [0, 1, 2])}
  assert claims[1]['comparisons'][0]['verdict'] == 'not reproduced (within noise)'
  assert claims[7]['verdict'].startswith('no difference beyond the noise')


def test_reversed_effect_is_reported(study):
  def value_of(config, dataset, seed):
    return (60.0 if config == 'specific_modules' else 50.0) + 0.1 * seed
  claims = {c['number']: c for c in study.analyse(_results(study, value_of), [0, 1, 2])}
  assert all(row['verdict'] == 'reversed' for row in claims[7]['comparisons'])
  assert claims[7]['verdict'].startswith('not reproduced: dataset-specific modules are better')


PAPER = "clipped_sum + hungarian (the paper's)"


@pytest.mark.parametrize('arm_values,expected', [
    # Better on ADE, equal on COCO: it wins.
    ({'smooth_union': {'synthetic_ade': 60.0}}, 'smooth_union'),
    # Better on ADE, worse on COCO: the paper's MERGE stays.
    ({'smooth_union': {'synthetic_ade': 60.0, 'synthetic_coco': 40.0}}, PAPER),
    # Within the noise everywhere: the paper's MERGE stays.
    ({}, PAPER),
    # Soft assignment is carried by two configurations: better semantic-only, equal co-trained.
    ({'ade_only': {'synthetic_ade': 60.0}}, 'soft_assignment + by_class'),
    # ... and it loses on co-trained COCO PQ: no change.
    ({'ade_only': {'synthetic_ade': 60.0}, 'cotrain': {'synthetic_coco': 40.0}}, PAPER),
    # Two winners: the one with more reproduced comparisons.
    ({'ade_only': {'synthetic_ade': 60.0}, 'cotrain': {'synthetic_ade': 60.0},
      'weighted_clipped_sum': {'synthetic_coco': 70.0}}, 'soft_assignment + by_class'),
    # Two winners with one each: the larger difference.
    ({'smooth_union': {'synthetic_ade': 60.0}, 'weighted_clipped_sum': {'synthetic_coco': 70.0}},
     'weighted_clipped_sum'),
])
def test_merge_choice_rule(study, arm_values, expected):
  def value_of(config, dataset, seed):
    return arm_values.get(config, {}).get(dataset, 50.0) + 0.5 * seed
  claims = {c['number']: c for c in study.analyse(_results(study, value_of), [0, 1, 2])}
  assert claims[6]['verdict'] == f'default: {expected}'


def test_report_and_plots_are_written(study, tmp_path):
  claims = study.analyse(_results(study, lambda c, d, s: 40.0 + s + len(c)), [0, 1, 2])
  paths = study.plot(claims, str(tmp_path))
  assert [os.path.basename(p) for p in paths] == [f'claim{i}.png' for i in range(1, 8)]
  assert all(os.path.getsize(p) > 1000 for p in paths)
  text = study.report_markdown(claims, 'python tools/fidelity_study.py', 600.0, 'a CPU', 0,
                               [0, 1, 2], 300, plot_prefix='plots/')
  assert text.count('#### Claim ') == 7
  assert '![claim 6](plots/claim6.png)' in text
  assert '10.0 min on a CPU' in text


def test_overview_has_every_configuration_with_mean_and_std(study):
  # Each configuration's value: 10 x its index + the seed (0, 1, 2): mean 10 i + 1, std 1.
  index = {c.name: i for i, c in enumerate(study.CONFIGS)}
  text = study.overview_markdown(_results(study, lambda c, d, s: 10.0 * index[c] + s), [0, 1, 2])
  rows = [line for line in text.splitlines() if line.startswith('| `')]
  assert len(rows) == len(study.CONFIGS)
  assert rows[2] == '| `coco_only` | ' + ' | '.join(['21.0 ± 1.0'] * 8) + ' |'


def test_every_configuration_builds_and_validates(study, tmp_path):
  vocabularies = study.prepare_vocabularies(str(tmp_path))
  built = {run.name: study.experiment_config(run, 1, 'records', vocabularies, 120)
           for run in study.CONFIGS}
  cotrain = built['cotrain'].task
  assert [d.name for d in cotrain.train_data.datasets] == list(study.TRAIN_SETS)
  assert cotrain.init_seed == 1 and cotrain.train_data.seed == 1
  assert built['cotrain'].trainer.train_steps == 120
  assert [d.name for d in built['ade_only'].task.train_data.datasets] == ['synthetic_ade']
  assert built['no_merge'].task.merge_operator == 'none'
  assert built['smooth_union'].task.merge_operator == 'smooth_union'
  assert (cotrain.merge_operator, cotrain.semantic_matching) == study.BASELINE_MERGE
  assert (built['coco_only'].task.merge_operator,
          built['coco_only'].task.semantic_matching) == study.BASELINE_MERGE
  for name in ('paper_merge', 'ade_only_paper_merge'):
    task = built[name].task
    assert (task.merge_operator, task.semantic_matching) == ('clipped_sum', 'hungarian')
  assert [d.name for d in built['ade_only_paper_merge'].task.train_data.datasets] == [
      'synthetic_ade']
  evals = {d.name: d for d in cotrain.validation_data.datasets}
  assert evals['synthetic_o365_boxfill'].instance_masks_from_boxes
  assert not evals['synthetic_o365'].instance_masks_from_boxes
  assert evals['synthetic_ade_panoptic'].task_type == 'panoptic'
  assert evals['synthetic_ade_panoptic'].input_path.startswith(
      'records/synthetic_ade_panoptic_val-')
  assert evals['synthetic_voc_synonyms'].vocabulary.endswith('synthetic_voc_synonyms.json')
  # The same VOC-like images, converted a second time with the synonym vocabulary.
  assert evals['synthetic_voc_synonyms'].input_path == 'records/synthetic_voc_synonyms_val-*-of-*'
  assert evals['synthetic_voc_shuffled'].class_embeddings.endswith('synthetic_voc.shuffled.npz')
  non_text = {d.name: d for d in built['non_text'].task.validation_data.datasets}
  assert all(d.class_embeddings.endswith('.npz') for d in non_text.values())
  specific = built['specific_modules'].task
  assert specific.model.dataset_specific.class_head
  assert {d.name: d.modules_dataset for d in specific.validation_data.datasets}[
      'synthetic_voc'] == 'synthetic_coco'


def test_non_text_vectors_are_shared_by_name(study, tmp_path):
  from official_dataseg.text import embeddings as embeddings_lib  # pylint: disable=g-import-not-at-top
  files = study.prepare_vocabularies(str(tmp_path))['non_text']
  vectors = {}
  for name in ('synthetic_ade', 'synthetic_coco', 'synthetic_o365', 'synthetic_voc'):
    vocabulary, path = files[name].split('|')
    names, embeddings = embeddings_lib.load_class_embeddings(path, vocabulary=vocabulary)
    for class_name, vector in zip(names, embeddings):
      if class_name in vectors:
        np.testing.assert_array_equal(vectors[class_name], vector)
      vectors[class_name] = vector
  # Different names: nearly orthogonal random unit vectors.
  assert abs(float(vectors['person'] @ vectors['car'])) < 0.3
  assert float(vectors['dog'] @ vectors['dog']) == pytest.approx(1.0, abs=1e-5)


def test_bad_flags_are_refused(study, tmp_path, capsys):
  for argv in (['--output_dir', str(tmp_path), '--seeds', 'a,b'],
               ['--output_dir', str(tmp_path), '--configs', 'cotrain,nonsense'],
               ['--output_dir', str(tmp_path), '--train_steps', '0']):
    with pytest.raises(SystemExit) as error:
      study.main(argv)
    assert error.value.code == 2
  assert "unknown --configs ['nonsense']" in capsys.readouterr().err


def test_cached_run_with_another_configuration_is_refused(study, tmp_path):
  import yaml  # pylint: disable=g-import-not-at-top
  vocabularies = study.prepare_vocabularies(str(tmp_path))
  config = study.experiment_config(study.CONFIG_BY_NAME['cotrain'], 0, 'records', vocabularies,
                                   120)
  path = str(tmp_path / 'config.yaml')
  with open(path, 'w') as f:
    yaml.safe_dump(config.as_dict(), f)
  study._check_cached_config(config, path)  # pylint: disable=protected-access
  paper = study.experiment_config(study.CONFIG_BY_NAME['paper_merge'], 0, 'records',
                                  vocabularies, 120)
  with pytest.raises(study.StaleRunError, match='merge_operator'):
    study._check_cached_config(paper, path)  # pylint: disable=protected-access
  with pytest.raises(study.StaleRunError, match='missing'):
    study._check_cached_config(config, str(tmp_path / 'absent.yaml'))  # pylint: disable=protected-access
