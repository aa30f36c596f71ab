"""The built-in synthetic multi-dataset suite, written in the REAL raw formats.

  python -m tfrecords_tools.synthetic_suite --output_dir DIR --seed 0 \
      --num_train 64 --num_val 16 [--tfrecord_dir TFDIR]

writes four small datasets whose class lists are exactly those of
`official_dataseg/text/vocabularies/synthetic_{ade,coco,o365,voc}.json`:
  ade/ADEChallengeData2016/{images,annotations}/{training,validation}/ + objectInfo150.txt
  coco/{train2017,val2017}/, coco/annotations/panoptic_{train,val}2017.json + PNG folders
  o365/images/{train,val}/patch0/, o365/annotations/zhiyuan_objv2_{train,val}.json
      (val: COCO-RLE masks, a few annotations marked "skipped")
  voc/VOCdevkit/VOC2012/{JPEGImages,SegmentationClass,ImageSets/Segmentation}
plus an ADE-panoptic-like validation split for the semantic -> panoptic
weak-transfer evaluation: the SAME scenes as ADE val (same images, in ADE's
images/validation) in COCO panoptic format with the synthetic_ade ids:
  ade/ADEChallengeData2016/ade20k_panoptic_val.json + ade20k_panoptic_val/*.png
so the real converters run on them. With --tfrecord_dir it also converts
them (`convert_all`; the panoptic split to synthetic_ade_panoptic_val-*).

--num_train / --num_val take one count for every dataset (`64`) or one per
dataset (`ade=24,coco=64,o365=128,voc=64`; `generate` takes an int or a
dict). Each dataset's and split's images depend only on (seed, dataset,
split), so a dataset's first K images do not change with the counts; the
output depends only on the seed and the counts.
"""

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np
from PIL import Image
from pycocotools import mask as mask_api
from scipy import ndimage

from official_dataseg.evaluation import file_formats
from official_dataseg.text import vocabulary as text_vocabulary
from tfrecords_tools import synthetic_scenes

DATASETS = ('ade', 'coco', 'o365', 'voc')
_SPLITS = ('train', 'val')
_SIZE_RANGE = (96, 160)
_JPEG_QUALITY = 95
_COCO_VAL_ID_OFFSET = 100000
_SKIPPED_FRACTION = 0.1  # O365 val annotations marked as rater-skipped.
_CROWD_FRACTION = 0.1    # COCO thing segments marked as crowd.


def vocabulary_path(name: str) -> str:
  """Path of official_dataseg/text/vocabularies/synthetic_<name>.json."""
  return text_vocabulary.vocabulary_path(f'synthetic_{name}')


def _load_classes(name: str) -> List[Dict[str, Any]]:
  return [c.to_json_dict() for c in
          text_vocabulary.load_vocabulary(f'synthetic_{name}').classes]


def _save_jpeg(path: str, image: np.ndarray):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(image).save(path, format='JPEG', quality=_JPEG_QUALITY)


def _save_png(path: str, pil_image: Image.Image):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  pil_image.save(path, format='PNG')


def _write_json(path: str, content: Any):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    json.dump(content, f, indent=1, sort_keys=True)


def _scenes(seed: int, dataset: str, split: str, count: int, classes):
  """Yields (i, scene); randomness depends on (seed, dataset, split) only."""
  rng = np.random.default_rng(
      [seed, DATASETS.index(dataset), _SPLITS.index(split)])
  names = [c['display_name'] for c in classes]
  things = [n for n in names if n in synthetic_scenes.THING_COLOURS]
  # Stuff outside the vocabulary (O365, VOC) is drawn but not labelled.
  stuff = [n for n in names if n in synthetic_scenes.STUFF_COLOURS] or list(
      synthetic_scenes.STUFF_COLOURS)
  for i in range(count):
    height, width = rng.integers(_SIZE_RANGE[0], _SIZE_RANGE[1] + 1, size=2)
    yield i, synthetic_scenes.generate_scene(rng, int(height), int(width),
                                             stuff, things)


