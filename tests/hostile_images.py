"""Image files built to cost their decoder far more than their size (issue 33), shared by
the decode and the service tests. Plain Pillow and NumPy: no JAX, so a subprocess that
imports this module measures the decode, not an import."""

import io
import struct
import zlib

import numpy as np
from PIL import Image


def smooth_image(width: int, height: int, mode: str = "RGB") -> Image.Image:
  """A gradient: it compresses to almost nothing, so a large image is a small file."""
  x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
  y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
  channels = [(x + 0 * y), (y + 0 * x), ((x + y) / 2)]
  rgb = np.stack(channels, axis=-1).astype(np.uint8)
  return Image.fromarray(rgb, "RGB").convert(mode)


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
  """(marker, start, end) of each segment of a JPEG, a scan with its entropy-coded data,
  by a plain byte walk (the test's own reading of the format, apart from the library's)."""
  out, position = [], 2
  while position < len(data):
    assert data[position] == 0xFF, f"no marker at {position}"
    marker = data[position + 1]
    if marker == 0xD9:
      out.append((marker, position, position + 2))
      break
    length = struct.unpack(">H", data[position + 2 : position + 4])[0]
    end = position + 2 + length
    if marker == 0xDA:  # entropy-coded data runs to the next marker but FF00 and RSTn
      while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
        end += 1
    out.append((marker, position, end))
    position = end
  return out


def scan_count(data: bytes) -> int:
  return sum(1 for marker, _, _ in jpeg_segments(data) if marker == 0xDA)


def scan_bomb(side: int = 1024, repeats: int = 2000) -> bytes:
  """The finding's progressive JPEG: a smooth `side`² photo (4:4:4) whose smallest AC
  refinement scan is repeated `repeats` times before the end. libjpeg decodes every copy,
  each a pass over the full-size coefficients, draft mode or not; a copy is a few dozen
  bytes (with its Huffman table)."""
  data = saved(smooth_image(side, side), "JPEG", progressive=True, quality=75, subsampling=0)
  segments = jpeg_segments(data)

  def refines_ac(i):  # SOS with Ss > 0 and Ah > 0 (its header: Ns, Ns × 2, Ss, Se, Ah|Al)
    marker, start, _ = segments[i]
    if marker != 0xDA:
      return False
    ns = data[start + 4]
    spectral = data[start + 5 + 2 * ns]
    return spectral > 0 and data[start + 7 + 2 * ns] >> 4 > 0

  scan = min(
    (i for i in range(len(segments)) if refines_ac(i)),
    key=lambda i: segments[i][2] - segments[i][1],
  )
  first = scan - 1 if segments[scan - 1][0] == 0xC4 else scan  # its Huffman table with it
  copy = data[segments[first][1] : segments[scan][2]]
  end = segments[-1][1]  # EOI
  return data[:end] + copy * repeats + data[end:]


def png_chunk(kind: bytes, payload: bytes) -> bytes:
  checksum = struct.pack(">I", zlib.crc32(kind + payload))
  return struct.pack(">I", len(payload)) + kind + payload + checksum


def png(width: int, height: int, *, bit_depth: int = 8, color_type: int = 2) -> bytes:
  """A PNG of zero pixels, written chunk by chunk (Pillow cannot write every kind: 16-bit
  RGBA among them): colour types 0 gray, 2 RGB, 4 gray+alpha, 6 RGBA."""
  channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
  row = b"\0" + bytes(width * channels * bit_depth // 8)
  compress = zlib.compressobj(9)
  body = b"".join(compress.compress(row) for _ in range(height)) + compress.flush()
  header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
  return (
    b"\x89PNG\r\n\x1a\n"
    + png_chunk(b"IHDR", header)
    + png_chunk(b"IDAT", body)
    + png_chunk(b"IEND", b"")
  )


def saved(image: Image.Image, fmt: str, **kwargs) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, fmt, **kwargs)
  return buffer.getvalue()


# Formats Pillow can write and, before the allowlist, read as a photo: (format, mode).
OTHER_FORMATS = (
  ("TIFF", "RGB"),
  ("BMP", "RGB"),
  ("GIF", "P"),
  ("ICO", "RGBA"),
  ("PCX", "RGB"),
  ("QOI", "RGB"),
  ("SGI", "RGB"),
  ("PPM", "RGB"),
  ("TGA", "RGB"),
  ("DDS", "RGB"),
  ("JPEG2000", "RGB"),
  ("AVIF", "RGB"),
)


def other_format(fmt: str, mode: str, side: int = 32) -> bytes | None:
  """A small photo in `fmt`, None when this Pillow has no encoder for it."""
  try:
    return saved(smooth_image(side, side, mode), fmt)
  except (KeyError, OSError, ValueError):
    return None
