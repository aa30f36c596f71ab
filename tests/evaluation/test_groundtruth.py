"""Ground truth read back from a TFRecord and drawn in vocabulary colours, as predictions are."""
import numpy as np

from official_dataseg.evaluation import groundtruth
from official_dataseg.evaluation import visualization
from tests.dataloaders import tfexample_helpers

NAMES = ['wall', 'car', 'person']
IS_THING = [False, True, True]
GRAY = 100


def _write(tmp_path, **kwargs):
  image = np.full((20, 30, 3), GRAY, np.uint8)
  path = tfexample_helpers.write_tfrecord(str(tmp_path / 'val-00000-of-00001'), [
      tfexample_helpers.make_example(image, source_id='img7', **kwargs)])
  examples = list(groundtruth.read_examples(str(tmp_path / 'val-*')))
  assert path and len(examples) == 1
  return examples[0]


def _blended(class_index):
  return np.round(0.5 * GRAY + 0.5 * visualization.class_color(class_index).astype(float))


def test_semantic_ground_truth(tmp_path):
  segment_map = np.zeros((20, 30), np.int32)
  segment_map[:10] = 1   # object 0: wall
  segment_map[10:, :15] = 2  # object 1: car
  example = _write(tmp_path, classes=[0, 1], boxes=[[0, 0, .5, 1], [.5, 0, 1, .5]],
                   segment_map=segment_map)
  assert example.source_id == 'img7' and example.image.shape == (20, 30, 3)
  overlay, drawn = groundtruth.overlay('semantic', example, NAMES, IS_THING, factor=2)
  assert overlay.shape == (40, 60, 3) and drawn == {0: 'wall', 1: 'car'}
  np.testing.assert_array_equal(overlay[5, 50], _blended(0))
  np.testing.assert_array_equal(overlay[30, 10], _blended(1))
  np.testing.assert_array_equal(overlay[30, 50], [GRAY] * 3)  # void: not painted


def test_panoptic_things_are_instances(tmp_path):
  segment_map = np.zeros((20, 30), np.int32)
  segment_map[:, :10] = 1   # person
  segment_map[:, 10:20] = 2  # another person
  example = _write(tmp_path, classes=[2, 2], boxes=[[0, 0, 1, .33], [0, .33, 1, .66]],
                   segment_map=segment_map)
  overlay, drawn = groundtruth.overlay('panoptic', example, NAMES, IS_THING)
  assert drawn == {2: 'person'}
  assert not np.array_equal(overlay[10, 5], overlay[10, 15])  # two instances, two shades


def test_box_only_instances_are_drawn_as_boxes(tmp_path):
  example = _write(tmp_path, classes=[1], boxes=[[0.5, 0.0, 1.0, 0.5]])
  overlay, drawn = groundtruth.overlay('instance', example, NAMES, IS_THING)
  assert drawn == {1: 'car'}
  assert (overlay[15, 7] != GRAY).any()  # inside the box
  np.testing.assert_array_equal(overlay[3, 25], [GRAY] * 3)  # outside