def _label_map(scene, id_of: Dict[str, int], background: int,
               unlabelled_value: int) -> np.ndarray:
  """int32 [H, W] class ids: stuff (or `background`), things on top."""
  stuff_ids = np.array([id_of.get(n, background) for n in scene.stuff_names])
  labels = stuff_ids[scene.stuff_map]
  labels[scene.unlabelled] = unlabelled_value
  for name, mask in zip(scene.thing_names, scene.instance_masks):
    labels[mask] = id_of[name]
  return labels.astype(np.int32)


def _xywh(mask: np.ndarray) -> List[int]:
  ys, xs = np.nonzero(mask)
  return [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1),
          int(ys.max() - ys.min() + 1)]


def write_ade(root: str, seed: int, counts: Dict[str, int]) -> Dict[str, Any]:
  classes = _load_classes('ade')
  id_of = {c['display_name']: c['id'] for c in classes}
  base = os.path.join(root, 'ade', 'ADEChallengeData2016')
  folders = {'train': 'training', 'val': 'validation'}
  pixel_counts = np.zeros(max(id_of.values()) + 1, np.int64)
  image_counts = {split: np.zeros_like(pixel_counts) for split in _SPLITS}
  for split in _SPLITS:
    for i, scene in _scenes(seed, 'ade', split, counts[split], classes):
      name = f'ADE_{split}_{i + 1:08d}'
      labels = _label_map(scene, id_of, background=0, unlabelled_value=0)
      _save_jpeg(os.path.join(base, 'images', folders[split], name + '.jpg'),
                 scene.image)
      _save_png(os.path.join(base, 'annotations', folders[split],
                             name + '.png'),
                Image.fromarray(labels.astype(np.uint8)))
      pixel_counts += np.bincount(labels.ravel(), minlength=len(pixel_counts))
      image_counts[split][np.unique(labels)] += 1
  total = max(pixel_counts[1:].sum(), 1)
  rows = ['Idx\tRatio\tTrain\tVal\tName']
  rows += [f'{c["id"]}\t{pixel_counts[c["id"]] / total:.4f}\t'
           f'{image_counts["train"][c["id"]]}\t{image_counts["val"][c["id"]]}'
           f'\t{c["name"]}' for c in classes]
  with open(os.path.join(base, 'objectInfo150.txt'), 'w') as f:
    f.write('\n'.join(rows) + '\n')
  return {split: {'images_dir': os.path.join(base, 'images', folders[split]),
                  'annotations': os.path.join(base, 'annotations',
                                              folders[split])}
          for split in _SPLITS}


def _panoptic_categories(classes) -> List[Dict[str, Any]]:
  return [{'id': c['id'], 'name': c['name'], 'isthing': int(c['is_thing']),
           'supercategory': 'thing' if c['is_thing'] else 'stuff',
           'color': [c['id'] % 256, 100, 200]} for c in classes]


