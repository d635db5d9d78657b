"""A landmarks CSV (``landmark_id`` with coordinates and/or country codes) → each landmark's
curriculum region, and the ``landmark_id,region`` CSV that training's ``data.regions_csv``
reads (`landmark-jax regions`). Why the regions are drawn so: docs/decisions.md, 'Curriculum
regions'."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import pathlib
from typing import Sequence

from landmark_jax.data.labels import REGIONS
from landmark_jax.data.regions import region_of_country, region_of_location
from landmark_jax.data.tables import open_csv, parse_id
from landmark_jax.errors import DataError, MissingFileError, UsageError
from landmark_jax.folders import atomic_write_text
from landmark_jax.text import spreadsheet_row, unquote_cell

# Accepted column names (any case, surrounding spaces ignored), the first present is used.
ID_COLUMN = "landmark_id"
LATITUDE_COLUMNS = ("latitude", "lat")
LONGITUDE_COLUMNS = ("longitude", "lon", "lng")
COUNTRY_COLUMNS = ("country_code", "country")  # ISO 3166-1 alpha-2 codes
BY = ("auto", "country", "coordinates")  # what decides a row's region


@dataclasses.dataclass(frozen=True)
class RegionAssignment:
  """One landmark's region and what decided it.

  Attributes:
    landmark_id: the id as written in the input (stripped).
    region: one of `REGIONS`.
    source: ``"country"``, ``"coordinates"`` or ``"default"`` (no location; the default).
    line: the input's line number.
    coordinates_region: the coordinates' region when the country decided and the row had
      coordinates too (so that disagreements can be reported), else None.
  """

  landmark_id: str
  region: str
  source: str
  line: int
  coordinates_region: str | None = None

  @property
  def disagrees(self) -> bool:
    return self.coordinates_region is not None and self.coordinates_region != self.region


def _column(fieldnames: dict[str, str], names: Sequence[str]) -> str | None:
  return next((fieldnames[n] for n in names if n in fieldnames), None)


def _number(text: str, what: str, where: str) -> float:
  try:
    return float(text)
  except ValueError:
    raise DataError(f"{where}: {what} {text!r} is not a number") from None


def assign_regions(
  path: str | os.PathLike, *, by: str = "auto", default_region: str | None = None
) -> list[RegionAssignment]:
  """The region of every landmark of a CSV, in the file's order.

  The CSV has a ``landmark_id`` column and either ``latitude,longitude`` (or ``lat`` and
  ``lon``/``lng``) or ``country_code`` (or ``country``) holding ISO 3166-1 alpha-2 codes,
  or both; other columns (``name``, an old ``region``) are ignored.

  Args:
    by: ``"auto"``: a row's country code where it has one (exact at borders), else its
      coordinates; ``"country"`` or ``"coordinates"``: only that column.
    default_region: the region of rows without a location (empty cells); None: such rows
      are an error naming them.

  Raises:
    MissingFileError: no such file.
    DataError: no ``landmark_id`` column, neither location column (or not the one `by`
      names), an empty or repeated landmark id, a value that is not a number, a latitude or
      longitude out of range, an unknown country code (each naming the line and landmark),
      rows without a location and no `default_region`, or no rows at all.
    UsageError: `by` or `default_region` is not one of the accepted values.
  """
  if by not in BY:
    raise UsageError(f"by={by!r}: expected one of {', '.join(BY)}")
  if default_region is not None and default_region not in REGIONS:
    raise UsageError(f"default region {default_region!r}: expected one of {', '.join(REGIONS)}")
  path = pathlib.Path(path)
  if not path.is_file():
    raise MissingFileError(f"landmarks CSV not found: {path}")
  with open_csv(path, csv.DictReader) as reader:  # a spreadsheet's encoding and quotes
    fieldnames = {name.strip().lower(): name for name in reader.fieldnames or [] if name}
    id_column = _column(fieldnames, [ID_COLUMN])
    latitude_column = _column(fieldnames, LATITUDE_COLUMNS)
    longitude_column = _column(fieldnames, LONGITUDE_COLUMNS)
    country_column = _column(fieldnames, COUNTRY_COLUMNS)
    has = f"it has {list(reader.fieldnames or [])}"
    if id_column is None:
      raise DataError(f"{path} has no landmark_id column; {has}")
    if (latitude_column is None) != (longitude_column is None):
      raise DataError(f"{path} has only one of latitude and longitude; {has}")
    if (
      by != "country"
      and latitude_column is None
      and (by == "coordinates" or country_column is None)
    ):
      raise DataError(
        f"{path} has no coordinate columns (latitude,longitude)"
        + ("" if by == "coordinates" else " and no country column (country_code or country)")
        + f"; {has}"
      )
    if by == "country" and country_column is None:
      raise DataError(f"{path} has no country column (country_code or country); {has}")
    use_country = country_column if by != "coordinates" else None
    use_coordinates = latitude_column is not None and by != "country"

    assignments, seen, unplaced = [], {}, []
    for row in reader:
      line = reader.line_num
      landmark_id = unquote_cell((row.get(id_column) or "").strip())
      if not landmark_id:
        cells = [c for v in row.values() for c in (v if isinstance(v, list) else [v])]
        if not any(c and c.strip() for c in cells):  # extra cells come as a list
          continue  # a line of empty cells
        raise DataError(f"{path} line {line}: empty landmark_id")
      where = f"{path} line {line} (landmark {landmark_id})"
      key = parse_id(landmark_id)
      if key in seen:
        raise DataError(
          f"{path}: landmark {landmark_id} appears twice (lines {seen[key]} and "
          f"{line}); each landmark needs one row"
        )
      seen[key] = line

      coordinates_region = None
      if use_coordinates:
        lat_text = (row.get(latitude_column) or "").strip()
        lon_text = (row.get(longitude_column) or "").strip()
        if bool(lat_text) != bool(lon_text):
          raise DataError(f"{where}: has only one of latitude and longitude")
        if lat_text:
          latitude = _number(lat_text, "latitude", where)
          longitude = _number(lon_text, "longitude", where)
          try:
            coordinates_region = region_of_location(latitude, longitude)
          except DataError as error:
            raise DataError(f"{where}: {error}") from None
      country = (row.get(use_country) or "").strip() if use_country else ""
      if country:
        try:
          region = region_of_country(country)
        except DataError as error:
          raise DataError(f"{where}: {error}") from None
        assignments.append(
          RegionAssignment(landmark_id, region, "country", line, coordinates_region)
        )
      elif coordinates_region is not None:
        assignments.append(RegionAssignment(landmark_id, coordinates_region, "coordinates", line))
      elif default_region is not None:
        assignments.append(RegionAssignment(landmark_id, default_region, "default", line))
      else:
        unplaced.append(f"{landmark_id} (line {line})")
  if unplaced:
    what = " or ".join(
      w for w, used in (("coordinates", use_coordinates), ("a country code", use_country)) if used
    )
    raise DataError(
      f"{path}: {len(unplaced)} landmark(s) without {what}: "
      f"{', '.join(unplaced[:5])}{', …' if len(unplaced) > 5 else ''}; fill them "
      "in, or give a default region (--default-region)"
    )
  if not assignments:
    raise DataError(f"{path} lists no landmarks")
  return assignments


def regions_csv_text(assignments: Sequence[RegionAssignment]) -> str:
  """``landmark_id,region`` rows: what training's ``data.regions_csv`` reads."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(["landmark_id", "region"])
  writer.writerows(spreadsheet_row([a.landmark_id, a.region]) for a in assignments)
  return out.getvalue()


def write_regions_csv(assignments: Sequence[RegionAssignment], path: str | os.PathLike) -> None:
  """Writes `regions_csv_text` atomically: a reader sees the old file or the new one."""
  path = pathlib.Path(path)
  if not path.parent.is_dir():
    raise MissingFileError(f"output folder not found: {path.parent}")
  atomic_write_text(path, regions_csv_text(assignments))
