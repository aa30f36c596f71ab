"""Valid PNG and JPEG files of a given (large) size, written without holding the pixels.

`uniform_png(h, w)`: black RGB PNG, rows of zeros deflated once and the compressed unit repeated
(a full flush makes every unit's deflate output identical); about 1/1000 of the raw size.
`uniform_jpeg(h, w)`: baseline grayscale JPEG whose Huffman tables have one 1-bit code each (DC
difference 0, AC end-of-block), so every 8 x 8 block is two zero bits: a uniform grey (128) image
of h * w / 256 bytes. JPEG's size fields are 16 bits: h, w <= 65535.
"""
import struct
import zlib

_MAX_UNIT_BYTES = 1 << 25


def _png_chunk(kind: bytes, data: bytes) -> bytes:
  return (struct.pack('>I', len(data)) + kind + data +
          struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff))


def uniform_png(height: int, width: int) -> bytes:
  """A valid 8-bit RGB PNG of `height` x `width` black pixels."""
  row_bytes = 1 + 3 * width  # Filter byte 0, then the pixels.
  rows_per_unit = max(d for d in range(1, height + 1)
                      if height % d == 0 and d * row_bytes <= max(_MAX_UNIT_BYTES, row_bytes))
  unit = b'\0' * (rows_per_unit * row_bytes)
  compressor = zlib.compressobj(9)
  first = compressor.compress(unit) + compressor.flush(zlib.Z_FULL_FLUSH)
  repeated = compressor.compress(unit) + compressor.flush(zlib.Z_FULL_FLUSH)
  header, first_unit = first[:2], first[2:]
  assert first_unit == repeated, 'deflate output of a unit after a full flush differs'
  total = height * row_bytes
  adler = ((total % 65521) << 16) | 1  # Adler-32 of `total` zero bytes.
  # b'\x03\x00': a final, empty fixed-Huffman block.
  stream = (header + repeated * (height // rows_per_unit) + b'\x03\x00' +
            struct.pack('>I', adler))
  ihdr = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
  return (b'\x89PNG\r\n\x1a\n' + _png_chunk(b'IHDR', ihdr) + _png_chunk(b'IDAT', stream) +
          _png_chunk(b'IEND', b''))


def _segment(marker: int, payload: bytes) -> bytes:
  return struct.pack('>BBH', 0xff, marker, len(payload) + 2) + payload


def uniform_jpeg(height: int, width: int) -> bytes:
  """A valid baseline grayscale JPEG of `height` x `width` grey (128) pixels."""
  if not (0 < height <= 65535 and 0 < width <= 65535):
    raise ValueError(f'JPEG sizes are 16-bit: got {height} x {width}')
  one_code = bytes([1] + [0] * 15)  # One code of length 1 ('0').
  quantisation = _segment(0xdb, bytes([0]) + bytes([1] * 64))
  frame = _segment(0xc0, struct.pack('>BHHB', 8, height, width, 1) + bytes([1, 0x11, 0]))
  huffman = _segment(0xc4, bytes([0x00]) + one_code + bytes([0]) +   # DC: difference 0.
                     bytes([0x10]) + one_code + bytes([0]))            # AC: end of block.
  scan = _segment(0xda, bytes([1, 1, 0x00, 0, 63, 0]))
  bits = 2 * (-(-height // 8)) * (-(-width // 8))
  data = b'\0' * (bits // 8) + (bytes([0xff >> (bits % 8)]) if bits % 8 else b'')
  return b'\xff\xd8' + quantisation + frame + huffman + scan + data + b'\xff\xd9'