def _write_panoptic_split(entries, classes, json_path: str, png_dir: str,
                          description: str, seed: int, crowd_fraction: float,
                          jpeg_dir: Optional[str] = None):
  """Writes one split in COCO panoptic format (JSON + RGB-encoded PNGs).

  Args:
    entries: iterable of (image_id, file_stem, scene).
    classes: the vocabulary's classes (category ids = vocabulary ids).
    json_path: the panoptic JSON to write.
    png_dir: folder of the panoptic PNGs (`<file_stem>.png`).
    description: the JSON's info.description.
    seed: suite seed (crowd draws: rng [seed, 7, image_id], ints only).
    crowd_fraction: probability that a thing segment is marked crowd
      (0: iscrowd always 0, no draw).
    jpeg_dir: if set, the images are also saved there (`<file_stem>.jpg`).
  """
  id_of = {c['display_name']: c['id'] for c in classes}
  images, annotations = [], []
  for image_id, file_stem, scene in entries:
    height, width = scene.stuff_map.shape
    panoptic_ids = np.zeros((height, width), np.int64)
    segments = []
    regions = [(id_of[n], scene.stuff_map == k, False)
               for k, n in enumerate(scene.stuff_names)]
    regions = [(cid, m & ~scene.unlabelled & ~scene.instance_masks.any(0), t)
               for cid, m, t in regions]
    regions += [(id_of[n], m, True)
                for n, m in zip(scene.thing_names, scene.instance_masks)]
    rng = (np.random.default_rng([seed, 7, image_id]) if crowd_fraction > 0
           else None)
    for category_id, mask, is_thing in regions:
      if not mask.any():
        continue
      # R = category id, G = segment number: unique within the image.
      segment_id = category_id + 256 * (len(segments) + 1)
      panoptic_ids[mask] = segment_id
      crowd = is_thing and rng is not None and rng.random() < crowd_fraction
      segments.append({'id': segment_id, 'category_id': category_id,
                       'iscrowd': int(crowd), 'bbox': _xywh(mask),
                       'area': int(mask.sum())})
    rgb = file_formats.segment_id_to_rgb(panoptic_ids)
    if jpeg_dir is not None:
      _save_jpeg(os.path.join(jpeg_dir, file_stem + '.jpg'), scene.image)
    _save_png(os.path.join(png_dir, file_stem + '.png'), Image.fromarray(rgb))
    images.append({'id': image_id, 'file_name': file_stem + '.jpg',
                   'height': height, 'width': width})
    annotations.append({'image_id': image_id, 'file_name': file_stem + '.png',
                        'segments_info': segments})
  _write_json(json_path, {'info': {'description': description},
                          'licenses': [], 'images': images,
                          'annotations': annotations,
                          'categories': _panoptic_categories(classes)})


def write_coco(root: str, seed: int, counts: Dict[str, int]) -> Dict[str, Any]:
  classes = _load_classes('coco')
  base = os.path.join(root, 'coco')
  paths = {}
  for split in _SPLITS:
    offset = 1 if split == 'train' else _COCO_VAL_ID_OFFSET
    entries = ((offset + i, f'{offset + i:012d}', scene) for i, scene in
               _scenes(seed, 'coco', split, counts[split], classes))
    json_path = os.path.join(base, 'annotations',
                             f'panoptic_{split}2017.json')
    _write_panoptic_split(
        entries, classes, json_path,
        png_dir=os.path.join(base, 'annotations', f'panoptic_{split}2017'),
        description='synthetic COCO panoptic', seed=seed,
        crowd_fraction=_CROWD_FRACTION,
        jpeg_dir=os.path.join(base, f'{split}2017'))
    paths[split] = {'images_dir': os.path.join(base, f'{split}2017'),
                    'annotations': json_path}
  return paths


def write_ade_panoptic(root: str, seed: int,
                       counts: Dict[str, int]) -> Dict[str, Any]:
  """The ADE val scenes in COCO panoptic format (Mask2Former's layout).

  Regenerates the scenes of `write_ade`'s val split (the same random stream,
  so the same images, which stay in ADE's validation folder) and writes
  `ade20k_panoptic_val.json` + `ade20k_panoptic_val/*.png` with the
  synthetic_ade ids; never crowd, unlabelled pixels void (0).
  """
  classes = _load_classes('ade')
  base = os.path.join(root, 'ade', 'ADEChallengeData2016')
  entries = ((f'ADE_val_{i + 1:08d}', f'ADE_val_{i + 1:08d}', scene)
             for i, scene in _scenes(seed, 'ade', 'val', counts['val'],
                                     classes))
  json_path = os.path.join(base, 'ade20k_panoptic_val.json')
  png_dir = os.path.join(base, 'ade20k_panoptic_val')
  _write_panoptic_split(entries, classes, json_path, png_dir,
                        description='synthetic ADE20K panoptic', seed=seed,
                        crowd_fraction=0.0)
  return {'val': {'images_dir': os.path.join(base, 'images', 'validation'),
                  'annotations': json_path, 'panoptic_masks_dir': png_dir}}


