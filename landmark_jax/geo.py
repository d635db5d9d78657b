"""Locations: great-circle distances and the GPS position stored in a photo's EXIF.

A photo's location narrows the candidate landmarks (the source filters candidates "by class
references and meta-data"); a photo without one — or with tags that do not make sense — is
recognised exactly as without geo-information, never rejected.
"""

from __future__ import annotations

import io
import math
import os
from typing import NamedTuple

import numpy as np
from PIL import Image

EARTH_RADIUS_KM = 6371.0088  # the IUGG mean Earth radius
GPS_IFD = 0x8825
_LATITUDE_REF, _LATITUDE, _LONGITUDE_REF, _LONGITUDE = 1, 2, 3, 4


class Location(NamedTuple):
  latitude: float  # degrees, WGS84, north positive
  longitude: float  # degrees, east positive

  @property
  def on_earth(self) -> bool:
    """Latitude in [-90, 90] and longitude in [-180, 180] (NaN is neither)."""
    return -90 <= self.latitude <= 90 and -180 <= self.longitude <= 180


def great_circle_km(lat1, lon1, lat2, lon2):
  """Haversine distance in km; broadcasts over NumPy arrays."""
  lat1, lon1, lat2, lon2 = (np.radians(np.asarray(v, np.float64)) for v in (lat1, lon1, lat2, lon2))
  a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
  return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _degrees(value) -> float:
  """EXIF degrees/minutes/seconds (three rationals) → decimal degrees."""
  degrees, minutes, seconds = (float(v) for v in value)
  if not all(math.isfinite(v) for v in (degrees, minutes, seconds)):
    raise ValueError("non-finite GPS component")
  return degrees + minutes / 60.0 + seconds / 3600.0


def exif_location(image: bytes | str | os.PathLike | Image.Image) -> Location | None:
  """The GPS position in a photo's EXIF, or None when there is none or it is malformed
  (missing references, out-of-range or non-numeric values, unreadable EXIF)."""
  try:
    if isinstance(image, Image.Image):
      exif = image.getexif()
    else:
      source = io.BytesIO(image) if isinstance(image, (bytes, bytearray)) else image
      with Image.open(source) as opened:
        exif = opened.getexif()
    gps = exif.get_ifd(GPS_IFD)
    if not gps:
      return None
    latitude = _degrees(gps[_LATITUDE])
    longitude = _degrees(gps[_LONGITUDE])
    if str(gps[_LATITUDE_REF]).strip().upper().startswith("S"):
      latitude = -latitude
    elif not str(gps[_LATITUDE_REF]).strip().upper().startswith("N"):
      return None
    if str(gps[_LONGITUDE_REF]).strip().upper().startswith("W"):
      longitude = -longitude
    elif not str(gps[_LONGITUDE_REF]).strip().upper().startswith("E"):
      return None
    location = Location(latitude, longitude)
    return location if location.on_earth else None
  except Exception:  # any malformed EXIF means "no location", never an error
    return None
