"""Loading and checking COCO-style annotation JSON (detection and panoptic).

Structural faults (unreadable JSON, missing required field, duplicated image
id, empty list) are fatal `ConversionError`s naming the file and the field:
they mean the wrong or a corrupt file was passed, not a bad image.
"""

import json
from typing import Any, Dict, List, Sequence

import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from tfrecords_tools.tfrecord_writer import ConversionError, SkipImage


def load(path: str, required_lists: Sequence[str]) -> Dict[str, Any]:
  """Reads a COCO-style JSON and checks its top-level lists exist.

  Raises:
    ConversionError: unreadable file or a missing / non-list top-level key.
  """
  try:
    with tf.io.gfile.GFile(path) as f:
      content = json.load(f)
  except (OSError, tf.errors.OpError) as error:
    raise ConversionError(f'{path}: cannot open annotation file ({error})')
  except json.JSONDecodeError as error:
    raise ConversionError(f'{path}: not valid JSON ({error})')
  if not isinstance(content, dict):
    raise ConversionError(f'{path}: expected a JSON object at top level')
  for key in required_lists:
    if not isinstance(content.get(key), list):
      raise ConversionError(f'{path}: missing required list "{key}"')
  return content


def require(record: Dict[str, Any], keys: Sequence[str], path: str,
            where: str):
  """Raises ConversionError naming `path`, `where` and the missing key."""
  for key in keys:
    if key not in record:
      raise ConversionError(f'{path}: {where} has no required field "{key}"')


def index_images(images: List[Dict[str, Any]], path: str
                 ) -> Dict[Any, Dict[str, Any]]:
  """Maps image id -> image record (id, file_name, height, width checked).

  Raises:
    ConversionError: empty list, missing field, duplicated id.
  """
  if not images:
    raise ConversionError(f'{path}: "images" is empty')
  by_id = {}
  for position, image in enumerate(images):
    require(image, ('id', 'file_name', 'height', 'width'), path,
            f'images[{position}]')
    if image['id'] in by_id:
      raise ConversionError(f'{path}: image id {image["id"]} is duplicated in '
                            '"images"')
    by_id[image['id']] = image
  return by_id


def sort_key(image_id):
  """Orders ints numerically and strings lexically (deterministic output)."""
  return (0, image_id, '') if isinstance(image_id, int) else (1, 0,
                                                              str(image_id))


def check_image_size(image_record: Dict[str, Any], height: int, width: int,
                     path: str):
  """Raises SkipImage('size_mismatch') when an `images` record's height and
  width differ from the image file's `height` x `width`."""
  json_hw = (image_record['height'], image_record['width'])
  if json_hw != (height, width):
    raise SkipImage('size_mismatch',
                    f'{path}: images[id={image_record["id"]}] says '
                    f'{json_hw[0]}x{json_hw[1]} but the image file is '
                    f'{height}x{width}')