def write_o365(root: str, seed: int, counts: Dict[str, int]) -> Dict[str, Any]:
  classes = _load_classes('o365')
  id_of = {c['display_name']: c['id'] for c in classes}
  categories = [{'id': c['id'], 'name': c['name']} for c in classes]
  base = os.path.join(root, 'o365')
  paths, annotation_id = {}, 1
  for split in _SPLITS:
    images, annotations = [], []
    offset = 1 if split == 'train' else 1 + counts['train']
    rng = np.random.default_rng([seed, 11, _SPLITS.index(split)])
    for i, scene in _scenes(seed, 'o365', split, counts[split], classes):
      image_id = offset + i
      name = f'objects365_v2_{image_id:08d}.jpg'
      _save_jpeg(os.path.join(base, 'images', split, 'patch0', name),
                 scene.image)
      height, width = scene.stuff_map.shape
      # Objects365 v2 lists paths that differ from the unpacked layout.
      images.append({'id': image_id, 'file_name': f'images/v2/patch0/{name}',
                     'height': height, 'width': width})
      for thing, mask in zip(scene.thing_names, scene.instance_masks):
        bbox = _xywh(mask)
        annotation = {'id': annotation_id, 'image_id': image_id,
                      'category_id': id_of[thing], 'bbox': bbox,
                      'area': bbox[2] * bbox[3], 'iscrowd': 0}
        annotation_id += 1
        if split == 'val':
          if rng.random() < _SKIPPED_FRACTION:
            annotation['skipped'] = True
          else:
            rle = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
            annotation['segmentation'] = {'size': rle['size'],
                                          'counts': rle['counts'].decode()}
        annotations.append(annotation)
    json_path = os.path.join(base, 'annotations',
                             f'zhiyuan_objv2_{split}.json')
    _write_json(json_path, {'images': images, 'annotations': annotations,
                            'categories': categories})
    paths[split] = {'images_dir': os.path.join(base, 'images', split),
                    'annotations': json_path}
  return paths


def voc_colormap() -> np.ndarray:
  """uint8 [256, 3]: the PASCAL VOC palette (bits of the index interleaved)."""
  colormap = np.zeros((256, 3), np.uint8)
  for index in range(256):
    value, rgb = index, [0, 0, 0]
    for bit in range(8):
      for channel in range(3):
        rgb[channel] |= ((value >> channel) & 1) << (7 - bit)
      value >>= 3
    colormap[index] = rgb
  return colormap


def write_voc(root: str, seed: int, counts: Dict[str, int]) -> Dict[str, Any]:
  classes = _load_classes('voc')
  id_of = {c['display_name']: c['id'] for c in classes}
  base = os.path.join(root, 'voc', 'VOCdevkit', 'VOC2012')
  palette = voc_colormap().ravel().tolist()
  names = {}
  for split in _SPLITS:
    offset = 1 if split == 'train' else 1 + counts['train']
    names[split] = []
    for i, scene in _scenes(seed, 'voc', split, counts[split], classes):
      name = f'2012_{offset + i:06d}'
      labels = _label_map(scene, id_of, background=id_of['background'],
                          unlabelled_value=id_of['background'])
      # VOC marks a band around every object boundary as 255 (ignore).
      edges = np.zeros(labels.shape, bool)
      edges[:-1] |= labels[:-1] != labels[1:]
      edges[1:] |= labels[:-1] != labels[1:]
      edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
      edges[:, 1:] |= labels[:, :-1] != labels[:, 1:]
      labels[ndimage.binary_dilation(edges)] = 255
      png = Image.fromarray(labels.astype(np.uint8))
      png.putpalette(palette)  # Turns the 'L' image into a palette image.
      _save_jpeg(os.path.join(base, 'JPEGImages', name + '.jpg'), scene.image)
      _save_png(os.path.join(base, 'SegmentationClass', name + '.png'), png)
      names[split].append(name)
    list_path = os.path.join(base, 'ImageSets', 'Segmentation', split + '.txt')
    os.makedirs(os.path.dirname(list_path), exist_ok=True)
    with open(list_path, 'w') as f:
      f.write('\n'.join(names[split]) + '\n')
  return {split: {'images_dir': os.path.join(base, 'JPEGImages'),
                  'annotations': os.path.join(base, 'SegmentationClass'),
                  'split': split, 'vocabulary': vocabulary_path('voc')}
          for split in _SPLITS}


