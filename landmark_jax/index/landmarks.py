"""Landmark metadata: name, coordinates and category per landmark, kept with the index.

Read from a ``landmarks.csv`` with ``landmark_id`` and any of ``name``, ``latitude``,
``longitude``, ``category`` (extra columns are ignored); saved into the index folder so
predictions carry names and the geo filter has coordinates wherever the index goes.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from typing import Hashable, Mapping

from landmark_jax.data.sources import parse_id, read_csv
from landmark_jax.errors import DataError
from landmark_jax.geo import Location


@dataclasses.dataclass(frozen=True)
class LandmarkInfo:
  name: str | None = None
  latitude: float | None = None
  longitude: float | None = None
  category: str | None = None

  @property
  def has_location(self) -> bool:
    return self.latitude is not None and self.longitude is not None


def _float(value: str | None) -> float | None:
  if value is None or not value.strip():
    return None
  number = float(value)
  return number if math.isfinite(number) else None


def load_landmarks_csv(path: str | os.PathLike) -> dict[Hashable, LandmarkInfo]:
  """``landmark_id → LandmarkInfo``; out-of-range coordinates are an error naming the row."""
  table = {}
  for row in read_csv(path, ["landmark_id"]):
    info = LandmarkInfo(name=(row.get("name") or "").strip() or None,
                        latitude=_float(row.get("latitude")),
                        longitude=_float(row.get("longitude")),
                        category=(row.get("category") or "").strip() or None)
    if info.has_location and not Location(info.latitude, info.longitude).on_earth:
      raise DataError(f"{path}: landmark {row['landmark_id']} has coordinates out of range "
                       f"({info.latitude}, {info.longitude})")
    table[parse_id(row["landmark_id"])] = info
  return table


def save_landmarks_csv(table: Mapping[Hashable, LandmarkInfo], path: str | os.PathLike) -> None:
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["landmark_id", "name", "latitude", "longitude", "category"])
    for landmark_id, info in table.items():
      writer.writerow([landmark_id, info.name or "",
                       "" if info.latitude is None else repr(info.latitude),
                       "" if info.longitude is None else repr(info.longitude),
                       info.category or ""])
