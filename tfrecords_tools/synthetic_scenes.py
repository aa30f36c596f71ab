"""Procedural scenes for the built-in synthetic suite.

A scene is textured "stuff" (sky or wall on top; grass, road or water below,
sometimes split in two) with 1-5 "thing" instances painted over it. Every
class has its own shape AND colour, shared across the four synthetic
datasets (keyed by display name), so a small network learns them in a few
hundred steps and knowledge transfers between datasets. Instances may touch
and occlude each other; each keeps at least 40% of its pixels visible.
"""

import dataclasses
from typing import List, Sequence

import numpy as np

# Base RGB colours. Things use saturated colours far from the stuff colours.
STUFF_COLOURS = {
    'sky': (135, 195, 240), 'wall': (205, 185, 150), 'grass': (70, 150, 55),
    'road': (95, 95, 100), 'water': (35, 80, 165),
}
THING_COLOURS = {
    'person': (215, 30, 35), 'car': (30, 55, 215), 'dog': (125, 70, 30),
    'cat': (245, 145, 20), 'bird': (245, 230, 40), 'bottle': (0, 170, 165),
    'chair': (140, 40, 175), 'bicycle': (25, 25, 25),
}
TOP_STUFF = ('sky', 'wall')
BOTTOM_STUFF = ('grass', 'road', 'water')
_MIN_VISIBLE_FRACTION = 0.4
_MIN_VISIBLE_PIXELS = 30


@dataclasses.dataclass
class Scene:
  """One generated scene.

  Attributes:
    image: uint8 [H, W, 3].
    stuff_map: int32 [H, W] index into `stuff_names` (every pixel).
    stuff_names: stuff class names drawn.
    thing_names: [T] class name of each instance.
    instance_masks: bool [T, H, W] visible masks (disjoint).
    unlabelled: bool [H, W] pixels of an unlabelled "sign" (void).
  """
  image: np.ndarray
  stuff_map: np.ndarray
  stuff_names: List[str]
  thing_names: List[str]
  instance_masks: np.ndarray
  unlabelled: np.ndarray


def _ellipse(yy, xx, cy, cx, ry, rx):
  return ((yy - cy) / max(ry, 1)) ** 2 + ((xx - cx) / max(rx, 1)) ** 2 <= 1


def _box(yy, xx, y0, x0, y1, x1):
  return (yy >= y0) & (yy < y1) & (xx >= x0) & (xx < x1)


def thing_mask(name: str, height: int, width: int, cy: float, cx: float,
               size: float) -> np.ndarray:
  """bool [H, W] silhouette of class `name` centred at (cy, cx)."""
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
  s = size
  if name == 'person':  # Tall ellipse body + round head.
    return (_ellipse(yy, xx, cy + 0.1 * s, cx, 0.4 * s, 0.17 * s)
            | _ellipse(yy, xx, cy - 0.38 * s, cx, 0.11 * s, 0.11 * s))
  if name == 'car':  # Wide rounded box + cabin.
    body = _box(yy, xx, cy - 0.12 * s, cx - 0.5 * s, cy + 0.18 * s,
                cx + 0.5 * s)
    cabin = _ellipse(yy, xx, cy - 0.12 * s, cx, 0.16 * s, 0.28 * s)
    return body | cabin
  if name == 'dog':  # Horizontal blob + head.
    return (_ellipse(yy, xx, cy, cx, 0.22 * s, 0.38 * s)
            | _ellipse(yy, xx, cy - 0.2 * s, cx + 0.36 * s, 0.15 * s,
                       0.15 * s))
  if name == 'cat':  # Round body with two triangular ears.
    body = _ellipse(yy, xx, cy + 0.05 * s, cx, 0.3 * s, 0.3 * s)
    ear_y = cy - 0.25 * s - (yy - (cy - 0.45 * s))
    ears = ((yy > cy - 0.45 * s) & (yy < cy - 0.15 * s)
            & ((np.abs(xx - (cx - 0.18 * s)) < 0.5 * (cy - 0.15 * s - ear_y))
               | (np.abs(xx - (cx + 0.18 * s)) < 0.5 * (cy - 0.15 * s - ear_y))))
    return body | ears
  if name == 'bird':  # Diamond with wings.
    return ((np.abs(yy - cy) / (0.2 * s) + np.abs(xx - cx) / (0.45 * s) <= 1)
            | (np.abs(yy - cy) / (0.35 * s) + np.abs(xx - cx) / (0.15 * s)
               <= 1))
  if name == 'bottle':  # Narrow body + narrow neck.
    return (_box(yy, xx, cy - 0.15 * s, cx - 0.13 * s, cy + 0.45 * s,
                 cx + 0.13 * s)
            | _box(yy, xx, cy - 0.45 * s, cx - 0.05 * s, cy - 0.15 * s,
                   cx + 0.05 * s))
  if name == 'chair':  # Back, seat and two legs.
    return (_box(yy, xx, cy - 0.45 * s, cx - 0.3 * s, cy + 0.05 * s,
                 cx - 0.18 * s)
            | _box(yy, xx, cy - 0.05 * s, cx - 0.3 * s, cy + 0.07 * s,
                   cx + 0.3 * s)
            | _box(yy, xx, cy + 0.07 * s, cx - 0.3 * s, cy + 0.45 * s,
                   cx - 0.2 * s)
            | _box(yy, xx, cy + 0.07 * s, cx + 0.2 * s, cy + 0.45 * s,
                   cx + 0.3 * s))
  if name == 'bicycle':  # Two thick rings joined by a bar.
    rings = np.zeros((height, width), bool)
    for wx in (cx - 0.27 * s, cx + 0.27 * s):
      distance = np.hypot(yy - (cy + 0.1 * s), xx - wx)
      rings |= (distance <= 0.22 * s) & (distance >= 0.1 * s)
    bar = _box(yy, xx, cy - 0.1 * s, cx - 0.27 * s, cy, cx + 0.27 * s)
    return rings | bar
  raise ValueError(f'no synthetic shape for class "{name}"')


