r"""File-based evaluation: PQ, mask AP or mIoU from standard result files.

  # COCO panoptic JSON + PNG folders (folders default to the JSON path
  # without `.json`, the COCO panoptic API convention):
  python -m official_dataseg.evaluation.evaluate --task panoptic \
      --gt panoptic_val.json --gt_folder panoptic_val/ \
      --pred predictions.json --pred_folder predictions/ --output pq.json

  # COCO instances JSON + results JSON with RLE masks (skipped annotations
  # are ignore regions unless --no-ignore_skipped):
  python -m official_dataseg.evaluation.evaluate --task instance \
      --gt instances_val.json --pred segm_results.json

  # Folders of label PNGs with the same file names (raw ADE20K labels:
  # --reduce_zero_label; 16-bit labels such as PASCAL Context 459:
  # --ignore_label 65535):
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

import numpy as np
from pycocotools import coco as coco_api
from pycocotools import mask as mask_api

from official_dataseg import common

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
                      ignore_skipped: bool = True,
                      max_detections: int = 100) -> Dict[str, float]:
  """COCO mask AP of a results JSON against a COCO instances JSON.

  The ground truth is read as the converter and the in-training evaluation
  read it: an annotation is skipped by `instance_metrics.is_skipped_annotation`
  (a `skipped` / `is_ignored` / `ignore` flag, or no segmentation); with
  `ignore_skipped` (the default, as in training) it becomes a crowd region
  covering its box (`instance_metrics.box_region_mask`), else it is dropped.
  Every annotation's `area` is its mask's pixel count, as in training (this
  only moves objects between the APs / APm / APl ranges).
  """
  gt_json = file_formats.read_json(gt_json_path)
  detections = file_formats.read_json(pred_json_path)
  if not isinstance(detections, list):
    raise ValueError(f'{pred_json_path}: expected a COCO results list.')
  for key in ('images', 'annotations', 'categories'):
    if key not in gt_json:
      raise ValueError(f'{gt_json_path}: no `{key}` field (COCO instances).')
  images = {image['id']: image for image in gt_json['images']}
  annotations = []
  for position, annotation in enumerate(gt_json['annotations']):
    where = f'{gt_json_path}: annotations[{position}]'
    for key in ('image_id', 'category_id', 'bbox'):
      if key not in annotation:
        raise ValueError(f'{where} has no `{key}` field.')
    if annotation['image_id'] not in images:
      raise ValueError(f'{where}.image_id {annotation["image_id"]} is not in `images`.')
    if instance_metrics.is_skipped_annotation(annotation):
      if not ignore_skipped:
        continue
      image = images[annotation['image_id']]
      x, y, width, height = (float(v) for v in annotation['bbox'])
      region = instance_metrics.box_region_mask(
          (y, x, y + height, x + width), int(image['height']), int(image['width']))
      annotation = dict(annotation, iscrowd=1,
                        segmentation=instance_metrics.encode_masks(region[None])[0])
    annotations.append(dict(annotation, id=position + 1))
  coco_gt = coco_api.COCO()
  coco_gt.dataset = dict(gt_json, annotations=annotations)
  with contextlib.redirect_stdout(io.StringIO()):
    coco_gt.createIndex()
  for annotation in annotations:
    annotation['area'] = float(mask_api.area(coco_gt.annToRLE(annotation)))
  return instance_metrics.coco_mask_ap(coco_gt, detections, max_detections)


def semantic_label_map(label_png: np.ndarray, num_classes: int, ignore_label: int,
                       reduce_zero_label: bool = False) -> np.ndarray:
  """A label file's values -> class indices, void = `common.VOID_LABEL`.

  Args:
    label_png: [H, W] int values as stored in the file.
    num_classes: C, the vocabulary size.
    ignore_label: the file's void value.
    reduce_zero_label: the file stores 0 = unlabelled ("other") and class c as
      c + 1 (raw ADE20K: 0..150): 0 becomes void, every other value drops by 1.

  Returns:
    int64 [H, W].
  """
  labels = np.asarray(label_png).astype(np.int64)
  void = labels == ignore_label
  if reduce_zero_label:
    void |= labels == 0
    labels = labels - 1
  return np.where(void, common.VOID_LABEL, labels)


def evaluate_semantic(gt_folder: str, pred_folder: str, num_classes: int,
                      ignore_label: int = 255,
                      ignore_classes: Sequence[int] = (),
                      reduce_zero_label: bool = False,
                      split_file: Optional[str] = None) -> Dict[str, Any]:
  """mIoU of label PNGs in `pred_folder` against those in `gt_folder`.

  Ground-truth files store void as `ignore_label` and, with
  `reduce_zero_label`, class c as c + 1 (see `semantic_label_map`);
  prediction files store class indices 0..C-1. Every ground-truth PNG is
  scored, or with `split_file` (one image stem a line, as VOC's
  ImageSets/Segmentation/val.txt) the listed ones.
  """
  highest_class_value = num_classes if reduce_zero_label else num_classes - 1
  if 0 <= ignore_label <= highest_class_value:
    raise ValueError(
        f'ignore_label {ignore_label} is a class value of the {num_classes}-class label '
        f'files (0..{highest_class_value}); give a void value no class takes (8-bit files: '
        '255, 16-bit files: 65535).')
  evaluator = semantic_metrics.SemanticEvaluator(
      num_classes, ignore_label=common.VOID_LABEL, ignore_classes=ignore_classes)
  if split_file:
    with open(split_file) as f:
      gt_files = [line.strip() + '.png' for line in f if line.strip()]
  else:
    gt_files = file_formats.list_pngs(gt_folder)
  if not gt_files:
    raise ValueError(f'{split_file or gt_folder}: no PNG label files.')
  for file_name in gt_files:
    pred_path = os.path.join(pred_folder, file_name)
    if not os.path.isfile(pred_path):
      raise FileNotFoundError(f'No prediction {pred_path} for {file_name}.')
    gt_path = os.path.join(gt_folder, file_name)
    try:
      evaluator.update(
          semantic_label_map(file_formats.read_label_png(gt_path), num_classes, ignore_label,
                             reduce_zero_label),
          file_formats.read_label_png(pred_path))
    except ValueError as e:
      raise ValueError(f'{gt_path}: {e}') from e
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
  parser.add_argument('--ignore_label', type=int, default=255,
                      help='Semantic: the void value of the GT label files; no class may '
                      'take it (16-bit files, e.g. PASCAL Context 459: 65535).')
  parser.add_argument('--reduce_zero_label', action='store_true',
                      help='Semantic: GT files store 0 = unlabelled and class c as c + 1 '
                      '(raw ADE20K annotations).')
  parser.add_argument('--split_file', default=None,
                      help='Semantic: score only the images listed (one stem a line, as '
                      "VOC's ImageSets/Segmentation/val.txt).")
  parser.add_argument('--max_detections', type=int, default=100,
                      help='Instance: detections per image scored.')
  parser.add_argument('--ignore_classes', type=int, nargs='*', default=(),
                      help='Semantic classes left out (VOC: background 0).')
  parser.add_argument('--ignore_skipped', action=argparse.BooleanOptionalAction,
                      default=True,
                      help='Instance: skipped annotations are ignore regions (their box), '
                      'so predictions on them are not FPs; on by default, as in training.')
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
    results = evaluate_instance(args.gt, args.pred, args.ignore_skipped,
                                args.max_detections)
  else:
    results = evaluate_semantic(args.gt, args.pred, args.num_classes,
                                args.ignore_label, args.ignore_classes,
                                args.reduce_zero_label, args.split_file)
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
