"""Readers and writers for the standard evaluation file formats.

- COCO panoptic: a JSON file with `annotations` [{image_id, file_name,
  segments_info: [{id, category_id, iscrowd, ...}]}] and `categories`, plus a
  folder of RGB PNGs where segment id = R + 256 G + 256^2 B (0 = void).
- Semantic: a folder of single-channel label PNGs (one class index a pixel).
"""

import json
import os
from typing import Any, Dict, List

import numpy as np
from PIL import Image

from official_dataseg.utils import atomic_write


def rgb_to_segment_id(rgb: np.ndarray) -> np.ndarray:
  """[H, W, 3] uint8 COCO panoptic colours -> [H, W] int64 segment ids."""
  rgb = np.asarray(rgb).astype(np.int64)
  return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def segment_id_to_rgb(segment_ids: np.ndarray) -> np.ndarray:
  """[H, W] int segment ids (< 256^3) -> [H, W, 3] uint8 colours."""
  segment_ids = np.asarray(segment_ids).astype(np.int64)
  if segment_ids.min(initial=0) < 0 or segment_ids.max(initial=0) >= 256 ** 3:
    raise ValueError('segment_id_to_rgb: ids must be in [0, 256^3).')
  return np.stack([segment_ids % 256, segment_ids // 256 % 256,
                   segment_ids // 65536], axis=-1).astype(np.uint8)


def read_json(path: str) -> Any:
  if not os.path.isfile(path):
    raise FileNotFoundError(f'JSON file {path} does not exist.')
  with open(path) as f:
    return json.load(f)


def read_panoptic_png(path: str) -> np.ndarray:
  """Reads a COCO panoptic PNG into [H, W] int64 segment ids."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Panoptic PNG {path} does not exist.')
  rgb = np.asarray(Image.open(path).convert('RGB'))
  return rgb_to_segment_id(rgb)


def read_label_png(path: str) -> np.ndarray:
  """Reads a single-channel label PNG into [H, W] int64."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Label PNG {path} does not exist.')
  image = Image.open(path)
  if image.mode not in ('L', 'P', 'I', 'I;16', 'I;16B', 'I;16L'):
    raise ValueError(
        f'Label PNG {path} has mode {image.mode}; expected a single-channel '
        '(L, P or 16-bit) label image.')
  return np.asarray(image).astype(np.int64)


def panoptic_annotations_by_image(panoptic_json: Dict[str, Any],
                                  path: str) -> Dict[Any, Dict[str, Any]]:
  """Indexes the `annotations` of a COCO panoptic JSON by image_id."""
  if 'annotations' not in panoptic_json:
    raise ValueError(f'{path}: no `annotations` field (COCO panoptic JSON).')
  by_image = {}
  for annotation in panoptic_json['annotations']:
    for key in ('image_id', 'file_name', 'segments_info'):
      if key not in annotation:
        raise ValueError(f'{path}: an annotation lacks {key!r}.')
    by_image[annotation['image_id']] = annotation
  return by_image


def list_pngs(folder: str) -> List[str]:
  if not os.path.isdir(folder):
    raise FileNotFoundError(f'Folder {folder} does not exist.')
  return sorted(f for f in os.listdir(folder) if f.lower().endswith('.png'))


def write_panoptic_prediction(folder: str, file_name: str,
                              segment_map: np.ndarray) -> None:
  """Writes [H, W] segment ids as a COCO panoptic PNG (atomic rename)."""
  with atomic_write.atomic_write(os.path.join(folder, file_name), 'wb') as f:
    Image.fromarray(segment_id_to_rgb(segment_map)).save(f, format='PNG')