Counts = Union[int, Mapping[str, int]]


def split_counts(num_train: Counts, num_val: Counts
                 ) -> Dict[str, Dict[str, int]]:
  """{dataset: {'train': n, 'val': n}} from ints or {dataset: count} dicts.

  Raises:
    ValueError: a dict whose keys are not exactly DATASETS (unknown and
      missing keys named), or a count that is not an int >= 0.
  """
  per_split = {}
  for split, value in (('train', num_train), ('val', num_val)):
    if isinstance(value, Mapping):
      unknown = sorted(set(value) - set(DATASETS))
      missing = [d for d in DATASETS if d not in value]
      if unknown or missing:
        raise ValueError(
            f'num_{split}: a dict needs exactly the keys {list(DATASETS)}; '
            f'unknown keys {unknown}, missing keys {missing}')
      per_split[split] = {d: value[d] for d in DATASETS}
    else:
      per_split[split] = {d: value for d in DATASETS}
    for dataset, count in per_split[split].items():
      if (isinstance(count, bool) or not isinstance(count, (int, np.integer))
          or count < 0):
        raise ValueError(f'num_{split}[{dataset!r}] must be an int >= 0, got '
                         f'{count!r}')
  return {d: {split: int(per_split[split][d]) for split in _SPLITS}
          for d in DATASETS}


def generate(output_dir: str, seed: int = 0, num_train: Counts = 64,
             num_val: Counts = 16) -> Dict[str, Dict[str, Dict[str, str]]]:
  """Writes the four raw datasets (and ADE's panoptic val) under `output_dir`.

  Args:
    output_dir: root folder of the raw datasets.
    seed: random seed; each dataset's and split's images depend only on
      (seed, dataset, split), so a dataset's first K images are the same
      whatever the counts.
    num_train, num_val: images per dataset: an int (every dataset) or a dict
      {dataset: count} with exactly the keys of DATASETS.

  Returns:
    {dataset: {split: converter keyword arguments}} for dataset in
    ('ade', 'coco', 'o365', 'voc') and split in ('train', 'val'), plus
    'ade_panoptic' with only 'val' (ADE val's images in COCO panoptic format,
    for `ade20k_panoptic.convert`): the images_dir / annotations (and VOC
    split / vocabulary, ADE panoptic panoptic_masks_dir) to pass to the
    dataset's `convert`.
  """
  counts = split_counts(num_train, num_val)
  return {'ade': write_ade(output_dir, seed, counts['ade']),
          'coco': write_coco(output_dir, seed, counts['coco']),
          'o365': write_o365(output_dir, seed, counts['o365']),
          'voc': write_voc(output_dir, seed, counts['voc']),
          'ade_panoptic': write_ade_panoptic(output_dir, seed, counts['ade'])}


