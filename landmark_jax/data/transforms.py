"""Decoding and augmentation with Pillow and NumPy, run in grain's worker processes.

Train (the paper, §3): resize to 256×256, random resized crop to 224, color jitter, random
horizontal flip. Eval: resize to 256×256, center crop 224. The resize and the crop are
done as one Pillow resample over the crop's box in the original image — the same pixels as
resizing then cropping, at a fraction of the cost, and JPEG "draft" mode lets libjpeg decode
straight to a downscaled image (1/2, 1/4 or 1/8 size) when the photo is much larger.
"""

from __future__ import annotations

import contextlib
import io
import math
import mmap
import os
import warnings
from typing import Any, Mapping

import numpy as np
from PIL import Image, UnidentifiedImageError

from landmark_jax.data.config import (
  DEFAULT_FORMATS,
  DEFAULT_MAX_JPEG_SCANS,
  DEFAULT_MAX_PIXELS,
  ImageConfig,
)
from landmark_jax.data.image_guard import (  # the errors: defined with the checks, named here
  ImageDecodeError,
  ImageTooCostlyError,  # noqa: F401
  ImageTooLargeError,
  UnsupportedImageFormatError,  # noqa: F401
  allowed_format,
  decode_cost,
  jpeg_structure,
)
from landmark_jax.geo import Location, exif_location

_HIGH_DEPTH = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
# A high-depth image is scaled to 8 bits this many pixels at a time (whole rows): its
# float32 temporaries then take ~1.5 MB, not 12 bytes a pixel of the whole image.
PIXELS_AT_ONCE = 65536


def to_rgb(image: Image.Image) -> Image.Image:
  """Any Pillow image → RGB, with as few copies of its pixels as its mode needs (an RGB
  image is returned as it is): what `image_guard.decode_cost` counts."""
  if image.mode == "RGB":
    return image
  if image.mode in _HIGH_DEPTH:
    return _high_depth_to_rgb(image)
  if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
    # Transparent areas become white (how photo viewers show them), not black: pasted on
    # white through their own alpha, one RGB image more rather than four RGBA ones.
    if image.mode not in ("RGBA", "LA"):
      image = image.convert("RGBA")
    background = Image.new("RGB", image.size, (255, 255, 255))
    background.paste(image, mask=image)
    return background
  return image.convert("RGB")


