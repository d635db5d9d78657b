"""What a photo will cost to decode, read from its bytes and header before its pixels are
decoded (issue 33): the format from the first bytes, against an allowlist
(`allowed_format`); a JPEG's structure from its markers, where a progressive JPEG's scans
are counted (`jpeg_structure`: each scan walks the full-size coefficients, whatever the
reduced size it is decoded at, so 10,000 repeated scans cost half a minute of CPU from a
1 MB file); and the bytes of memory a decode takes (`decode_cost`).

Only what Pillow and libjpeg actually allocate is counted, so that a budget in bytes means
what it says: the pixels at the decoded size in the image's mode, the conversion to RGB,
a progressive JPEG's coefficient buffers and the resample that makes the network's crop.
"""

from __future__ import annotations

import dataclasses
import math
import re

from landmark_jax.errors import UserError


class ImageDecodeError(UserError, ValueError):
  """A file that is not a usable image: corrupt, truncated, empty, or too large."""


class ImageTooLargeError(ImageDecodeError):
  """An image refused from its header, before its pixels are decoded: too many pixels, or
  too many bytes of memory to decode them (`decode_cost`)."""


class ImageTooCostlyError(ImageTooLargeError):
  """An image refused before decoding for what decoding it would cost: a progressive JPEG
  with more scans than allowed, or a file made of more segments than any photo has."""


class UnsupportedImageFormatError(ImageDecodeError):
  """An image file whose format (read from its first bytes) is not an allowed one."""


def _riff(kind: bytes):
  return lambda head: head[:4] == b"RIFF" and head[8:12] == kind


# Pillow's format name → a test on the file's first 32 bytes. Enough formats to name what
# was sent when it is refused; a format without a signature is "unrecognised".
_SIGNATURES = {
  "JPEG": lambda head: head[:3] == b"\xff\xd8\xff",  # MPO too: a JPEG with an MP extension
  "PNG": lambda head: head[:8] == b"\x89PNG\r\n\x1a\n",
  "WEBP": _riff(b"WEBP"),
  "GIF": lambda head: head[:6] in (b"GIF87a", b"GIF89a"),
  "TIFF": lambda head: head[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"),
  "BMP": lambda head: head[:2] == b"BM",
  "JPEG2000": lambda head: (
    head[:12] == b"\0\0\0\x0cjP  \r\n\x87\n" or head[:4] == b"\xff\x4f\xff\x51"
  ),
  "AVIF": lambda head: head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"),
  "HEIF": lambda head: head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1"),
  "ICO": lambda head: head[:4] == b"\0\0\1\0",
  "CUR": lambda head: head[:4] == b"\0\0\2\0",
  "ICNS": lambda head: head[:4] == b"icns",
  "QOI": lambda head: head[:4] == b"qoif",
  "SGI": lambda head: head[:2] == b"\x01\xda",
  "PPM": lambda head: head[:1] == b"P" and head[1:2] in b"123456fF" and len(head) > 2,
  "DDS": lambda head: head[:4] == b"DDS ",
  "PCX": lambda head: head[:1] == b"\x0a" and head[1:2] in b"\0\2\3\4\5" and head[2:3] == b"\1",
  "BLP": lambda head: head[:4] in (b"BLP1", b"BLP2"),
  "PSD": lambda head: head[:4] == b"8BPS",
  "EPS": lambda head: head[:4] in (b"%!PS", b"\xc5\xd0\xd3\xc6"),
  "FITS": lambda head: head[:6] == b"SIMPLE",
  "MSP": lambda head: head[:4] in (b"DanM", b"LinS"),
  "XBM": lambda head: head[:7] == b"#define",
  "IM": lambda head: head[:11] == b"Image type:",
  "FLI": lambda head: head[4:6] in (b"\x11\xaf", b"\x12\xaf"),
}
_TGA_FOOTER = b"TRUEVISION-XFILE.\0"  # TGA has no signature up front; version 2 a footer


def sniff_format(data: bytes) -> str | None:
  """The format `data` starts as (Pillow's name), None when none is recognised."""
  if bytes(data[-18:]) == _TGA_FOOTER:  # first: a TGA may start as a CUR does
    return "TGA"
  head = bytes(data[:32])
  for name, matches in _SIGNATURES.items():
    if matches(head):
      return name
  return None


def allowed_format(data: bytes, formats: tuple[str, ...]) -> tuple[str, ...]:
  """The Pillow formats to open `data` with: its own, when it is one of `formats`.

  Raises:
    UnsupportedImageFormatError: the first bytes are those of another format.
    ImageDecodeError: they are those of no format known here (and every allowed format has
      a signature, so none of them could read it either).
  """
  found = sniff_format(data)
  allowed = ", ".join(formats)
  if found is not None:
    if found in formats or (found == "JPEG" and "MPO" in formats):
      return (found,)
    raise UnsupportedImageFormatError(
      f"{found} images are not accepted (known by their first bytes, whatever the file is "
      f"named or declared to be); accepted: {allowed}"
    )
  # Formats without a signature (a TGA without its footer, SPIDER…) can only be tried.
  unsniffable = tuple(name for name in formats if name not in _SIGNATURES and name != "MPO")
  if unsniffable:
    return unsniffable
  raise ImageDecodeError(f"not an image file: its first bytes are those of none of {allowed}")


# JPEG markers -------------------------------------------------------------------------

# Start of frame: baseline, extended, progressive, lossless, hierarchical, arithmetic (not
# DHT C4, JPG C8, DAC CC).
_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
_PROGRESSIVE = frozenset((0xC2, 0xC6, 0xCA, 0xCE))
_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8)))  # TEM, RST0–7: no length
# The end of a scan's entropy-coded data: a marker that is not a stuffed FF00, a restart
# marker FFD0–D7 inside the scan, or fill FFFF (the regex runs in C: a 20 MiB scan is one
# pass, not 20 M Python steps).
_END_OF_SCAN = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_NEXT_MARKER = re.compile(rb"\xff[\x01-\xfe]")  # junk between segments: libjpeg skips it
# More segments than any photo has (ICC profiles split in 64 KB APP2 chunks, thumbnails,
# one DHT per scan…): a file of 20 MiB of 4-byte segments would cost the walk below, and
# Pillow's own marker parser in Python, millions of steps.
MAX_JPEG_SEGMENTS = 1000
# Junk bytes outside any segment, before the first scan, which Pillow's parser skips one
# Python step at a time: a photo has a few at most.
MAX_JPEG_JUNK = 64 * 1024
# libjpeg's coefficient buffer: 64 int16 coefficients per 8×8 block.
_BYTES_PER_BLOCK = 128


