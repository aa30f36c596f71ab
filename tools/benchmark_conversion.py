"""Benchmarks COCO panoptic conversion: this project's runners, Model Garden.

  python tools/benchmark_conversion.py \
      --sample_dir ../shared/data/coco_panoptic_sample \
      --model_garden_python /tmp/mg_venv/bin/python [--copies 50]

  # The local path against Beam's DirectRunner with 2 worker processes (any
  # flag this tool does not know is a Beam pipeline option):
  python tools/benchmark_conversion.py --runner local --runner DirectRunner \
      --num_workers 2 --direct_running_mode=multi_processing \
      --direct_num_workers=2

Every converter reads the same input: the real COCO panoptic sample (2 val2017
images) replicated `--copies` times under distinct image ids and file names.

  ours[RUNNER]  tfrecords_tools.coco_panoptic (this interpreter) with
                --runner RUNNER (one entry per --runner; `--num_workers` is
                the local pool, Beam's workers come from its own options):
                image, boxes, classes, areas, crowd flags, one segment-index
                PNG. The runners write the same bytes.
  model_garden  official/vision/data/create_coco_tf_record.py with
                --include_panoptic_masks (semantic, category and instance
                PNGs) and --object_annotations_file (boxes, classes, areas,
                crowd flags of every segment), run by --model_garden_python
                (only when that flag is given).

What Model Garden needs to run (see docs/datasets.md): numpy < 2 (its
panoptic path overflows uint8 under numpy 2), so it runs in a separate
environment; and no --include_masks, because it cannot read the non-crowd RLE
masks of the sample's detection-format JSON (the instance masks are omitted:
its panoptic category / instance masks carry the same pixels).

Each converter runs `--repeats` times (alternating) in a fresh process; the
time measured is the conversion call alone (interpreter start and imports
excluded, the same for all; a Beam run's own start-up, its workers' imports
among it, is included). Prints one JSON line per converter (images, TFRecord
bytes per image, images/s of the median run) and a final comparison line
(Model Garden against the first runner, every other runner against the
first).
"""

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from typing import Any, Dict, List

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DEFAULT_SAMPLE = os.path.join(_REPO_ROOT, '..', 'shared', 'data',
                               'coco_panoptic_sample')

# Run in a fresh interpreter; prints {"seconds": ...}. Flags are passed as the
# JSON-encoded argv[1].
_OURS_DRIVER = '''
import json, sys, time
from tfrecords_tools import coco_panoptic
a = json.loads(sys.argv[1])
start = time.perf_counter()
coco_panoptic.convert(a["images_dir"], a["panoptic_json"], a["output_prefix"],
                      panoptic_masks_dir=a["masks_dir"],
                      num_shards=a["num_shards"], num_workers=a["num_workers"],
                      runner=a["runner"], beam_options=a["beam_options"],
                      show_progress=False)
print(json.dumps({"seconds": time.perf_counter() - start}))
'''

_MODEL_GARDEN_DRIVER = '''
import json, sys, time
from absl import flags, logging
import numpy
from official.vision.data import create_coco_tf_record as mg
logging.set_verbosity(logging.WARNING)
a = json.loads(sys.argv[1])
flags.FLAGS([
    "create_coco_tf_record",
    "--image_dir=" + a["images_dir"],
    "--image_info_file=" + a["panoptic_json"],
    "--object_annotations_file=" + a["detection_json"],
    "--panoptic_annotations_file=" + a["panoptic_json"],
    "--panoptic_masks_dir=" + a["masks_dir"],
    "--include_panoptic_masks",
    "--output_file_prefix=" + a["output_prefix"],
    "--num_shards=%d" % a["num_shards"],
    "--num_processes=%d" % a["num_workers"],
])
start = time.perf_counter()
mg.main(None)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "numpy": numpy.__version__}))
'''


