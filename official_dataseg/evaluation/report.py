"""The evaluation report: a console table and a JSON file with one entry per dataset."""
import json
import os
import tempfile
from typing import Dict, Mapping

from official_dataseg import common

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


def format_table(step: int, results: Mapping[str, Mapping[str, float]],
                 task_types: Mapping[str, str]) -> str:
  """A fixed-width table: dataset, task, images and the task's headline metrics (percent)."""
  lines = [f'Evaluation at step {step} (metrics in percent)',
           f'{"dataset":<24} {"task":<9} {"images":>6}  metrics']
  for name, metrics in results.items():
    task_type = task_types.get(name, '?')
    shown = [f'{m} {metrics[m]:6.2f}' for m in HEADLINE_METRICS.get(task_type, ())
             if m in metrics]
    images = int(metrics.get('num_images', 0))
    lines.append(f'{name:<24} {task_type:<9} {images:>6}  ' + '   '.join(shown))
  return '\n'.join(lines)


def write_json(path: str, step: int, results: Mapping[str, Mapping[str, float]],
               task_types: Mapping[str, str]) -> None:
  """Writes {"step", "datasets": {name: {"task", "metrics"}}} atomically."""
  report = {'step': int(step),
            'datasets': {name: {'task': task_types.get(name, ''), 'metrics': dict(metrics)}
                         for name, metrics in results.items()}}
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  with tempfile.NamedTemporaryFile('w', dir=directory, suffix='.tmp', delete=False) as f:
    json.dump(report, f, indent=1, sort_keys=False)
  os.replace(f.name, path)
