"""Image sizes read from an encoded image's header, in the graph, without decoding pixels.

The `image_bytes` signatures refuse an image larger than the export's `max_image_size` before
`tf.io.decode_image` runs: a small file can declare a huge image (a 420 KB PNG of 12000 x 12000
black pixels decodes to 432 MB; a 30 MB one of 100000 x 100000 pixels asks for 30 GB).

Header fields read (the first frame / image of the file):
  JPEG  the first start-of-frame (SOF) marker segment: height and width, big-endian uint16;
  PNG   IHDR: width and height, big-endian uint32 at bytes 16 and 20;
  GIF   logical screen: width and height, little-endian uint16 at bytes 6 and 8;
  BMP   BITMAPINFOHEADER: width and height, little-endian int32 at bytes 18 and 22 (a negative
        height means rows stored top-down).
"""
import tensorflow as tf, tf_keras  # pylint: disable=unused-import

# (file signature, format) in the order of `_FORMATS`.
FILE_SIGNATURES = (b'\xff\xd8\xff', b'\x89PNG', b'GIF8', b'BM')
_FORMATS = ('jpeg', 'png', 'gif', 'bmp')
_HEADER_BYTES = 32  # Every field read lies in the first 26 bytes.


def format_index(image_bytes: tf.Tensor) -> tf.Tensor:
  """int32 []: index of the format in ('jpeg', 'png', 'gif', 'bmp') by file signature; -1 if
  none matches."""
  matches = tf.stack([tf.equal(tf.strings.substr(image_bytes, 0, len(signature)), signature)
                      for signature in FILE_SIGNATURES])
  return tf.where(tf.reduce_any(matches), tf.cast(tf.argmax(tf.cast(matches, tf.int32)),
                                                  tf.int32), -1)


def _bytes_at(image_bytes: tf.Tensor, offset, length: int) -> tf.Tensor:
  """int64 [length]: the bytes at `offset` (<= the string's length), zeros past its end.

  Only the `length` bytes are copied, never the (possibly large) whole string.
  """
  piece = tf.strings.join([tf.strings.substr(image_bytes, offset, length), b'\0' * length])
  return tf.cast(tf.io.decode_raw(tf.strings.substr(piece, 0, length), tf.uint8), tf.int64)


def _integer(image_bytes: tf.Tensor, offset: int, length: int, big_endian: bool,
             signed: bool = False) -> tf.Tensor:
  """int64 []: the `length`-byte integer at `offset` of the header."""
  header = tf.strings.join([tf.strings.substr(image_bytes, 0, _HEADER_BYTES),
                            b'\0' * _HEADER_BYTES])  # Offsets past a short string read zeros.
  digits = _bytes_at(header, offset, length)
  weights = [256 ** i for i in range(length)]
  if big_endian:
    weights.reverse()
  value = tf.reduce_sum(digits * tf.constant(weights, tf.int64))
  if signed:
    value = tf.where(value >= 2 ** (8 * length - 1), value - 2 ** (8 * length), value)
  return value


# Start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic).
_JPEG_SOF_MARKERS = [0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce,
                     0xcf]
_JPEG_MAX_SEGMENTS = 4096


def _jpeg_size(image_bytes: tf.Tensor) -> tf.Tensor:
  """int64 [2] (H, W) of the first start-of-frame segment; (0, 0) when none is found.

  Walks the marker segments from byte 2 (FF xx, 2-byte big-endian length); a start-of-frame
  segment holds precision (1 byte), height and width (2 bytes each). Written here because
  `tf.image.extract_jpeg_shape` refuses sides above 65500 without saying the size.
  """
  length = tf.strings.length(image_bytes)

  def not_found(position, size, done):
    del size
    return tf.logical_not(done) & (position + 9 <= length)

  def next_segment(position, size, done):
    del done
    segment = _bytes_at(image_bytes, position, 9)
    marker = segment[1]
    is_frame = tf.reduce_any(tf.equal(marker, _JPEG_SOF_MARKERS)) & tf.equal(segment[0], 0xff)
    size = tf.where(is_frame, tf.stack([segment[5] * 256 + segment[6],
                                        segment[7] * 256 + segment[8]]), size)
    step = tf.where(tf.equal(marker, 0xff), tf.constant(1, tf.int64),
                    2 + segment[2] * 256 + segment[3])
    # A byte other than FF where a marker belongs: not a marker segment, stop looking.
    return position + tf.cast(step, tf.int32), size, is_frame | tf.not_equal(segment[0], 0xff)

  _, size, _ = tf.while_loop(not_found, next_segment,
                             (tf.constant(2), tf.zeros([2], tf.int64), tf.constant(False)),
                             maximum_iterations=_JPEG_MAX_SEGMENTS)
  return size


def image_size(image_bytes: tf.Tensor) -> tf.Tensor:
  """int64 [2]: (height, width) that the header of one encoded image declares.

  Args:
    image_bytes: string [], a JPEG, PNG, GIF or BMP file.

  Returns:
    int64 [2] (H, W); (0, 0) for other strings or a JPEG without a start-of-frame segment
    (the decoder then reports what is wrong).
  """
  def png():
    return tf.stack([_integer(image_bytes, 20, 4, True), _integer(image_bytes, 16, 4, True)])

  def gif():
    return tf.stack([_integer(image_bytes, 8, 2, False), _integer(image_bytes, 6, 2, False)])

  def bmp():
    return tf.stack([tf.abs(_integer(image_bytes, 22, 4, False, signed=True)),
                     tf.abs(_integer(image_bytes, 18, 4, False, signed=True))])

  return tf.switch_case(format_index(image_bytes),
                        [lambda: _jpeg_size(image_bytes), png, gif, bmp],
                        default=lambda: tf.zeros([2], tf.int64))