@dataclasses.dataclass(frozen=True)
class JpegStructure:
  """A JPEG as its markers describe it, before any decoding."""

  width: int
  height: int
  sampling: tuple[tuple[int, int], ...]  # each component's (horizontal, vertical) factors
  progressive: bool
  scans: int

  def coefficient_bytes(self) -> int:
    """libjpeg keeps every block's coefficients, at full size whatever the scale it decodes
    to, when the image comes in several scans (progressive, or one scan per component);
    one scan is decoded a row of blocks at a time."""
    if self.scans <= 1 or not self.sampling:
      return 0
    h_max = max(h for h, _ in self.sampling)
    v_max = max(v for _, v in self.sampling)
    total = 0
    for h, v in self.sampling:
      columns = math.ceil(math.ceil(self.width * h / h_max) / 8)
      rows = math.ceil(math.ceil(self.height * v / v_max) / 8)
      total += _round_up(columns, h) * _round_up(rows, v)
    return total * _BYTES_PER_BLOCK


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def jpeg_structure(
  data: bytes, *, max_scans: int | None = None, max_segments: int = MAX_JPEG_SEGMENTS
) -> JpegStructure:
  """Walks a JPEG's markers as libjpeg will, counting its scans; the walk stops at the limit,
  so that its own cost is bounded by the limit, not by the file.

  A file cut short ends the walk (Pillow reports the truncation when it decodes).

  Raises:
    ImageTooCostlyError: more than `max_scans` scans (None: no limit), more than
      `max_segments` segments, or more than `MAX_JPEG_JUNK` bytes between segments.
    ImageDecodeError: not a JPEG, several frames, or a segment length that cannot be.
  """
  if data[:2] != b"\xff\xd8":
    raise ImageDecodeError("not a JPEG file (no start-of-image marker)")
  size, position = len(data), 2
  frame: tuple[int, int, tuple, bool] | None = None
  scans = segments = junk = 0
  while position < size:
    if data[position] != 0xFF or data[position + 1 : position + 2] in (b"\x00", b""):
      found = _NEXT_MARKER.search(data, position)
      skipped = (found.start() if found else size) - position
      junk += skipped
      if junk > MAX_JPEG_JUNK and scans == 0:
        raise ImageTooCostlyError(
          f"JPEG with over {MAX_JPEG_JUNK:,} bytes outside its segments (damaged or crafted)"
        )
      if found is None:
        break
      position = found.start()
    while position < size and data[position] == 0xFF:  # the marker's FF and any fill
      position += 1
    if position >= size:
      break
    marker = data[position]
    position += 1
    if marker == 0xD9:  # end of image: an MPO's other pictures come after
      break
    if marker in _STANDALONE:
      continue
    if position + 2 > size:
      break
    length = int.from_bytes(data[position : position + 2], "big")
    if length < 2:
      raise ImageDecodeError(f"corrupt JPEG: a segment length of {length}")
    end = position + length
    segments += 1
    if segments > max_segments:
      raise ImageTooCostlyError(
        f"JPEG with over {max_segments:,} segments (damaged or crafted; photos have tens)"
      )
    if marker in _SOF or marker == 0xDE:  # DHP: a hierarchical file's frames
      if frame is not None or marker == 0xDE:
        raise ImageDecodeError("JPEG with several frames (hierarchical), not a photo")
      frame = _frame(data[position + 2 : end], marker)
    elif marker == 0xDA:  # start of scan
      scans += 1
      if max_scans is not None and scans > max_scans:
        raise ImageTooCostlyError(
          f"progressive JPEG with more than {max_scans} scans, over the limit of "
          f"{max_scans} (photos have about 10; each scan costs a pass over the whole image)"
        )
      found = _END_OF_SCAN.search(data, end)
      position = found.start() if found else size
      continue
    position = end
  width, height, sampling, progressive = frame or (0, 0, (), False)
  return JpegStructure(width, height, sampling, progressive, scans)