def _high_depth_to_rgb(image: Image.Image) -> Image.Image:
  """16-bit / 32-bit grayscale, scaled to 8 bits by the format's range (not clipped), a
  block of rows at a time: float32 copies of the whole image cost 12 bytes a pixel."""
  top = 255.0
  if image.mode.startswith("I;16") or image.getextrema()[1] > 255:
    top = 65535.0
  width, height = image.size
  gray = np.empty((height, width), np.uint8)
  rows = max(1, PIXELS_AT_ONCE // width)
  for row in range(0, height, rows):
    block = np.asarray(image.crop((0, row, width, min(row + rows, height))), np.float32)
    gray[row : row + len(block)] = np.clip(block * (255.0 / top), 0, 255).astype(np.uint8)
  return Image.fromarray(gray, "L").convert("RGB")


@contextlib.contextmanager
def _encoded(data):
  """A photo's encoded bytes (a file's, mapped, not read) and a file object of them."""
  if isinstance(data, (bytes, bytearray, memoryview)):
    yield data, io.BytesIO(data)
    return
  try:
    file = open(data, "rb")
  except OSError:
    raise ImageDecodeError(f"file not found or unreadable: {data}") from None
  with file:
    if not os.fstat(file.fileno()).st_size:
      yield b"", file
      return
    with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as view:
      yield view, file


def open_image(
  data: bytes | str,
  *,
  draft_size: int | None = None,
  max_pixels: int = DEFAULT_MAX_PIXELS,
  max_decoded_pixels: int | None = None,
  formats: tuple[str, ...] = DEFAULT_FORMATS,
  max_decode_bytes: int | None = None,
  max_jpeg_scans: int | None = DEFAULT_MAX_JPEG_SCANS,
  resample_to: int | None = None,
) -> Image.Image:
  """Decodes a file path or encoded bytes into an RGB Pillow image, EXIF orientation applied.

  Args:
    draft_size: if given and the image is a JPEG, decode at the smallest DCT scale whose
      result is still at least this many pixels on each side.
    formats, max_decode_bytes, max_jpeg_scans, resample_to: see `open_photo`.

  Raises:
    ImageDecodeError: naming what is wrong (empty, not an image, truncated, too large).
  """
  return open_photo(
    data,
    draft_size=draft_size,
    max_pixels=max_pixels,
    max_decoded_pixels=max_decoded_pixels,
    read_location=False,
    formats=formats,
    max_decode_bytes=max_decode_bytes,
    max_jpeg_scans=max_jpeg_scans,
    resample_to=resample_to,
  )[0]


def open_photo(
  data: bytes | str,
  *,
  draft_size: int | None = None,
  max_pixels: int = DEFAULT_MAX_PIXELS,
  max_decoded_pixels: int | None = None,
  read_location: bool = True,
  formats: tuple[str, ...] = DEFAULT_FORMATS,
  max_decode_bytes: int | None = None,
  max_jpeg_scans: int | None = DEFAULT_MAX_JPEG_SCANS,
  resample_to: int | None = None,
) -> tuple[Image.Image, Location | None]:
  """`open_image`, and the photo's EXIF GPS location read from the same opened file (None
  when it has none or it is malformed): one open, one parse of the header.

  What the decode will cost is read first, from the bytes and the header
  (`image_guard`): the format by its first bytes (one of `formats`, Pillow's names; a
  JPEG's MPO variant is a JPEG), a JPEG's scans (at most `max_jpeg_scans`), and the peak
  bytes of memory of the decode and of a resample to at most `resample_to` on a side
  (`decode_cost`, at most `max_decode_bytes`; None: no budget).

  Raises:
    UnsupportedImageFormatError: the file is in another format than `formats`.
    ImageTooCostlyError: a JPEG with more scans (or segments) than allowed.
    ImageTooLargeError: more than `max_pixels` in the header, more than
      `max_decoded_pixels` to decode at the scale the decoder would use (deprecated: 8
      bytes a pixel of `max_decode_bytes` say it in bytes), or over `max_decode_bytes`.
  """
  with _encoded(data) as (encoded, file):
    if not len(encoded):
      raise ImageDecodeError("empty file (0 bytes)")
    pillow_formats = allowed_format(encoded, tuple(formats))
    jpeg = None
    if pillow_formats == ("JPEG",):
      jpeg = jpeg_structure(encoded, max_scans=max_jpeg_scans)
    return _decode(
      file,
      encoded,
      pillow_formats,
      jpeg,
      draft_size=draft_size,
      max_pixels=max_pixels,
      max_decoded_pixels=max_decoded_pixels,
      max_decode_bytes=max_decode_bytes,
      resample_to=resample_to,
      read_location=read_location,
      name=data if isinstance(data, (str, os.PathLike)) else None,
    )


def _decode(
  file,
  encoded,
  pillow_formats,
  jpeg,
  *,
  draft_size,
  max_pixels,
  max_decoded_pixels,
  max_decode_bytes,
  resample_to,
  read_location,
  name,
) -> tuple[Image.Image, Location | None]:
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      image = Image.open(file, formats=pillow_formats)
      width, height = image.size
      if width * height > max_pixels:
        raise ImageTooLargeError(
          f"image of {width}×{height} = {width * height:,} pixels exceeds the limit of "
          f"{max_pixels:,} (decompression bomb?)"
        )
      if draft_size and image.format in ("JPEG", "MPO"):  # MPO: a phone's JPEG
        image.draft("RGB", (draft_size, draft_size))
      # Before reading EXIF: Pillow decodes a whole PNG to look for an eXIf chunk after the
      # pixels, so a refusal after it would cost the full decode it is there to prevent.
      _check_decoded_pixels(image, max_decoded_pixels)
      if max_decode_bytes is not None:
        _check_decode_cost(image, encoded, jpeg, max_decode_bytes, resample_to)
      location = exif_location(image) if read_location else None
      image = upright(image)
      image.load()
      return to_rgb(image), location
  except ImageDecodeError:
    raise
  except UnidentifiedImageError:
    raise ImageDecodeError("not an image file Pillow can identify") from None
  except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
    raise ImageTooLargeError(f"decompression bomb refused: {e}") from None
  except FileNotFoundError:
    raise ImageDecodeError(f"file not found: {name}") from None
  except (OSError, ValueError, SyntaxError, EOFError) as e:
    raise ImageDecodeError(f"corrupt or truncated image: {e}") from None
  except MemoryError:
    raise ImageTooLargeError("not enough memory to decode the image") from None
  except Exception as e:
    # Pillow's plugins raise what they like on a file they cannot read (a damaged AVIF:
    # RuntimeError; a DDS pixel format: NotImplementedError; a broken TIFF tag: KeyError):
    # a photo that cannot be decoded is the sender's problem, named, never a crash.
    raise ImageDecodeError(f"undecodable image ({type(e).__name__}: {e})") from None


def decode_estimate(
  data: bytes | str,
  *,
  draft_size: int | None = None,
  formats: tuple[str, ...] = DEFAULT_FORMATS,
  resample_to: int | None = None,
) -> int:
  """The peak bytes of memory `open_photo` counts against `max_decode_bytes` for `data`
  (and the caller's resample to `resample_to`), read from its bytes and header only."""
  with _encoded(data) as (encoded, file):
    pillow_formats = allowed_format(encoded, tuple(formats))
    jpeg = jpeg_structure(encoded) if pillow_formats == ("JPEG",) else None
    with Image.open(file, formats=pillow_formats) as image:
      if draft_size and image.format in ("JPEG", "MPO"):
        image.draft("RGB", (draft_size, draft_size))
      return _decode_cost(image, encoded, jpeg, resample_to)


def _decode_cost(image: Image.Image, encoded, jpeg, resample_to: int | None) -> int:
  return decode_cost(
    image.mode,
    image.size,
    format=image.format,
    encoded_bytes=len(encoded),
    transparent_palette="transparency" in image.info,
    turned=_may_turn(image, encoded),
    jpeg=jpeg,
    resample_to=resample_to,
    block_pixels=PIXELS_AT_ONCE,
  )


def _check_decode_cost(image, encoded, jpeg, budget: int, resample_to: int | None) -> None:
  cost = _decode_cost(image, encoded, jpeg, resample_to)
  if cost > budget:
    width, height = image.size
    raise ImageTooLargeError(
      f"a {image.format} image of {width}×{height} pixels in mode {image.mode} would take "
      f"{cost / 2**20:,.0f} MiB to decode, over the limit of {budget / 2**20:,.0f} MiB "
      "(JPEGs are decoded at reduced size; send a smaller image or a JPEG)"
    )


def _may_turn(image: Image.Image, encoded) -> bool:
  """Whether the EXIF orientation will turn the image (a copy of its pixels), known before
  decoding: a PNG's eXIf chunk may come after its pixels, so any eXIf chunk counts."""
  if image.format == "PNG" and "exif" not in image.info:
    return encoded.find(b"eXIf") >= 0
  try:
    return image.getexif().get(0x0112) in _UPRIGHT
  except Exception:
    return True


# EXIF orientation → the transpose that makes the photo upright (as `ImageOps.exif_transpose`).
_UPRIGHT = {
  2: Image.Transpose.FLIP_LEFT_RIGHT,
  3: Image.Transpose.ROTATE_180,
  4: Image.Transpose.FLIP_TOP_BOTTOM,
  5: Image.Transpose.TRANSPOSE,
  6: Image.Transpose.ROTATE_270,
  7: Image.Transpose.TRANSVERSE,
  8: Image.Transpose.ROTATE_90,
}


def upright(image: Image.Image) -> Image.Image:
  """`image` turned as its EXIF orientation says, as `ImageOps.exif_transpose` turns it;
  the image itself when it needs no turn (`exif_transpose` copies it then: 4 bytes a pixel
  for nothing). Not through `exif_transpose`, which also rewrites the EXIF block and raises
  on an entry it cannot write back (a GPS latitude stored as text: TypeError): the pixels
  are fine then."""
  orientation = image.getexif().get(0x0112)
  return image.transpose(_UPRIGHT[orientation]) if orientation in _UPRIGHT else image


def _check_decoded_pixels(image: Image.Image, limit: int | None) -> None:
  # `image.size` is what the decoder will allocate: after `draft`, the reduced JPEG size.
  width, height = image.size
  if limit is not None and width * height > limit:
    kind = f"a {image.format} image" if image.format else "an image"
    raise ImageTooLargeError(
      f"{kind} of {width}×{height} = {width * height:,} pixels would be decoded at full "
      f"size, over the limit of {limit:,} (JPEGs are decoded at reduced size; send a "
      "smaller image or a JPEG)"
    )


def _resized_box(
  image: Image.Image, resize_size: int, box: tuple[float, float, float, float], out_size: int
) -> Image.Image:
  """Crops `box` (in the resize_size×resize_size frame) and resizes it to out_size×out_size,
  with one resample from the original image."""
  sx, sy = image.width / resize_size, image.height / resize_size
  left, top, right, bottom = box
  return image.resize(
    (out_size, out_size), Image.BILINEAR, box=(left * sx, top * sy, right * sx, bottom * sy)
  )


def random_resized_crop_box(
  rng: np.random.Generator, size: int, scale: tuple[float, float], ratio: tuple[float, float]
):
  """torchvision's RandomResizedCrop box in a size×size frame (10 tries, then center)."""
  area = size * size
  log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
  for _ in range(10):
    target_area = area * rng.uniform(*scale)
    aspect = math.exp(rng.uniform(*log_ratio))
    w = int(round(math.sqrt(target_area * aspect)))
    h = int(round(math.sqrt(target_area / aspect)))
    if 0 < w <= size and 0 < h <= size:
      left = int(rng.integers(0, size - w + 1))
      top = int(rng.integers(0, size - h + 1))
      return (left, top, left + w, top + h)
  return (0, 0, size, size)


def center_crop_box(size: int, crop: int):
  offset = (size - crop) / 2
  return (offset, offset, offset + crop, offset + crop)


LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2, as Pillow's "L" mode


def color_jitter(pixels: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
  """Brightness, contrast and saturation, each by a factor in [1 - s, 1 + s], in that order.

  The three steps are linear in the pixel, so they are applied as one 3×3 matrix and offset:
  brightness b, then contrast c around the mean luma g, then saturation s around each
  pixel's luma is ``c·b·(s·I + (1 - s)·1·Lᵀ)·x + (1 - c)·b·g`` (the rows of that matrix sum
  to 1, so the offset passes through unchanged). One pass instead of three.
  """
  if strength <= 0:
    return pixels
  brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, size=3)
  flat = pixels.reshape(-1, 3).astype(np.float32)
  mean_luma = float((flat @ LUMA).mean())
  matrix = (
    contrast
    * brightness
    * (saturation * np.eye(3, dtype=np.float32) + (1 - saturation) * np.outer(np.ones(3), LUMA))
  )
  out = flat @ matrix.T.astype(np.float32) + np.float32((1 - contrast) * brightness * mean_luma)
  return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(pixels.shape)


def record_data(record: Mapping[str, Any]):
  """A source record's encoded bytes (TFDS) or file path: what `open_image` reads."""
  return record["encoded"] if "encoded" in record else record["path"]


def jpeg_draft_size(config: ImageConfig) -> int | None:
  return config.resize_size if config.jpeg_draft else None


def _decode_options(config: ImageConfig) -> dict:
  """`open_photo`'s keyword arguments that `config` sets, for a photo resampled to the
  network's crop (which the decode budget counts)."""
  return {
    "draft_size": jpeg_draft_size(config),
    "max_pixels": config.max_pixels,
    "formats": config.formats,
    "max_decode_bytes": config.decode_budget,
    "max_jpeg_scans": config.max_jpeg_scans,
    "resample_to": config.crop_size,
  }


def train_image(data: bytes | str, rng: np.random.Generator, config: ImageConfig) -> np.ndarray:
  image = open_image(data, **_decode_options(config))
  box = random_resized_crop_box(rng, config.resize_size, config.crop_scale, config.crop_ratio)
  pixels = np.asarray(_resized_box(image, config.resize_size, box, config.crop_size))
  if config.horizontal_flip and rng.random() < 0.5:
    pixels = pixels[:, ::-1]
  return np.ascontiguousarray(color_jitter(pixels, rng, config.color_jitter))


def eval_crop(image: Image.Image, config: ImageConfig) -> np.ndarray:
  """An RGB image → the network's eval input: resize, center crop (one resample)."""
  box = center_crop_box(config.resize_size, config.crop_size)
  return np.asarray(_resized_box(image, config.resize_size, box, config.crop_size))


def eval_image(data: bytes | str, config: ImageConfig) -> np.ndarray:
  return eval_crop(open_image(data, **_decode_options(config)), config)


def eval_photo(
  data: bytes | str, config: ImageConfig, *, read_location: bool = True
) -> tuple[np.ndarray, Location | None]:
  """`eval_image` and the photo's EXIF location, from one decode."""
  image, location = open_photo(data, **_decode_options(config), read_location=read_location)
  return eval_crop(image, config), location


def _output(record, pixels, error: str = "") -> dict[str, Any]:
  return {
    "image": pixels,
    "label": np.int32(record["label"]),
    "id": record["id"],
    "valid": not error,
    "error": error,
  }


def decode_train_record(
  record: Mapping[str, Any], rng: np.random.Generator, config: ImageConfig
) -> dict[str, Any]:
  """A record → ``{"image", "label", "id", "valid", "error"}``; a bad file gives a black
  image with ``valid=False`` and the reason, to be dropped and counted downstream."""
  try:
    return _output(record, train_image(record_data(record), rng, config))
  except ImageDecodeError as e:
    return _output(record, np.zeros((config.crop_size, config.crop_size, 3), np.uint8), str(e))


def decode_eval_record(record: Mapping[str, Any], config: ImageConfig) -> dict[str, Any]:
  try:
    return _output(record, eval_image(record_data(record), config))
  except ImageDecodeError as e:
    return _output(record, np.zeros((config.crop_size, config.crop_size, 3), np.uint8), str(e))
