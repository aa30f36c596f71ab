"""Reading and validating raw images and label PNGs for the converters.

Images that already are 8-bit RGB JPEG/PNG are passed through byte for byte;
everything else that PIL can decode (grayscale, palette, RGBA, CMYK, 16-bit,
BMP, ...) is converted to 8-bit RGB and re-encoded as PNG (lossless and
deterministic); 16-bit values are divided by 257, a fixed scale. Pass-through files are checked without decoding their
pixels: the header must parse and the file must end with its format's end
marker (JPEG EOI, PNG IEND), which catches truncated files; a file that fails
this check is fully decoded and skipped only if that fails too. Missing or
undecodable files raise `SkipImage`, which the writer counts (or, under
--strict, turns into an error).
"""

import dataclasses
import io

import numpy as np
from PIL import Image
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

from official_dataseg.evaluation import file_formats
from tfrecords_tools.tfrecord_writer import SkipImage

_PASS_THROUGH_FORMATS = {'JPEG': 'jpeg', 'PNG': 'png'}


@dataclasses.dataclass
class EncodedImage:
  encoded: bytes       # JPEG or PNG bytes of an 8-bit RGB image.
  image_format: str    # 'jpeg' | 'png'.
  height: int
  width: int
  reencoded_from: str  # '' when passed through, else the source PIL mode.


def _read_bytes(path: str, reason: str, what: str) -> bytes:
  """The file's bytes, through tf.io.gfile (local, gs://, ...)."""
  try:
    with tf.io.gfile.GFile(path, 'rb') as f:
      return f.read()
  except tf.errors.NotFoundError:
    raise SkipImage(reason, f'{path}: {what} not found') from None
  except tf.errors.OpError as error:  # E.g. a folder of that name.
    raise SkipImage(reason, f'{path}: {what} cannot be read '
                    f'({type(error).__name__}: {error.message})') from None


# Last bytes of a complete file: JPEG end-of-image marker, PNG IEND chunk.
_END_MARKERS = {'JPEG': b'\xff\xd9', 'PNG': b'IEND\xaeB`\x82'}


def _decode_pil(data: bytes, path: str, reason: str, what: str,
                full_decode: bool = True) -> Image.Image:
  """Opens `data` with PIL; decodes all pixels unless a header check suffices.

  With `full_decode=False`, a JPEG / PNG whose header parses and whose last
  bytes are its format's end marker is accepted without decoding the pixels
  (a truncated file lacks the marker); anything else is fully decoded.
  """
  try:
    pil_image = Image.open(io.BytesIO(data))
    end_marker = _END_MARKERS.get(pil_image.format)
    if full_decode or not end_marker or not data.endswith(end_marker):
      pil_image.load()  # Forces a full decode: truncated files fail here.
  except Exception as error:  # pylint: disable=broad-except
    raise SkipImage(reason, f'{path}: {what} is not a decodable image '
                    f'({type(error).__name__}: {error})') from None
  return pil_image


def _png_bit_depth(data: bytes) -> int:
  # IHDR is the first chunk: 8-byte signature, 4 length, 4 type, 4 width,
  # 4 height, then 1 byte of bit depth.
  return data[24] if len(data) > 24 else 0


def _to_rgb8(pil_image: Image.Image, sixteen_bit: bool) -> np.ndarray:
  """Returns uint8 [H, W, 3] from any PIL mode.

  Single-channel integer / float modes: 16-bit data (`sixteen_bit`, or an
  'I;16*' mode) is divided by 257 (65535 -> 255), whatever the image's own
  range, so a dark image stays dark; other 'I' / 'F' data is taken as 0..255
  values (clipped). Every other mode goes through PIL's RGB conversion.
  """
  if pil_image.mode in ('I;16', 'I;16B', 'I;16L', 'I', 'F'):
    values = np.asarray(pil_image).astype(np.float64)
    scale = 257.0 if sixteen_bit or pil_image.mode.startswith('I;16') else 1.0
    gray = np.clip(np.round(values / scale), 0, 255).astype(np.uint8)
    return np.repeat(gray[..., None], 3, axis=-1)
  return np.asarray(pil_image.convert('RGB'))


