"""`task.merge_operator`, `task.semantic_matching` and `task.class_cost_type` reach every criterion."""
import pytest

from official.core import exp_factory

from official_dataseg import registry_imports  # pylint: disable=unused-import
from official_dataseg.losses import class_losses
from official_dataseg.losses import criterion as criterion_lib
from official_dataseg.losses import merge
from official_dataseg.tasks import dataseg_task


def _task(**overrides):
  params = exp_factory.get_exp_config('dataseg_demo')
  params.override({'task': overrides}, is_strict=True)
  return dataseg_task.DataSegTask(params.task)


def test_defaults_are_the_fidelity_studys_choice():
  # docs/results.md, claim 6: soft assignment with pairing by class, not the paper's clipped sum
  # with Hungarian pairing.
  criteria = _task()._criteria  # pylint: disable=protected-access
  assert criteria
  for criterion in criteria:
    assert criterion.merge_operator == merge.MERGE_SOFT_ASSIGNMENT
    assert criterion._semantic_matching == criterion_lib.SEMANTIC_MATCHING_BY_CLASS  # pylint: disable=protected-access
    assert criterion.class_cost_type == class_losses.CLASS_COST_CROSS_ENTROPY


def test_dynamic_losses_and_host_matching_only_where_xla_does_not_compile_the_step():
  for criterion in _task()._criteria:  # pylint: disable=protected-access
    assert criterion._gather_matched_pairs and criterion._host_matching  # pylint: disable=protected-access
  for criterion in _task(jit_compile_train_step=True)._criteria:  # pylint: disable=protected-access
    assert not criterion._gather_matched_pairs and not criterion._host_matching  # pylint: disable=protected-access
  for criterion in _task(host_matching=False)._criteria:  # pylint: disable=protected-access
    assert criterion._gather_matched_pairs and not criterion._host_matching  # pylint: disable=protected-access


def test_the_papers_merge_is_one_override_away():
  task = _task(merge_operator='clipped_sum', semantic_matching='hungarian')
  for criterion in task._criteria:  # pylint: disable=protected-access
    assert criterion.merge_operator == merge.MERGE_CLIPPED_SUM
    assert criterion._semantic_matching == criterion_lib.SEMANTIC_MATCHING_HUNGARIAN  # pylint: disable=protected-access


@pytest.mark.parametrize('operator', merge.MERGE_OPERATORS)
def test_config_values_reach_every_criterion(operator):
  task = _task(merge_operator=operator, class_cost_type='neg_prob')
  for criterion in task._criteria:  # pylint: disable=protected-access
    assert criterion.merge_operator == operator
    assert criterion.class_cost_type == class_losses.CLASS_COST_NEG_PROB


def test_bad_values_raise_naming_the_field():
  with pytest.raises(ValueError, match='merge_operator'):
    _task(merge_operator='soft')
  with pytest.raises(ValueError, match='class_cost_type'):
    _task(class_cost_type='focal')


def test_semantic_matching_reaches_the_criteria_and_bad_value_names_the_field():
  config = exp_factory.get_exp_config('dataseg_demo')
  config.task.semantic_matching = 'by_class'
  task = dataseg_task.DataSegTask(config.task)
  assert all(c._semantic_matching == 'by_class' for c in task._criteria)  # pylint: disable=protected-access
  config.task.semantic_matching = 'nearest'
  with pytest.raises(ValueError, match='task.semantic_matching'):
    dataseg_task.DataSegTask(config.task)
