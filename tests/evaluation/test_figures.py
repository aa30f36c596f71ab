"""Figures: panels side by side at display size, the legend beside them, figures stacked."""
import numpy as np
from PIL import Image

from official_dataseg.evaluation import figures
from official_dataseg.evaluation import visualization

RED, BLUE = (200, 30, 30), (30, 30, 200)


def test_display_factor_reaches_the_minimum_long_side():
  assert figures.display_factor(128, 171) == 3  # 171 * 3 = 513 >= 512
  assert figures.display_factor(100, 100) == 6  # 5 * 100 < 512 <= 6 * 100
  assert figures.display_factor(600, 800) == 1


def test_enlarge_labels_repeats_every_pixel():
  labels = np.array([[1, 2], [3, 4]])
  np.testing.assert_array_equal(figures.enlarge_labels(labels, 2), [
      [1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
  masks = np.zeros([2, 2, 3], bool)
  masks[1, 0, 2] = True
  big = figures.enlarge_labels(masks, 3)
  assert big.shape == (2, 6, 9) and big[1, :3, 6:].all() and big.sum() == 9


def test_legend_entries_name_and_colour_each_class():
  names = figures.names_by_id(np.array([[2, 2], [-1, 0]]), ['wall', 'sky', 'car'])
  assert names == {0: 'wall', 2: 'car'}
  entries = figures.legend_entries(names)
  assert [name for name, _ in entries] == ['wall', 'car']
  np.testing.assert_array_equal(entries[1][1], visualization.class_color(2))


def test_side_by_side_keeps_panels_intact_and_the_legend_outside():
  height, width = 40, 60
  panels = [('input', np.full((height, width, 3), RED, np.uint8)),
            ('prediction', np.full((height, width, 3), BLUE, np.uint8))]
  legend = figures.legend_entries({5: 'a long class name'})
  figure = figures.side_by_side(panels, legend)
  top = figures.MARGIN + figures.FONT_SIZE + 6
  for index, (_, panel) in enumerate(panels):
    left = figures.MARGIN + index * (width + figures.MARGIN)
    np.testing.assert_array_equal(figure[top:top + height, left:left + width], panel)
  # Everything right of the panels is the legend: the swatch colour is there, once.
  legend_area = figure[:, figures.MARGIN + 2 * (width + figures.MARGIN):]
  swatch = np.all(legend_area == visualization.class_color(5), axis=-1)
  assert swatch.sum() >= (figures.SWATCH - 1) ** 2
  assert figure.shape[1] > 2 * (width + figures.MARGIN) + 100  # room for the name


def test_stack_pads_to_the_widest_figure_and_the_command_writes_it(tmp_path, capsys):
  small = np.zeros((10, 20, 3), np.uint8)
  wide = np.zeros((5, 30, 3), np.uint8)
  stacked = figures.stack([small, wide])
  assert stacked.shape == (15, 30, 3)
  assert (stacked[:10, 20:] == 255).all() and (stacked[:10, :20] == 0).all()
  paths = []
  for index, figure in enumerate((small, wide)):
    paths.append(str(tmp_path / f'{index}.png'))
    Image.fromarray(figure).save(paths[-1])
  output = str(tmp_path / 'figure.png')
  figures.main(['--output', output] + paths)
  np.testing.assert_array_equal(np.asarray(Image.open(output)), stacked)
  assert capsys.readouterr().out.strip() == output