def _stuff_texture(name: str, rng, height: int, width: int) -> np.ndarray:
  """float32 [H, W, 3] texture of a stuff class."""
  base = np.array(STUFF_COLOURS[name], np.float32)
  yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
  texture = np.broadcast_to(base, (height, width, 3)).copy()
  if name == 'sky':  # Lighter towards the top.
    texture += (20.0 * (1.0 - yy / height))[..., None]
  elif name == 'water':  # Horizontal waves.
    texture += (15.0 * np.sin(yy * 0.9 + 0.3 * np.sin(xx * 0.2)))[..., None]
  elif name == 'wall':  # Brick rows.
    texture -= (25.0 * ((yy % 8) < 1))[..., None]
  elif name == 'road':  # Dashed lane mark.
    texture += (120.0 * ((np.abs(yy - height * 0.8) < 1.5)
                         & ((xx % 16) < 8)))[..., None]
  noise_scale = 22.0 if name == 'grass' else 6.0
  return texture + rng.normal(0, noise_scale, (height, width, 3))


def _place_instance(rng, name, height, width, owner, original_areas, anchor):
  """Returns a silhouette that keeps earlier instances visible, or None."""
  for _ in range(6):
    size = rng.uniform(0.3, 0.55) * min(height, width)
    if anchor is not None and rng.random() < 0.5:
      # Touch / occlude the previous instance.
      cy = anchor[0] + rng.uniform(-0.4, 0.4) * size
      cx = anchor[1] + rng.uniform(-0.6, 0.6) * size
    else:
      cy = rng.uniform(0.3, 0.85) * height
      cx = rng.uniform(0.15, 0.85) * width
    mask = thing_mask(name, height, width, cy, cx, size)
    if mask.sum() < 2 * _MIN_VISIBLE_PIXELS:
      continue
    remaining = np.bincount(owner[~mask].ravel() + 1,
                            minlength=len(original_areas) + 1)[1:]
    if all(r >= max(_MIN_VISIBLE_FRACTION * a, _MIN_VISIBLE_PIXELS)
           for r, a in zip(remaining, original_areas)):
      return mask, (cy, cx)
  return None, anchor


def generate_scene(rng: np.random.Generator, height: int, width: int,
                   stuff_names: Sequence[str],
                   thing_names: Sequence[str]) -> Scene:
  """Draws one scene with stuff from `stuff_names`, things from `thing_names`.

  Args:
    rng: the random generator (the only source of randomness).
    height, width: image size.
    stuff_names: stuff classes that may be drawn (at least one top or bottom).
    thing_names: thing classes that may be drawn (non-empty).
  """
  top = [n for n in TOP_STUFF if n in stuff_names] or list(stuff_names[:1])
  bottom = [n for n in BOTTOM_STUFF if n in stuff_names] or top
  names = sorted(set(top) | set(bottom))
  stuff_map = np.zeros((height, width), np.int32)
  horizon = int(rng.uniform(0.3, 0.55) * height)
  stuff_map[:horizon] = names.index(top[rng.integers(len(top))])
  first = bottom[rng.integers(len(bottom))]
  stuff_map[horizon:] = names.index(first)
  if len(bottom) > 1 and rng.random() < 0.5:
    second = [n for n in bottom if n != first][rng.integers(len(bottom) - 1)]
    split = int(rng.uniform(0.3, 0.7) * width)
    stuff_map[horizon:, split:] = names.index(second)
  image = np.zeros((height, width, 3), np.float32)
  for index, name in enumerate(names):
    region = stuff_map == index
    if region.any():
      image[region] = _stuff_texture(name, rng, height, width)[region]

  unlabelled = np.zeros((height, width), bool)
  if rng.random() < 0.25:  # A grey "sign" nobody labelled (void / ignore).
    y0, x0 = rng.integers(0, height - 12), rng.integers(0, width - 12)
    unlabelled[y0:y0 + 10, x0:x0 + 10] = True
    image[unlabelled] = 160.0

  owner = np.full((height, width), -1, np.int32)
  instance_names, original_areas, anchor = [], [], None
  for _ in range(rng.integers(1, 6)):
    name = thing_names[rng.integers(len(thing_names))]
    mask, anchor = _place_instance(rng, name, height, width, owner,
                                   original_areas, anchor)
    if mask is None:
      continue
    owner[mask] = len(instance_names)
    instance_names.append(name)
    original_areas.append(int(mask.sum()))
    colour = np.array(THING_COLOURS[name], np.float32)
    shade = rng.uniform(0.85, 1.1)
    image[mask] = colour * shade + rng.normal(0, 10, (int(mask.sum()), 3))
  unlabelled &= owner < 0
  instance_masks = (owner[None] == np.arange(len(instance_names))[:, None,
                                                                   None])
  image = np.clip(image + rng.normal(0, 3, image.shape), 0, 255)
  return Scene(image.astype(np.uint8), stuff_map, names, instance_names,
               instance_masks, unlabelled)
