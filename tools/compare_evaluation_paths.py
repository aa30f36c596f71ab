r"""Prints train.py's metrics.json beside the file evaluator's numbers for the same datasets.

  python tools/compare_evaluation_paths.py --metrics MODEL_DIR/metrics.json --scored DIR

`DIR/<dataset>/metrics.json` is what `python -m official_dataseg.evaluation.evaluate --output`
wrote for that dataset (scripts/compare_evaluation_paths.sh makes both). Exits with status 1 when
a metric differs by more than --tolerance (in percent points).
"""
import argparse
import json
import os
import sys

# In-training metric name -> how to read it from the file evaluator's result (fractions).
_FILE_METRICS = {
    'semantic': {'mIoU': ('mIoU',), 'pixel_accuracy': ('pixel_accuracy',)},
    'panoptic': {'PQ': ('All', 'pq'), 'SQ': ('All', 'sq'), 'RQ': ('All', 'rq'),
                 'PQ_th': ('Things', 'pq'), 'PQ_st': ('Stuff', 'pq')},
    'instance': {'mask_AP': ('AP',), 'mask_AP50': ('AP50',), 'mask_AP75': ('AP75',)},
}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--metrics', required=True, help="train.py's metrics.json")
  parser.add_argument('--scored', required=True, help='folder of <dataset>/metrics.json')
  parser.add_argument('--tolerance', type=float, default=1e-4,
                      help='largest difference allowed, in percent points (1e-4 = 1e-6 as '
                      'a fraction)')
  args = parser.parse_args(argv)
  with open(args.metrics) as f:
    report = json.load(f)
  worst = 0.0
  print(f'{"dataset":<16} {"metric":<15} {"train.py":>12} {"predict+file":>12} {"diff":>9}')
  for name, entry in report['datasets'].items():
    path = os.path.join(args.scored, name, 'metrics.json')
    if not os.path.isfile(path):
      print(f'{name:<16} (no {path})')
      continue
    with open(path) as f:
      from_files = json.load(f)
    for metric, keys in _FILE_METRICS[entry['task']].items():
      value = from_files
      for key in keys:
        value = value[key]
      difference = abs(entry['metrics'][metric] - 100.0 * value)
      worst = max(worst, difference)
      print(f'{name:<16} {metric:<15} {entry["metrics"][metric]:12.6f} {100.0 * value:12.6f} '
            f'{difference:9.2e}')
  print(f'largest difference: {worst:.2e} percent points')
  return 0 if worst <= args.tolerance else 1


if __name__ == '__main__':
  sys.exit(main())