def _frame(body: bytes, marker: int) -> tuple[int, int, tuple, bool]:
  components = body[5] if len(body) >= 6 else 0
  if components < 1 or len(body) < 6 + 3 * components:
    raise ImageDecodeError("corrupt JPEG: a frame header cut short")
  height = int.from_bytes(body[1:3], "big")
  width = int.from_bytes(body[3:5], "big")
  sampling = tuple((body[7 + 3 * i] >> 4, body[7 + 3 * i] & 15) for i in range(components))
  if any(h < 1 or v < 1 for h, v in sampling):
    raise ImageDecodeError("corrupt JPEG: a frame header with bad sampling factors")
  return width, height, sampling, marker in _PROGRESSIVE


# Memory of a decode -------------------------------------------------------------------

# Bytes per pixel Pillow stores for a mode: 1 for 1/L/P, 2 for the 16-bit grayscale modes,
# 4 for the rest (RGB is stored as RGBX, LA as 4 bytes).
_STORED = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2}
_HIGH_DEPTH = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
# Bytes per pixel `transforms.to_rgb` adds on top of the image, at its peak.
_TO_RGB = {
  "RGB": 0,  # returned as it is
  "RGBA": 4,  # pasted on a white RGB image
  "LA": 4,
  "PA": 8,  # → RGBA, pasted on white
  **{mode: 5 for mode in _HIGH_DEPTH},  # an L image, a block of rows at a time, then RGB
}
_RGB_BYTES = 4
# Bytes per pixel a decoder holds besides the image while it decodes (measured with
# Pillow 13: 16.4 bytes a pixel in all at 12 Mpx, 18 at 1.2 Mpx): libwebp decodes into
# frame buffers of its own, copied on the way to the image. PNG and JPEG decode into the
# image a row at a time.
_DECODER = {"WEBP": 16}
# The float32 temporaries of `to_rgb`'s high-depth blocks: ~6 copies of a block.
_BLOCK_TEMPORARIES = 24
# Decoder state, zlib's window, Pillow's allocator rounding: a constant whatever the size.
DECODE_OVERHEAD = 2 * 2**20


def decode_cost(
  mode: str,
  size: tuple[int, int],
  *,
  format: str | None = None,
  encoded_bytes: int = 0,
  transparent_palette: bool = False,
  turned: bool = False,
  jpeg: JpegStructure | None = None,
  resample_to: int | None = None,
  block_pixels: int = 65536,
) -> int:
  """Peak bytes of decoding an image of `mode` and `size` (after JPEG draft mode picked its
  scale) into RGB:

  - Pillow's pixels, with what the decoder holds meanwhile (a format outside the defaults:
    the whole file once more, `encoded_bytes`, throughout);
  - plus the larger of an EXIF turn's copy (`turned`) and `to_rgb`'s images;
  - a progressive JPEG's coefficient buffers (`jpeg`), held throughout;
  - when the caller resamples the photo to at most `resample_to` on a side, the RGB image
    and Pillow's resample (`resample_cost`).
  """
  width, height = size
  pixels = width * height
  stored = _STORED.get(mode, 4) * pixels
  extra = _TO_RGB.get(mode, _RGB_BYTES) * pixels
  if mode == "P" and transparent_palette:
    extra = 8 * pixels
  if mode in _HIGH_DEPTH:
    extra += _BLOCK_TEMPORARIES * min(pixels, max(width, block_pixels))
  decoder = _DECODER.get(format, 0) * pixels
  # A format outside the defaults: its decoder may keep the whole file once more, after
  # the decode too (libtiff's strips: measured), so it is added, not overlapped.
  kept = 0 if format in ("JPEG", "MPO", "PNG", "WEBP") else encoded_bytes
  peak = kept + stored + max(decoder, stored if turned else 0, extra)
  if resample_to:
    peak = max(peak, _RGB_BYTES * pixels + resample_cost(size, resample_to))
  coefficients = jpeg.coefficient_bytes() if jpeg is not None else 0
  return DECODE_OVERHEAD + coefficients + peak


def resample_cost(size: tuple[int, int], out: int) -> int:
  """Pillow's bilinear resample of an RGB image to at most out×out (its box at most the
  whole image): the first pass's image (Pillow resamples the axis that keeps it smaller
  first) and both axes' filter tables, one double per output pixel and input pixel under
  the filter: a 2 M pixels wide, one pixel high image needs 224 × 18,700 of them."""
  width, height = size

  def table(length: int) -> int:
    support = max(length / out, 1.0)  # bilinear: 1 input pixel each side, stretched
    return out * (2 * math.ceil(support) + 1) * 8 + out * 8

  first_pass = _RGB_BYTES * out * min(width, height)
  return first_pass + table(width) + table(height)
