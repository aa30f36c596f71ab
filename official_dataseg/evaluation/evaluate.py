r"""File-based evaluation: PQ, mask AP or mIoU from standard result files.

  # COCO panoptic JSON + PNG folders (folders default to the JSON path
  # without `.json`, the COCO panoptic API convention):
  python -m official_dataseg.evaluation.evaluate --task panoptic \
      --gt panoptic_val.json --gt_folder panoptic_val/ \
      --pred predictions.json --pred_folder predictions/ --output pq.json

  # COCO instances JSON + results JSON with RLE masks:
  python -m official_dataseg.evaluation.evaluate --task instance \
      --gt instances_val.json --pred segm_results.json [--ignore_skipped]

  # Folders of label PNGs with the same file names:
  python -m official_dataseg.evaluation.evaluate --task semantic \
      --gt labels/ --pred predictions/ --num_classes 150 --ignore_label 255

It uses the evaluator classes the in-training evaluation uses.
"""

import argparse
import contextlib
import io
import json
import os
import sys
from typing import Any, Dict, Optional, Sequence

from pycocotools import coco as coco_api

from official_dataseg.evaluation import file_formats
from official_dataseg.evaluation import instance_metrics
from official_dataseg.evaluation import panoptic_metrics
from official_dataseg.evaluation import report
from official_dataseg.evaluation import semantic_metrics
from official_dataseg.utils import atomic_write


def _default_folder(json_path: str) -> str:
  return os.path.splitext(json_path)[0]


def evaluate_panoptic(gt_json_path: str, pred_json_path: str,
                      gt_folder: Optional[str] = None,
                      pred_folder: Optional[str] = None) -> Dict[str, Any]:
  """COCO PQ of a panoptic prediction JSON + PNG folder.

  Returns:
    `PanopticEvaluator.result()` (fractions).
  """
  gt_folder = gt_folder or _default_folder(gt_json_path)
  pred_folder = pred_folder or _default_folder(pred_json_path)
  gt_json = file_formats.read_json(gt_json_path)
  pred_json = file_formats.read_json(pred_json_path)
  if 'categories' not in gt_json:
    raise ValueError(f'{gt_json_path}: no `categories` field.')
  evaluator = panoptic_metrics.PanopticEvaluator(gt_json['categories'])
  gt_by_image = file_formats.panoptic_annotations_by_image(gt_json, gt_json_path)
  pred_by_image = file_formats.panoptic_annotations_by_image(
      pred_json, pred_json_path)
  for image_id, gt_annotation in gt_by_image.items():
    if image_id not in pred_by_image:
      raise ValueError(
          f'{pred_json_path}: no prediction for image_id {image_id}.')
    pred_annotation = pred_by_image[image_id]
    evaluator.update(
        file_formats.read_panoptic_png(
            os.path.join(gt_folder, gt_annotation['file_name'])),
        gt_annotation['segments_info'],
        file_formats.read_panoptic_png(
            os.path.join(pred_folder, pred_annotation['file_name'])),
        pred_annotation['segments_info'])
  return evaluator.result()


def evaluate_instance(gt_json_path: str, pred_json_path: str,
                      ignore_skipped: bool = False) -> Dict[str, float]:
  """COCO mask AP of a results JSON against a COCO instances JSON.

  With `ignore_skipped`, ground-truth annotations carrying `"is_ignored": 1`
  or `"ignore": 1` become crowd regions (see `instance_metrics`).
  """
  gt_json = file_formats.read_json(gt_json_path)
  detections = file_formats.read_json(pred_json_path)
  if not isinstance(detections, list):
    raise ValueError(f'{pred_json_path}: expected a COCO results list.')
  for key in ('images', 'annotations', 'categories'):
    if key not in gt_json:
      raise ValueError(f'{gt_json_path}: no `{key}` field (COCO instances).')
  annotations = []
  for annotation in gt_json['annotations']:
    skipped = bool(annotation.get('is_ignored', annotation.get('ignore', 0)))
    if skipped and not ignore_skipped:
      continue
    if skipped:
      annotation = dict(annotation, iscrowd=1)
      if not annotation.get('segmentation'):
        x, y, w, h = annotation['bbox']
        annotation['segmentation'] = [[x, y, x + w, y, x + w, y + h, x, y + h]]
    annotations.append(annotation)
  coco_gt = coco_api.COCO()
  coco_gt.dataset = dict(gt_json, annotations=annotations)
  with contextlib.redirect_stdout(io.StringIO()):
    coco_gt.createIndex()
  return instance_metrics.coco_mask_ap(coco_gt, detections)


def evaluate_semantic(gt_folder: str, pred_folder: str, num_classes: int,
                      ignore_label: int = 255,
                      ignore_classes: Sequence[int] = ()) -> Dict[str, Any]:
  """mIoU of label PNGs in `pred_folder` against those in `gt_folder`."""
  evaluator = semantic_metrics.SemanticEvaluator(
      num_classes, ignore_label=ignore_label, ignore_classes=ignore_classes)
  gt_files = file_formats.list_pngs(gt_folder)
  if not gt_files:
    raise ValueError(f'{gt_folder}: no PNG label files.')
  for file_name in gt_files:
    pred_path = os.path.join(pred_folder, file_name)
    if not os.path.isfile(pred_path):
      raise FileNotFoundError(f'No prediction {pred_path} for {file_name}.')
    evaluator.update(
        file_formats.read_label_png(os.path.join(gt_folder, file_name)),
        file_formats.read_label_png(pred_path))
  return evaluator.result()


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--task', required=True,
                      choices=('panoptic', 'instance', 'semantic'))
  parser.add_argument('--gt', required=True,
                      help='GT JSON (panoptic, instance) or label folder.')
  parser.add_argument('--pred', required=True,
                      help='Prediction JSON (panoptic, instance) or folder.')
  parser.add_argument('--gt_folder', default=None,
                      help='Panoptic GT PNG folder (default: --gt sans .json).')
  parser.add_argument('--pred_folder', default=None,
                      help='Panoptic prediction PNG folder.')
  parser.add_argument('--num_classes', type=int, default=None)
  parser.add_argument('--ignore_label', type=int, default=255)
  parser.add_argument('--ignore_classes', type=int, nargs='*', default=(),
                      help='Semantic classes left out (VOC: background 0).')
  parser.add_argument('--ignore_skipped', action='store_true',
                      help='Instance: skipped annotations are not FPs.')
  parser.add_argument('--output', default=None, help='Metrics JSON to write.')
  args = parser.parse_args(argv)
  if args.task == 'semantic' and args.num_classes is None:
    parser.error('--num_classes is required for --task semantic.')
  return args


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  args = _parse_args(sys.argv[1:] if argv is None else argv)
  if args.task == 'panoptic':
    results = evaluate_panoptic(args.gt, args.pred, args.gt_folder,
                                args.pred_folder)
  elif args.task == 'instance':
    results = evaluate_instance(args.gt, args.pred, args.ignore_skipped)
  else:
    results = evaluate_semantic(args.gt, args.pred, args.num_classes,
                                args.ignore_label, args.ignore_classes)
  name = os.path.basename(args.gt)
  metrics = report.headline_metrics(args.task, results)
  if 'num_images' in results:
    metrics['num_images'] = results['num_images']
  print(report.format_table(None, {name: metrics}, {name: args.task}))
  if args.output:
    with atomic_write.atomic_write(args.output) as f:
      json.dump(results, f, indent=2, sort_keys=True)
  return results


if __name__ == '__main__':
  main()
