"""Curriculum regions: which of the paper's four geographic parts a landmark belongs to, by
its country code (exact) or its coordinates (first match wins: the Southern Ocean, the boxes,
the Atlantic, then the lines of `region_boundaries`). Why the parts are drawn so:
docs/decisions.md, 'Curriculum regions'."""

from __future__ import annotations

from typing import Sequence

from landmark_jax.data.region_boundaries import (
  ATLANTIC_LONGITUDE,
  BOXES,
  COUNTRY_REGIONS,
  EURASIA_NORTH_EDGE,
  EUROPE_RUSSIA,
  EVROS_LONGITUDE,
  FAR_EAST,
  MEDITERRANEAN_EDGE,
  MIDDLE_EAST_EAST_EDGE,
  MIDDLE_EAST_NORTH_AFRICA,
  NORTH_AMERICA_OCEANIA,
  SOUTHERN_OCEAN_LATITUDE,
)
from landmark_jax.errors import DataError


def region_of_country(code: str) -> str:
  """The region of an ISO 3166-1 alpha-2 country code (any case, e.g. ``"jp"``).

  Raises:
    DataError: not a code of `COUNTRY_REGIONS` (a country name, ``UK`` for ``GB``, ...).
  """
  normalised = code.strip().upper()
  try:
    return COUNTRY_REGIONS[normalised]
  except KeyError:
    hint = " (the United Kingdom is GB)" if normalised == "UK" else ""
    raise DataError(
      f"unknown country code {code.strip()!r}: expected an ISO 3166-1 alpha-2 "
      f"code such as FR, US, EG, JP{hint}"
    ) from None


def _interpolate(vertices: Sequence[tuple[float, float]], x: float) -> float:
  """Piecewise-linear y(x) through `vertices` (x increasing); constant beyond the ends."""
  if x <= vertices[0][0]:
    return vertices[0][1]
  for (x0, y0), (x1, y1) in zip(vertices, vertices[1:]):
    if x <= x1:
      return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
  return vertices[-1][1]


def _mediterranean_edge(longitude: float) -> float:
  return next(lat for west, lat in reversed(MEDITERRANEAN_EDGE) if longitude >= west)


def check_location(latitude: float, longitude: float) -> None:
  """Raises DataError unless latitude is in [-90, 90] and longitude in [-180, 180]."""
  if not -90.0 <= latitude <= 90.0:  # NaN fails too
    raise DataError(f"latitude {latitude} is outside -90..90")
  if not -180.0 <= longitude <= 180.0:
    raise DataError(f"longitude {longitude} is outside -180..180")


def region_of_location(latitude: float, longitude: float) -> str:
  """The region of a point (degrees north, degrees east; WGS84): see the module docstring.

  Raises:
    DataError: latitude outside [-90, 90] or longitude outside [-180, 180] (or NaN).
  """
  check_location(latitude, longitude)
  if latitude <= SOUTHERN_OCEAN_LATITUDE:
    return NORTH_AMERICA_OCEANIA
  for box in BOXES:
    if box.contains(latitude, longitude):
      return box.region
  if longitude < ATLANTIC_LONGITUDE:
    return NORTH_AMERICA_OCEANIA
  if longitude < EVROS_LONGITUDE:
    return EUROPE_RUSSIA if latitude >= _mediterranean_edge(longitude) else MIDDLE_EAST_NORTH_AFRICA
  if latitude >= _interpolate(EURASIA_NORTH_EDGE, longitude):
    return EUROPE_RUSSIA
  if longitude < _interpolate(MIDDLE_EAST_EAST_EDGE, latitude):
    return MIDDLE_EAST_NORTH_AFRICA
  return FAR_EAST
