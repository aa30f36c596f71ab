"""The evaluation report: a console table and a JSON file with one entry per dataset."""
import json
from typing import Any, Dict, Mapping, Optional

from official_dataseg import common
from official_dataseg.utils import atomic_write

# The headline metric of each task, first in the table.
HEADLINE_METRICS = {
    common.TASK_SEMANTIC: ('mIoU', 'pixel_accuracy'),
    common.TASK_PANOPTIC: ('PQ', 'PQ_th', 'PQ_st', 'SQ', 'RQ'),
    common.TASK_INSTANCE: ('mask_AP', 'mask_AP50', 'mask_AP75'),
}


def split_by_dataset(logs: Mapping[str, float]) -> Dict[str, Dict[str, float]]:
  """{'<dataset>/<metric>': v} -> {dataset: {metric: float(v)}}."""
  datasets: Dict[str, Dict[str, float]] = {}
  for key, value in logs.items():
    if '/' not in key:
      continue
    dataset, metric = key.split('/', 1)
    datasets.setdefault(dataset, {})[metric] = float(value)
  return datasets


def headline_metrics(task_type: str, raw: Mapping[str, Any]) -> Dict[str, float]:
  """An evaluator's raw result -> the reported metrics, in percent.

  Args:
    task_type: one of `common.TASK_TYPES`.
    raw: semantic {'mIoU', 'pixel_accuracy', ...} (fractions); panoptic {'All', 'Things',
      'Stuff': {'pq', 'sq', 'rq', 'n'}, 'num_images', ...} (fractions); instance {'AP', 'AP50',
      ...} (fractions).

  Returns:
    semantic {'mIoU', 'pixel_accuracy'}; panoptic {'PQ', 'SQ', 'RQ', 'PQ_th', ..., 'RQ_st'};
    instance {'mask_AP', 'mask_AP50', ...}; all in percent.
  """
  if task_type == common.TASK_SEMANTIC:
    return {'mIoU': 100.0 * raw['mIoU'], 'pixel_accuracy': 100.0 * raw['pixel_accuracy']}
  if task_type == common.TASK_PANOPTIC:
    return {metric.upper() + suffix: 100.0 * raw[group][metric]
            for group, suffix in (('All', ''), ('Things', '_th'), ('Stuff', '_st'))
            for metric in ('pq', 'sq', 'rq')}
  return {f'mask_{name}': 100.0 * value for name, value in raw.items()}


def format_table(step: Optional[int], results: Mapping[str, Mapping[str, float]],
                 task_types: Mapping[str, str]) -> str:
  """A fixed-width table: dataset, task, images and the task's headline metrics (percent).

  Args:
    step: the training step, or None outside training.
    results: {dataset: `headline_metrics` plus optionally 'num_images'}.
    task_types: {dataset: task type}.
  """
  title = 'Evaluation' if step is None else f'Evaluation at step {step}'
  lines = [f'{title} (metrics in percent)',
           f'{"dataset":<24} {"task":<9} {"images":>6}  metrics']
  for name, metrics in results.items():
    task_type = task_types.get(name, '?')
    shown = [f'{m} {metrics[m]:6.2f}' for m in HEADLINE_METRICS.get(task_type, ())
             if m in metrics]
    images = int(metrics['num_images']) if 'num_images' in metrics else '-'
    lines.append(f'{name:<24} {task_type:<9} {images:>6}  ' + '   '.join(shown))
  return '\n'.join(lines)


def write_json(path: str, step: int, results: Mapping[str, Mapping[str, float]],
               task_types: Mapping[str, str]) -> None:
  """Writes {"step", "datasets": {name: {"task", "metrics"}}} atomically."""
  report = {'step': int(step),
            'datasets': {name: {'task': task_types.get(name, ''), 'metrics': dict(metrics)}
                         for name, metrics in results.items()}}
  with atomic_write.atomic_write(path) as f:
    json.dump(report, f, indent=1, sort_keys=False)