def replicate_sample(sample_dir: str, work_dir: str, copies: int
                     ) -> Dict[str, str]:
  """Writes `copies` copies of the sample with distinct ids and names.

  Copy c of image id i gets id i + c * 10**7 and file names prefixed
  `c_`; segment ids and annotation ids are kept (they are per image).

  Returns:
    Paths: images_dir, masks_dir, panoptic_json, detection_json.
  """
  with open(os.path.join(sample_dir, 'panoptic_examples.json')) as f:
    panoptic = json.load(f)
  with open(os.path.join(sample_dir,
                         'panoptic_coco_detection_format.json')) as f:
    detection = json.load(f)
  paths = {'images_dir': os.path.join(work_dir, 'images'),
           'masks_dir': os.path.join(work_dir, 'panoptic'),
           'panoptic_json': os.path.join(work_dir, 'panoptic.json'),
           'detection_json': os.path.join(work_dir, 'detection.json')}
  os.makedirs(paths['images_dir'])
  os.makedirs(paths['masks_dir'])
  images, panoptic_annotations, boxes = [], [], []
  for c in range(copies):
    id_shift = c * 10**7
    for image in panoptic['images']:
      name = f'{c:04d}_{image["file_name"]}'
      shutil.copyfile(os.path.join(sample_dir, 'input_images',
                                   image['file_name']),
                      os.path.join(paths['images_dir'], name))
      images.append(dict(image, id=image['id'] + id_shift, file_name=name))
    for annotation in panoptic['annotations']:
      name = f'{c:04d}_{annotation["file_name"]}'
      shutil.copyfile(os.path.join(sample_dir, 'panoptic_examples',
                                   annotation['file_name']),
                      os.path.join(paths['masks_dir'], name))
      panoptic_annotations.append(dict(
          annotation, image_id=annotation['image_id'] + id_shift,
          file_name=name))
    for position, box in enumerate(detection['annotations']):
      boxes.append(dict(box, image_id=box['image_id'] + id_shift,
                        id=c * 10**5 + position))
  with open(paths['panoptic_json'], 'w') as f:
    json.dump({'images': images, 'annotations': panoptic_annotations,
               'categories': panoptic['categories']}, f)
  with open(paths['detection_json'], 'w') as f:
    json.dump({'images': images, 'annotations': boxes,
               'categories': detection['categories']}, f)
  return paths


def count_records(output_prefix: str) -> int:
  import tensorflow as tf, tf_keras  # pylint: disable=g-import-not-at-top,unused-import
  return sum(sum(1 for _ in tf.data.TFRecordDataset(path))
             for path in tfrecord_files(output_prefix))


def tfrecord_files(output_prefix: str) -> List[str]:
  folder, base = os.path.split(output_prefix)
  return sorted(os.path.join(folder, f) for f in os.listdir(folder)
                if f.startswith(base + '-') and '-of-' in f
                and not f.endswith('.json'))


def run_once(name: str, python: str, driver: str, args: Dict[str, Any],
             output_prefix: str) -> Dict[str, Any]:
  """Runs one converter once in a fresh process; returns the driver's JSON."""
  os.makedirs(os.path.dirname(output_prefix))
  completed = subprocess.run(
      [python, '-c', driver, json.dumps(dict(args,
                                             output_prefix=output_prefix))],
      cwd=_REPO_ROOT, capture_output=True, text=True, check=False)
  if completed.returncode != 0:
    raise RuntimeError(f'{name} failed (exit {completed.returncode}):\n'
                       f'{completed.stderr[-3000:]}')
  return json.loads(completed.stdout.strip().splitlines()[-1])


def summarize(name: str, runs: List[Dict[str, Any]], output_prefix: str
              ) -> Dict[str, Any]:
  """Images, TFRecord bytes per image and images/s of the median run."""
  seconds = [run.pop('seconds') for run in runs]
  num_images = count_records(output_prefix)
  total_bytes = sum(os.path.getsize(p) for p in tfrecord_files(output_prefix))
  digest = hashlib.sha256()
  for path in tfrecord_files(output_prefix):
    with open(path, 'rb') as f:
      digest.update(f.read())
  return dict(runs[-1], converter=name, images=num_images,
              tfrecord_bytes=total_bytes,
              tfrecord_sha256=digest.hexdigest()[:16],
              bytes_per_image=round(total_bytes / max(num_images, 1)),
              seconds=[round(s, 3) for s in seconds],
              images_per_s=round(num_images / statistics.median(seconds), 2))


