"""What the recognizer takes, checked before anything is decoded: one photo or many, and a
location per photo. Pure functions; a misuse is a `TypeError` (the wrong kind of thing) or a
`ValueError` (the right kind, unusable), whose message says what was given and what is
accepted."""

from __future__ import annotations

import collections.abc
import numbers
import os
from typing import Any

import numpy as np
from PIL import Image

from landmark_jax.geo import Location

PHOTO_KINDS = "a path (str or os.PathLike), encoded bytes, a PIL image or a NumPy array"
ARRAY_KINDS = (
  "uint8 of shape (H, W, 3) RGB, (H, W) grayscale or (H, W, 4) RGBA, with H and W at least 1"
)
LOCATION_KINDS = "a Location, a (latitude, longitude) pair of numbers, or None"


def is_one_photo(value: Any) -> bool:
  """Whether `value` is a single photo (of a kind `check_photo` may accept), not many.

  A str, bytes or an array is iterable, so the order of these checks is the whole point:
  iterating them would recognise characters, bytes or pixel rows."""
  return isinstance(value, (str, os.PathLike, bytes, bytearray, Image.Image, np.ndarray))


def check_array(array: np.ndarray) -> np.ndarray:
  """An array photo as it is, if it is one (`ARRAY_KINDS`); else a `ValueError`.

  Only uint8: a float array's scale (0–1 or 0–255?) cannot be told from its values, and
  casting other integers would wrap values above 255 silently."""
  channels_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))
  if array.dtype == np.uint8 and channels_ok and min(array.shape[:2]) >= 1:
    return array
  hint = ""
  if array.dtype != np.uint8:
    hint = " (scale it to 0..255 and convert it with .astype(np.uint8))"
  raise ValueError(
    f"an array photo must be {ARRAY_KINDS}; got shape {array.shape}, dtype {array.dtype}{hint}"
  )


def check_photo(value: Any) -> Any:
  """`value` if it is one photo of an accepted kind (arrays: `check_array`); else a
  `TypeError` or `ValueError` saying why."""
  if isinstance(value, np.ndarray):
    return check_array(value)
  if is_one_photo(value):
    return value
  hint = " (convert it with np.asarray)" if hasattr(value, "__array__") else ""
  raise TypeError(f"a photo must be {PHOTO_KINDS}, not {type(value).__name__}{hint}")


def each_checked(items, check, what: str) -> list[Any]:
  """`check` of every item; a refusal names the item's position (``photo 3: …``)."""
  checked = []
  for i, item in enumerate(items):
    try:
      checked.append(check(item))
    except (TypeError, ValueError) as e:
      raise type(e)(f"{what} {i}: {e}") from None
  return checked


def photo_list(photos: Any) -> tuple[list[Any], bool]:
  """One photo or many → ``(the photos, checked, as a list; whether it was one photo)``.

  A list, tuple or other ordered iterable holds many; a mapping or set is refused (its
  keys, or its unordered members, are not what a caller means)."""
  if is_one_photo(photos):
    return [check_photo(photos)], True
  if isinstance(photos, (collections.abc.Mapping, collections.abc.Set)) or not isinstance(
    photos, collections.abc.Iterable
  ):
    raise TypeError(
      f"photos must be one photo ({PHOTO_KINDS}) or a list of them, not {type(photos).__name__}"
    )
  return each_checked(photos, check_photo, "photo"), False


def path_list(paths: Any) -> tuple[list[Any], bool]:
  """One photo file or many (as `photo_list`), each named by a str or os.PathLike path."""
  paths, one_photo = photo_list(paths)
  for i, path in enumerate(paths):
    if not isinstance(path, (str, os.PathLike)):
      raise TypeError(f"photo {i}: a photo file is a str or os.PathLike, not {type(path).__name__}")
  return paths, one_photo


def decoded_list(photos: Any, photo_type: type) -> tuple[list[Any], bool]:
  """One decoded photo or many → ``(the photos as a list; whether it was one photo)``.

  `photo_type` is `photos.Photo`, passed in because that module imports this one."""
  if isinstance(photos, photo_type):
    return [photos], True
  if is_one_photo(photos) or not isinstance(photos, collections.abc.Iterable):
    raise TypeError(
      f"decoded photos must be a Photo or a list of them (decode first, or recognize "
      f"{PHOTO_KINDS} with `recognize`), not {type(photos).__name__}"
    )
  photos = list(photos)
  for i, photo in enumerate(photos):
    if not isinstance(photo, photo_type):
      raise TypeError(f"photo {i}: a decoded photo must be a Photo, not {type(photo).__name__}")
  return photos, False


def _degrees(value: Any) -> float:
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise TypeError(f"a location must be {LOCATION_KINDS}; got a {type(value).__name__} in it")
  return float(value)


def as_location(value: Any) -> Location | None:
  """A photo's location: `value` as a `Location` (None stays None); latitude in [-90, 90]
  and longitude in [-180, 180], else a `ValueError`."""
  if value is None:
    return None
  if not isinstance(value, (tuple, list, np.ndarray)) or len(value) != 2:
    raise TypeError(f"a location must be {LOCATION_KINDS}, not {value!r}")
  location = Location(*(_degrees(v) for v in value))
  if not -90 <= location.latitude <= 90:
    raise ValueError(f"latitude {location.latitude} is outside [-90, 90]")
  if not -180 <= location.longitude <= 180:
    raise ValueError(f"longitude {location.longitude} is outside [-180, 180]")
  return location


def location_list(locations: Any, count: int, *, one_photo: bool = False) -> list[Location | None]:
  """The locations of `count` photos, checked (`as_location`): for one photo, its location;
  for many, None (all unknown) or one location (or None) per photo."""
  if one_photo:
    return [as_location(locations)]
  if locations is None:
    return [None] * count
  one_place = (
    isinstance(locations, (tuple, list))
    and len(locations) > 0
    and all(isinstance(v, numbers.Real) for v in locations)
  )
  if one_place or not isinstance(locations, collections.abc.Iterable):
    raise TypeError(
      f"give {count} photos a list of locations, one per photo ([location] * {count} for "
      f"one place), not {locations!r}"
    )
  locations = list(locations)
  if len(locations) != count:
    raise ValueError(
      f"{count} photos but {len(locations)} locations: give one location (or None) per photo"
    )
  return each_checked(locations, as_location, "location")