def encode_png(array: np.ndarray) -> bytes:
  """PNG-encodes uint8 [H, W] / [H, W, 3] or uint16 [H, W] (deterministic)."""
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format='PNG')
  return buffer.getvalue()


def load_image(path: str) -> EncodedImage:
  """Reads an image for `image/encoded`; see the module docstring.

  Raises:
    SkipImage: 'missing_image' or 'unreadable_image'.
  """
  data = _read_bytes(path, 'missing_image', 'image file')
  # Pass-through files are only copied, so a complete header and end marker
  # are checked instead of decoding every pixel (the decode dominated the
  # conversion time); other files are decoded below to be re-encoded.
  pil_image = _decode_pil(data, path, 'unreadable_image', 'image file',
                          full_decode=False)
  width, height = pil_image.size
  image_format = _PASS_THROUGH_FORMATS.get(pil_image.format)
  is_8bit = image_format == 'jpeg' or _png_bit_depth(data) == 8
  if image_format and pil_image.mode == 'RGB' and is_8bit:
    return EncodedImage(data, image_format, height, width, '')
  pil_image = _decode_pil(data, path, 'unreadable_image', 'image file')
  rgb = _to_rgb8(pil_image, sixteen_bit=(image_format == 'png' and
                                         _png_bit_depth(data) == 16))
  mode = pil_image.mode if is_8bit else f'{pil_image.mode}/16-bit'
  return EncodedImage(encode_png(rgb), 'png', height, width,
                      f'{pil_image.format}:{mode}')


def load_label_png(path: str, reason: str = 'missing_label_png') -> np.ndarray:
  """Reads a single-channel label PNG as its raw values.

  Palette ('P') PNGs give their palette indices (VOC), grayscale PNGs their
  values (ADE). Returns int32 [H, W].

  Raises:
    SkipImage: `reason` when missing, 'unreadable_label_png' when undecodable
      or not single-channel.
  """
  data = _read_bytes(path, reason, 'label PNG')
  pil_image = _decode_pil(data, path, 'unreadable_label_png', 'label PNG')
  if pil_image.mode not in ('P', 'L', 'I', 'I;16', 'I;16B', 'I;16L'):
    raise SkipImage('unreadable_label_png',
                    f'{path}: label PNG has mode {pil_image.mode}; expected '
                    'a single-channel (palette or grayscale) PNG')
  return np.asarray(pil_image).astype(np.int32)


def load_panoptic_png(path: str) -> np.ndarray:
  """Reads an RGB-encoded panoptic PNG: id = R + 256 G + 256^2 B.

  Returns:
    int32 [H, W] segment ids (0 = void).

  Raises:
    SkipImage: 'missing_panoptic_png' or 'unreadable_panoptic_png'.
  """
  data = _read_bytes(path, 'missing_panoptic_png', 'panoptic PNG')
  pil_image = _decode_pil(data, path, 'unreadable_panoptic_png',
                          'panoptic PNG')
  if pil_image.mode != 'RGB':
    raise SkipImage('unreadable_panoptic_png',
                    f'{path}: panoptic PNG has mode {pil_image.mode}; '
                    'expected RGB (id = R + 256 G + 256^2 B)')
  return file_formats.rgb_to_segment_id(np.asarray(pil_image)).astype(np.int32)


def check_same_size(label_hw, image: EncodedImage, label_path: str):
  """Raises SkipImage('size_mismatch') when label and image sizes differ."""
  if tuple(label_hw) != (image.height, image.width):
    raise SkipImage('size_mismatch',
                    f'{label_path}: label is {label_hw[0]}x{label_hw[1]} '
                    f'(HxW) but its image is {image.height}x{image.width}')
