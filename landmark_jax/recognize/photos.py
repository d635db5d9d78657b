"""Photos as the network takes them: any photo a caller has (a path, bytes, a PIL image, an
array) decoded once into its eval crop and the location it was taken at (`Photo`)."""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import os
from typing import Any, Iterator

import numpy as np
from PIL import Image

from landmark_jax.data import ImageSource
from landmark_jax.data.config import ImageConfig
from landmark_jax.data.transforms import (
  ImageDecodeError,
  eval_crop,
  eval_photo,
  record_data,
  to_rgb,
)
from landmark_jax.geo import Location, exif_location
from landmark_jax.recognize.inputs import as_location, check_photo


@dataclasses.dataclass(frozen=True)
class Photo:
  """A decoded photo, ready for the network: its eval crop and where it was taken."""

  pixels: np.ndarray  # (S, S, 3) uint8, the center crop the model takes
  location: Location | None = None  # from the caller, else the photo's EXIF GPS, else None
  # What it was decoded from (path, bytes, PIL image or array): verification describes an
  # uncertain photo again, whole and at its own size, from it (`recognize.verifier`)
  source: Any = dataclasses.field(default=None, compare=False, repr=False)


def decode_photo(
  image: Any, config: ImageConfig, *, location: Location | None = None, read_exif: bool = True
) -> Photo:
  """A path, encoded bytes, PIL image or uint8 array (`inputs.ARRAY_KINDS`) → `Photo`,
  decoding it once.

  `location` (`inputs.as_location`), when given, is the photo's; otherwise (with
  `read_exif`) its EXIF GPS position is read from the same opened file. Arrays carry no
  EXIF; grayscale and RGBA arrays are converted as files are (RGBA over white).

  Raises:
    ImageDecodeError: naming what is wrong with the photo's file or bytes.
    TypeError, ValueError: not a photo of an accepted kind (`inputs.check_photo`), or not a
      location.
  """
  image = check_photo(image)
  location = as_location(location)
  source = image
  if isinstance(image, np.ndarray):
    image = Image.fromarray(image)  # mode L, RGB or RGBA, from the checked shape
  if isinstance(image, Image.Image):
    found = exif_location(image) if read_exif and location is None else None
    # The same colour conversion as files get (alpha over white, 16-bit scaled).
    return Photo(eval_crop(to_rgb(image), config), location or found, source)
  if isinstance(image, os.PathLike):
    image = source = os.fspath(image)
  if location is not None or not read_exif:
    pixels, _ = eval_photo(image, config, read_location=False)
    return Photo(pixels, location, source)
  pixels, found = eval_photo(image, config)
  return Photo(pixels, found, source)


def decode_records(
  source: ImageSource, config: ImageConfig, *, read_exif: bool = True, threads: int | None = None
) -> Iterator[tuple[int, Photo | ImageDecodeError]]:
  """Every record of `source` decoded (in order, by a pool of threads: Pillow releases the
  GIL while it decodes and resamples): ``(record index, Photo or the decode error)``. At
  most a few photos per thread are decoded ahead of the consumer, so memory stays bounded
  whatever the source's size."""

  def decode(i: int):
    try:
      return i, decode_photo(record_data(source[i]), config, read_exif=read_exif)
    except ImageDecodeError as e:
      return i, e

  threads = threads or min(8, os.cpu_count() or 1)
  ahead = collections.deque()
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    for i in range(len(source)):
      ahead.append(pool.submit(decode, i))
      if len(ahead) >= 4 * threads:
        yield ahead.popleft().result()
    while ahead:
      yield ahead.popleft().result()


def file_problem(path: str | os.PathLike) -> str | None:
  """What makes `path` no photo file at all, in words (None: a file, to be decoded)."""
  if os.path.isdir(path):
    return "is a folder, not a photo"
  if not os.path.lexists(path):
    return "no such file"
  if not os.path.exists(path):
    return "a link to a missing file"
  if not os.access(path, os.R_OK):
    return "not readable (permission denied)"
  return None
