"""Overlay images of semantic, panoptic and instance results.

Colours are deterministic: class c always gets the same colour (golden-ratio
hue steps), and thing instances of one class get lighter/darker variants of
it. Everything is NumPy + PIL on the host; outputs are uint8 [H, W, 3]. With
`legend=True` the classes are listed in a corner of the overlay (the small
TensorBoard summaries); `figures.py` lists them beside the panels instead.
"""

import colorsys
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from official_dataseg.utils import atomic_write
from official_dataseg import common

_ALPHA = 0.5
_VOID_COLOR = (0, 0, 0)
LABEL_FONT_SIZE = 14


def font(size: int) -> ImageFont.ImageFont:
  """PIL's scalable default font at `size` px (its small bitmap font on old Pillow)."""
  try:
    return ImageFont.load_default(size=size)
  except TypeError:  # Pillow < 10.1.
    return ImageFont.load_default()


def class_color(class_index: int) -> np.ndarray:
  """Deterministic, well-spread RGB uint8 [3] colour of a class index."""
  hue = (class_index * 0.618033988749895) % 1.0
  saturation = 0.65 + 0.35 * ((class_index // 7) % 2)
  value = 0.95 - 0.25 * ((class_index // 3) % 2)
  return np.round(255 * np.array(
      colorsys.hsv_to_rgb(hue, saturation, value))).astype(np.uint8)


def _instance_color(class_index: int, instance_id: int) -> np.ndarray:
  base = class_color(class_index).astype(np.float64)
  factor = 0.6 + 0.8 * ((instance_id * 0.381966) % 1.0)  # 0.6 .. 1.4
  return np.clip(base * factor, 0, 255).astype(np.uint8)


def _check_image(image: np.ndarray) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
    raise ValueError(
        f'Expected a uint8 [H, W, 3] image, got {image.dtype} {image.shape}.')
  return image


def _blend(image: np.ndarray, colors: np.ndarray,
           painted: np.ndarray) -> np.ndarray:
  blended = image.astype(np.float64)
  blended[painted] = ((1 - _ALPHA) * blended[painted] +
                      _ALPHA * colors[painted].astype(np.float64))
  return np.round(blended).astype(np.uint8)


def _draw_legend(image: np.ndarray, entries) -> np.ndarray:
  """Draws (name, colour) entries in a box at the top-left corner."""
  if not entries:
    return image
  canvas = Image.fromarray(image)
  draw = ImageDraw.Draw(canvas)
  small_font = ImageFont.load_default()
  line_height = 12
  width = 16 + max(int(draw.textlength(name, font=small_font)) for name, _ in entries)
  draw.rectangle([0, 0, width + 4, line_height * len(entries) + 4],
                 fill=(0, 0, 0))
  for row, (name, color) in enumerate(entries):
    top = 2 + row * line_height
    draw.rectangle([2, top + 1, 11, top + 10], fill=tuple(int(c) for c in color))
    draw.text((14, top), name, fill=(255, 255, 255), font=small_font)
  return np.asarray(canvas)


def class_name(class_names: Sequence[str], class_index: int) -> str:
  """The name of `class_index`, or 'class <index>' outside `class_names`."""
  if 0 <= class_index < len(class_names):
    return str(class_names[class_index])
  return f'class {class_index}'


def overlay_semantic(image: np.ndarray, label_map: np.ndarray,
                     class_names: Sequence[str],
                     ignore_label: int = common.VOID_LABEL, legend: bool = True) -> np.ndarray:
  """Colours each pixel by its class.

  Args:
    image: uint8 [H, W, 3].
    label_map: [H, W] int class index; `ignore_label` and negative values
      are left unpainted.
    class_names: names indexed by class.
    ignore_label: label not drawn.
    legend: list the classes present in the top-left corner.

  Returns:
    uint8 [H, W, 3].
  """
  image = _check_image(image)
  label_map = np.asarray(label_map).astype(np.int64)
  painted = (label_map != ignore_label) & (label_map >= 0)
  present = np.unique(label_map[painted])
  colors = np.zeros_like(image)
  for c in present:
    colors[label_map == c] = class_color(int(c))
  overlaid = _blend(image, colors, painted)
  if not legend:
    return overlaid
  return _draw_legend(overlaid, [(class_name(class_names, int(c)), class_color(int(c)))
                                 for c in present])


def overlay_panoptic(image: np.ndarray, category_map: np.ndarray,
                     instance_map: np.ndarray, class_names: Sequence[str],
                     void_label: int = -1, legend: bool = True) -> np.ndarray:
  """Colours stuff by class and each thing instance by a class variant.

  Args:
    image: uint8 [H, W, 3].
    category_map: [H, W] int class index, `void_label` = void.
    instance_map: [H, W] int instance id, 0 for stuff and void.
    class_names: names indexed by class.
    void_label: category value of void pixels.
    legend: list the classes present in the top-left corner.

  Returns:
    uint8 [H, W, 3] with instance outlines.
  """
  image = _check_image(image)
  category_map = np.asarray(category_map).astype(np.int64)
  instance_map = np.asarray(instance_map).astype(np.int64)
  painted = category_map != void_label
  colors = np.zeros_like(image)
  pairs = np.unique(np.stack([category_map[painted], instance_map[painted]]),
                    axis=1)
  for class_index, instance_id in pairs.T:
    region = (category_map == class_index) & (instance_map == instance_id)
    colors[region] = (_instance_color(int(class_index), int(instance_id))
                      if instance_id else class_color(int(class_index)))
  overlaid = _blend(image, colors, painted)
  # Thin white borders between segments make touching instances readable.
  segment = category_map * (instance_map.max(initial=0) + 1) + instance_map
  border = np.zeros_like(painted)
  border[1:] |= segment[1:] != segment[:-1]
  border[:, 1:] |= segment[:, 1:] != segment[:, :-1]
  overlaid[border & painted] = 255
  present = np.unique(category_map[painted])
  if not legend:
    return overlaid
  return _draw_legend(overlaid, [(class_name(class_names, int(c)), class_color(int(c)))
                                 for c in present])


def overlay_instances(image: np.ndarray, masks: np.ndarray,
                      classes: np.ndarray, scores: Optional[np.ndarray],
                      class_names: Sequence[str],
                      score_threshold: float = 0.5,
                      max_instances: Optional[int] = 100,
                      legend: bool = True) -> np.ndarray:
  """Draws masks, boxes and "name score" labels of scored instances.

  Args:
    image: uint8 [H, W, 3].
    masks: [K, H, W] bool/0-1.
    classes: [K] int class index.
    scores: [K] float, or None (ground truth: every instance, labelled by name).
    class_names: names indexed by class.
    score_threshold: instances with a lower score are not drawn.
    max_instances: at most this many, highest scores first.
    legend: list the classes drawn in the top-left corner.

  Returns:
    uint8 [H, W, 3].
  """
  image = _check_image(image)
  masks = np.asarray(masks) > 0
  with_scores = scores is not None
  if not with_scores:
    scores = np.ones([len(masks)], np.float32)
  order = [k for k in np.argsort(-np.asarray(scores), kind='stable')
           if scores[k] >= score_threshold and masks[k].any()]
  order = order[:max_instances]
  overlaid = image.copy()
  # Lowest score first so that the best instances end up on top.
  for rank, k in reversed(list(enumerate(order))):
    colors = np.zeros_like(image)
    colors[masks[k]] = _instance_color(int(classes[k]), rank + 1)
    overlaid = _blend(overlaid, colors, masks[k])
  canvas = Image.fromarray(overlaid)
  draw = ImageDraw.Draw(canvas)
  label_font = font(LABEL_FONT_SIZE)
  for k in order:
    rows, cols = np.nonzero(masks[k])
    color = tuple(int(c) for c in class_color(int(classes[k])))
    draw.rectangle([cols.min(), rows.min(), cols.max(), rows.max()],
                   outline=color, width=2)
    label = class_name(class_names, int(classes[k]))
    if with_scores:
      label = f'{label} {scores[k]:.2f}'
    # Dark outline: the label stays readable on any background.
    draw.text((int(cols.min()) + 3, int(rows.min()) + 2), label, fill=color, font=label_font,
              stroke_width=2, stroke_fill=(0, 0, 0))
  if not legend:
    return np.asarray(canvas)
  drawn = sorted({int(classes[k]) for k in order})
  return _draw_legend(np.asarray(canvas), [(class_name(class_names, c), class_color(c))
                                           for c in drawn])


def save_png(image: np.ndarray, path: str) -> None:
  """Writes a uint8 image as PNG atomically (temporary file, then rename)."""
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise ValueError(f'save_png: {path}: expected uint8, got {image.dtype}.')
  with atomic_write.atomic_write(path, 'wb') as f:
    Image.fromarray(image).save(f, format='PNG')
