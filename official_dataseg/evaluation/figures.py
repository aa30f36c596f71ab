r"""Side-by-side figures, as the paper's qualitative results: input | prediction | ground truth.

The panels of one image share a legend of the classes they show, drawn beside them (never over
the scene) in a readable font. Small images are enlarged by a whole factor before the overlays are
drawn (label maps by repetition, so segment borders stay one display pixel wide) until the long
side is at least `MIN_LONG_SIDE`. `stack` puts several figures one above the other:

  python -m official_dataseg.evaluation.figures --output=figure.png a.png b.png ...
"""
import argparse
import math
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image, ImageDraw

from official_dataseg.evaluation import visualization

MIN_LONG_SIDE = 512
FONT_SIZE = 18
MARGIN = 12
SWATCH = 16
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)


def display_factor(height: int, width: int, min_long_side: int = MIN_LONG_SIDE) -> int:
  """The whole enlargement factor (>= 1) that brings the long side to `min_long_side` or more."""
  return max(1, math.ceil(min_long_side / max(height, width, 1)))


def enlarge_image(image: np.ndarray, factor: int) -> np.ndarray:
  """uint8 [H, W, 3] -> uint8 [H * factor, W * factor, 3], bilinear."""
  if factor == 1:
    return image
  height, width = image.shape[:2]
  return np.asarray(Image.fromarray(image).resize((width * factor, height * factor),
                                                  Image.BILINEAR))


def enlarge_labels(labels: np.ndarray, factor: int) -> np.ndarray:
  """[..., H, W] (label map or masks, any dtype) -> [..., H * factor, W * factor], repeated."""
  labels = np.asarray(labels)
  return np.repeat(np.repeat(labels, factor, axis=-2), factor, axis=-1)


def legend_entries(names_by_id: Dict[int, str]) -> List[Tuple[str, np.ndarray]]:
  """(name, colour) of each class id >= 0 of `{class id: name}`, in id order."""
  return [(name, visualization.class_color(class_id))
          for class_id, name in sorted(names_by_id.items()) if class_id >= 0]


def names_by_id(class_ids, class_names: Sequence[str]) -> Dict[int, str]:
  """{class id: name} of the distinct ids >= 0 in `class_ids` (any shape)."""
  return {int(c): visualization.class_name(class_names, int(c))
          for c in np.unique(np.asarray(class_ids)) if c >= 0}


def side_by_side(panels: Sequence[Tuple[str, np.ndarray]],
                 legend: Sequence[Tuple[str, np.ndarray]]) -> np.ndarray:
  """Titled panels in a row, and the legend in a column on their right.

  Args:
    panels: (title, uint8 [H, W, 3]) of equal size, e.g. input, prediction, ground truth.
    legend: (class name, RGB colour) entries (see `legend_entries`).

  Returns:
    uint8 [H_f, W_f, 3] on a white background.
  """
  font = visualization.font(FONT_SIZE)
  height, width = panels[0][1].shape[:2]
  line = FONT_SIZE + 6
  measure = ImageDraw.Draw(Image.new('RGB', (1, 1)))
  legend_width = (SWATCH + 8 + max(int(measure.textlength(name, font=font)) for name, _ in legend)
                  if legend else 0)
  top = MARGIN + line
  figure_width = MARGIN + len(panels) * (width + MARGIN) + (legend_width + MARGIN if legend else 0)
  figure_height = max(top + height, top + len(legend) * line) + MARGIN
  canvas = Image.new('RGB', (figure_width, figure_height), BACKGROUND)
  draw = ImageDraw.Draw(canvas)
  for index, (title, panel) in enumerate(panels):
    if panel.shape[:2] != (height, width):
      raise ValueError(f'panel {title!r} is {panel.shape[:2]}, expected {(height, width)}')
    left = MARGIN + index * (width + MARGIN)
    draw.text((left, MARGIN), title, fill=TEXT, font=font)
    canvas.paste(Image.fromarray(panel), (left, top))
  left = MARGIN + len(panels) * (width + MARGIN)
  for row, (name, color) in enumerate(legend):
    y = top + row * line
    draw.rectangle([left, y + 2, left + SWATCH, y + 2 + SWATCH],
                   fill=tuple(int(c) for c in color), outline=TEXT)
    draw.text((left + SWATCH + 8, y), name, fill=TEXT, font=font)
  return np.asarray(canvas)


def stack(figures: Sequence[np.ndarray]) -> np.ndarray:
  """Figures one above the other, left-aligned on a white background: uint8 [sum H, max W, 3]."""
  width = max(f.shape[1] for f in figures)
  rows = [np.concatenate([f, np.full((f.shape[0], width - f.shape[1], 3), BACKGROUND, np.uint8)],
                         axis=1) for f in figures]
  return np.concatenate(rows, axis=0)


def main(argv: Optional[Sequence[str]] = None) -> str:
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--output', required=True, help='PNG file to write.')
  parser.add_argument('figures', nargs='+', help='PNG figures, top to bottom.')
  args = parser.parse_args(argv)
  figures = []
  for path in args.figures:
    with Image.open(path) as image:
      figures.append(np.asarray(image.convert('RGB')))
  visualization.save_png(stack(figures), args.output)
  print(args.output)
  return args.output


if __name__ == '__main__':
  main(sys.argv[1:])