def _comparison(results: List[Dict[str, Any]]) -> Dict[str, Any]:
  """Ratios of Model Garden and of every other runner to the first runner."""
  ours = [r for r in results if r['converter'] != 'model_garden']
  first, comparison = ours[0], {}
  for other in ours[1:]:
    comparison[f'speed_ratio_{other["converter"]}_over_{first["converter"]}'] = (
        round(other['images_per_s'] / first['images_per_s'], 3))
    comparison[f'same_bytes_{other["converter"]}'] = (
        other['tfrecord_sha256'] == first['tfrecord_sha256'])
  model_garden = [r for r in results if r['converter'] == 'model_garden']
  if model_garden:
    model_garden = model_garden[0]
    comparison.update({
        'size_ratio_ours_over_model_garden': round(
            first['bytes_per_image'] / model_garden['bytes_per_image'], 4),
        'speed_ratio_ours_over_model_garden': round(
            first['images_per_s'] / model_garden['images_per_s'], 3),
        'ours_not_larger': first['bytes_per_image'] <= model_garden[
            'bytes_per_image'],
        'ours_not_slower': first['images_per_s'] >= model_garden[
            'images_per_s'],
    })
  return comparison


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
      allow_abbrev=False)
  parser.add_argument('--sample_dir', default=_DEFAULT_SAMPLE,
                      help='The real COCO panoptic sample folder.')
  parser.add_argument('--model_garden_python', default=None,
                      help='Python of an environment with tf-models-official '
                      'and numpy < 2 (runs create_coco_tf_record.py); without '
                      'it, only this project\'s runners are measured.')
  parser.add_argument('--runner', action='append', default=None,
                      help='A --runner of the converters (local, DirectRunner, '
                      '...); repeat to compare several (default: local). '
                      'Unknown flags go to Beam as pipeline options.')
  parser.add_argument('--copies', type=int, default=50,
                      help='Copies of the 2-image sample (distinct ids).')
  parser.add_argument('--num_shards', type=int, default=1,
                      help='Output shards for every converter.')
  parser.add_argument('--num_workers', type=int, default=0,
                      help='Worker processes of the local runner and of Model '
                      'Garden (0 = in process).')
  parser.add_argument('--repeats', type=int, default=3,
                      help='Runs per converter; the median time is used.')
  parser.add_argument('--keep_dir', default=None,
                      help='Work folder to keep (default: a deleted temp dir).')
  flags, beam_options = parser.parse_known_args(argv)
  runners = flags.runner or ['local']
  if beam_options and runners == ['local']:
    parser.error(f'unrecognized arguments: {" ".join(beam_options)} (Beam '
                 'pipeline options need a Beam --runner)')
  work_dir = flags.keep_dir or tempfile.mkdtemp(prefix='benchmark_conversion_')
  os.makedirs(work_dir, exist_ok=True)
  try:
    paths = replicate_sample(flags.sample_dir, os.path.join(work_dir, 'input'),
                             flags.copies)
    converters = []
    for runner in runners:
      is_local = runner == 'local'
      converters.append((f'ours[{runner}]', sys.executable, _OURS_DRIVER, dict(
          paths, num_shards=flags.num_shards, runner=runner,
          num_workers=flags.num_workers if is_local else 0,
          beam_options=[] if is_local else beam_options)))
    if flags.model_garden_python:
      converters.append(('model_garden', flags.model_garden_python,
                         _MODEL_GARDEN_DRIVER,
                         dict(paths, num_shards=flags.num_shards,
                              num_workers=flags.num_workers)))
    runs = {name: [] for name, _, _, _ in converters}
    # Runs alternate between the converters so that a change of machine load
    # affects all alike.
    for repeat in range(flags.repeats):
      for index, (name, python, driver, args) in enumerate(converters):
        runs[name].append(run_once(
            name, python, driver, args,
            os.path.join(work_dir, f'run{index}_{repeat}', 'coco')))
    results = [summarize(name, runs[name], os.path.join(
        work_dir, f'run{index}_{flags.repeats - 1}', 'coco'))
               for index, (name, _, _, _) in enumerate(converters)]
  finally:
    if not flags.keep_dir:
      shutil.rmtree(work_dir, ignore_errors=True)
  for result in results:
    print(json.dumps(result, sort_keys=True))
  print(json.dumps(_comparison(results), sort_keys=True))
  return 0


if __name__ == '__main__':
  sys.exit(main())
