"""Overlays blend the right colours where they should, and PNGs round-trip."""

import os

import numpy as np
from PIL import Image

from official_dataseg import common
from official_dataseg.evaluation import visualization

_NAMES = ['person', 'car', 'sky']


def _image():
  return np.full((60, 80, 3), 100, np.uint8)


def test_class_colors_are_deterministic_and_distinct():
  colors = [tuple(visualization.class_color(c)) for c in range(150)]
  assert colors == [tuple(visualization.class_color(c)) for c in range(150)]
  assert len(set(colors)) == 150


def test_overlay_semantic_blends_class_color_and_keeps_ignored():
  label_map = np.full((60, 80), common.VOID_LABEL)
  label_map[40:, 50:] = 2
  out = visualization.overlay_semantic(_image(), label_map, _NAMES)
  expected = np.round(0.5 * 100 + 0.5 * visualization.class_color(2).astype(float))
  np.testing.assert_array_equal(out[50, 70], expected)
  np.testing.assert_array_equal(out[50, 10], [100, 100, 100])  # ignored
  assert (out[2:12, 2:12] != 100).any()  # the legend


def test_overlay_panoptic_separates_instances_and_draws_borders():
  category_map = np.full((60, 80), -1)
  instance_map = np.zeros((60, 80), int)
  category_map[30:, :40] = 0
  instance_map[30:, :20] = 1
  instance_map[30:, 20:40] = 2
  out = visualization.overlay_panoptic(_image(), category_map, instance_map,
                                       _NAMES)
  assert not np.array_equal(out[45, 10], out[45, 30])  # two instances differ
  np.testing.assert_array_equal(out[45, 20], [255, 255, 255])  # border
  np.testing.assert_array_equal(out[10, 70], [100, 100, 100])  # void


def test_overlay_instances_respects_score_threshold():
  masks = np.zeros((2, 60, 80), bool)
  masks[0, 30:50, 10:30] = True
  masks[1, 30:50, 50:70] = True
  out = visualization.overlay_instances(_image(), masks, [0, 1], [0.9, 0.2],
                                        _NAMES, score_threshold=0.5)
  assert (out[40, 20] != 100).any()
  np.testing.assert_array_equal(out[48, 65], [100, 100, 100])  # below text


def test_save_png_round_trip(tmp_path):
  image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
  path = tmp_path / 'sub' / 'overlay.png'
  visualization.save_png(image, str(path))
  np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
  assert os.listdir(tmp_path / 'sub') == ['overlay.png']