def convert_all(raw_paths: Dict[str, Dict[str, Dict[str, str]]],
                tfrecord_dir: str, num_shards: int = 1, num_workers: int = 0,
                show_progress: bool = False) -> Dict[str, Dict[str, str]]:
  """Runs the real converters on `generate`'s output.

  Training sets: ADE semantic, COCO panoptic, O365 boxes only; validation
  sets as the evaluators need them (O365 val with masks and is_ignored; ADE
  val also as panoptic, `synthetic_ade_panoptic_val`).

  Returns:
    {dataset: {split: output_prefix}}; shards are
    `<prefix>-0000i-of-<num_shards>.tfrecord`.
  """
  # Imported here: the generator itself does not need TensorFlow.
  # pylint: disable=g-import-not-at-top
  from tfrecords_tools import ade20k, ade20k_panoptic, coco_panoptic
  from tfrecords_tools import objects365, voc
  # pylint: enable=g-import-not-at-top
  prefixes = {}
  for dataset, splits in raw_paths.items():
    prefixes[dataset] = {}
    for split, kwargs in splits.items():
      prefix = os.path.join(tfrecord_dir, f'synthetic_{dataset}_{split}')
      # The suite is regenerated as a whole: its own earlier outputs go.
      common_kwargs = dict(output_prefix=prefix, num_shards=num_shards,
                           num_workers=num_workers, strict=True, overwrite=True,
                           show_progress=show_progress, **kwargs)
      if dataset == 'ade':
        ade20k.convert(**common_kwargs)
      elif dataset == 'ade_panoptic':
        ade20k_panoptic.convert(**common_kwargs)
      elif dataset == 'coco':
        coco_panoptic.convert(**common_kwargs)
      elif dataset == 'o365':
        objects365.convert(include_masks=(split == 'val'), **common_kwargs)
      else:
        voc.convert(**common_kwargs)
      prefixes[dataset][split] = prefix
  return prefixes


def _counts_arg(text: str) -> Counts:
  """argparse type: `64` or `ade=24,coco=64,o365=128,voc=64`."""
  def count(value: str) -> int:
    if not value.strip().isdigit():
      raise argparse.ArgumentTypeError(
          f'{text!r}: expected an int >= 0 or ade=N,coco=N,o365=N,voc=N; '
          f'{value!r} is not a count')
    return int(value)
  if '=' not in text:
    return count(text)
  counts = {}
  for item in text.split(','):
    key, sep, value = item.partition('=')
    key = key.strip()
    if not sep or key not in DATASETS or key in counts:
      raise argparse.ArgumentTypeError(
          f'{text!r}: expected ade=N,coco=N,o365=N,voc=N (each dataset of '
          f'{list(DATASETS)} once); bad item {item!r}')
    counts[key] = count(value)
  missing = [d for d in DATASETS if d not in counts]
  if missing:
    raise argparse.ArgumentTypeError(f'{text!r}: missing datasets {missing}')
  return counts


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--output_dir', required=True,
                      help='Folder for the raw datasets.')
  parser.add_argument('--seed', type=int, default=0, help='Random seed.')
  parser.add_argument('--num_train', type=_counts_arg, default=64,
                      help='Training images per dataset: N, or '
                      'ade=N,coco=N,o365=N,voc=N.')
  parser.add_argument('--num_val', type=_counts_arg, default=16,
                      help='Validation images per dataset: N, or '
                      'ade=N,coco=N,o365=N,voc=N.')
  parser.add_argument('--tfrecord_dir', default=None,
                      help='If set, also convert every dataset and split to '
                      'TFRecords here (synthetic_<dataset>_<split>-*).')
  parser.add_argument('--num_shards', type=int, default=1,
                      help='Shards per converted split (with --tfrecord_dir).')
  args = parser.parse_args(argv)
  paths = generate(args.output_dir, args.seed, args.num_train, args.num_val)
  result = {'raw': paths}
  if args.tfrecord_dir:
    result['tfrecords'] = convert_all(paths, args.tfrecord_dir,
                                      args.num_shards)
  print(json.dumps(result, indent=1, sort_keys=True))
  return 0


if __name__ == '__main__':
  sys.exit(main())
