"""Run in a child process by test_image_bytes_memory: sends oversized images to the image_bytes
`semantic` signature of a SavedModel and prints, as JSON, the peak resident memory (ru_maxrss)
after a normal request, after the oversized ones, their error messages and a last normal answer.

  python -m tests.serving.peak_memory_child EXPORT_DIR
"""
import json
import resource
import sys

import numpy as np
import tensorflow as tf

from tests.serving import large_images

# (name, file): valid files declaring huge sizes; JPEG's size fields stop at 65535.
OVERSIZED = (
    ('png_12000', lambda: large_images.uniform_png(12000, 12000)),
    ('png_100000', lambda: large_images.uniform_png(100000, 100000)),
    ('jpeg_12000', lambda: large_images.uniform_jpeg(12000, 12000)),
    ('jpeg_65535', lambda: large_images.uniform_jpeg(65535, 65535)),
)


def _peak_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB.


def main(export_dir: str) -> None:
  semantic = tf.saved_model.load(export_dir).signatures['semantic']
  # Inputs are built first, so their own bytes are part of the baseline peak.
  oversized = {name: tf.constant(make()) for name, make in OVERSIZED}
  normal = tf.constant(tf.io.encode_png(
      np.random.default_rng(0).integers(0, 255, [40, 30, 3], np.uint8)).numpy())
  semantic(image_bytes=normal)
  peak_after_normal = _peak_mb()
  errors = {}
  for name, image_bytes in oversized.items():
    try:
      semantic(image_bytes=image_bytes)
      errors[name] = None
    except tf.errors.InvalidArgumentError as e:
      errors[name] = e.message
  peak_after_oversized = _peak_mb()
  answer = semantic(image_bytes=normal)['class_map'].shape.as_list()
  print(json.dumps({'peak_after_normal_mb': peak_after_normal,
                    'peak_after_oversized_mb': peak_after_oversized,
                    'file_mb': {n: int(t.numpy().__len__()) / 1e6 for n, t in oversized.items()},
                    'errors': errors, 'normal_answer_shape': answer}))


if __name__ == '__main__':
  main(sys.argv[1])
