"""Benchmarks COCO panoptic conversion: this project vs Model Garden.

  python tools/benchmark_conversion.py \
      --sample_dir ../shared/data/coco_panoptic_sample \
      --model_garden_python /tmp/mg_venv/bin/python [--copies 50]

Both converters read the same input: the real COCO panoptic sample (2 val2017
images) replicated `--copies` times under distinct image ids and file names.

  ours          tfrecords_tools.coco_panoptic (this interpreter): image, boxes,
                classes, areas, crowd flags, one segment-index PNG.
  model_garden  official/vision/data/create_coco_tf_record.py with
                --include_panoptic_masks (semantic, category and instance
                PNGs) and --object_annotations_file (boxes, classes, areas,
                crowd flags of every segment), run by --model_garden_python.

What Model Garden needs to run (see docs/datasets.md): numpy < 2 (its
panoptic path overflows uint8 under numpy 2), so it runs in a separate
environment; and no --include_masks, because it cannot read the non-crowd RLE
masks of the sample's detection-format JSON (the instance masks are omitted:
its panoptic category / instance masks carry the same pixels).

Each converter runs `--repeats` times (alternating) in a fresh process; the
time measured is the conversion call alone (interpreter start and imports
excluded, the same for both). Prints one JSON line per converter (images,
TFRecord bytes per image, images/s of the median run) and a final comparison
line.
"""

import argparse
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
  return dict(runs[-1], converter=name, images=num_images,
              tfrecord_bytes=total_bytes,
              bytes_per_image=round(total_bytes / max(num_images, 1)),
              seconds=[round(s, 3) for s in seconds],
              images_per_s=round(num_images / statistics.median(seconds), 2))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--sample_dir', default=_DEFAULT_SAMPLE,
                      help='The real COCO panoptic sample folder.')
  parser.add_argument('--model_garden_python', required=True,
                      help='Python of an environment with tf-models-official '
                      'and numpy < 2 (runs create_coco_tf_record.py).')
  parser.add_argument('--copies', type=int, default=50,
                      help='Copies of the 2-image sample (distinct ids).')
  parser.add_argument('--num_shards', type=int, default=1,
                      help='Output shards for both converters.')
  parser.add_argument('--num_workers', type=int, default=0,
                      help='Worker processes for both (0 = in process).')
  parser.add_argument('--repeats', type=int, default=3,
                      help='Runs per converter; the median time is used.')
  parser.add_argument('--keep_dir', default=None,
                      help='Work folder to keep (default: a deleted temp dir).')
  flags = parser.parse_args(argv)
  work_dir = flags.keep_dir or tempfile.mkdtemp(prefix='benchmark_conversion_')
  os.makedirs(work_dir, exist_ok=True)
  try:
    paths = replicate_sample(flags.sample_dir, os.path.join(work_dir, 'input'),
                             flags.copies)
    args = dict(paths, num_shards=flags.num_shards,
                num_workers=flags.num_workers)
    converters = (('ours', sys.executable, _OURS_DRIVER),
                  ('model_garden', flags.model_garden_python,
                   _MODEL_GARDEN_DRIVER))
    runs = {name: [] for name, _, _ in converters}
    # Runs alternate between the converters so that a change of machine load
    # affects both alike.
    for repeat in range(flags.repeats):
      for name, python, driver in converters:
        runs[name].append(run_once(
            name, python, driver, args,
            os.path.join(work_dir, f'{name}_{repeat}', 'coco')))
    results = [summarize(name, runs[name], os.path.join(
        work_dir, f'{name}_{flags.repeats - 1}', 'coco'))
               for name, _, _ in converters]
  finally:
    if not flags.keep_dir:
      shutil.rmtree(work_dir, ignore_errors=True)
  for result in results:
    print(json.dumps(result, sort_keys=True))
  ours, model_garden = results
  print(json.dumps({
      'size_ratio_ours_over_model_garden': round(
          ours['bytes_per_image'] / model_garden['bytes_per_image'], 4),
      'speed_ratio_ours_over_model_garden': round(
          ours['images_per_s'] / model_garden['images_per_s'], 3),
      'ours_not_larger': ours['bytes_per_image'] <= model_garden[
          'bytes_per_image'],
      'ours_not_slower': ours['images_per_s'] >= model_garden['images_per_s'],
  }, sort_keys=True))
  return 0


if __name__ == '__main__':
  sys.exit(main())
