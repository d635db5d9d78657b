"""Landmark metadata: name, coordinates and category per landmark, kept with the index.

Read from a ``landmarks.csv`` with ``landmark_id`` and any of ``name``, ``latitude`` with
``longitude``, ``category`` (other columns are ignored, but not a misspelt one: ``lat``,
``Name``); saved into the index folder so predictions carry names and the geo filter has
coordinates wherever the index goes. A row must describe a landmark (`refuse_unmatched_rows`)
and a landmark has one row.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import logging
import math
import os
from typing import Hashable, Iterable, Mapping, Sequence

from landmark_jax.data.tables import open_csv, parse_id
from landmark_jax.errors import DataError
from landmark_jax.geo import Location
from landmark_jax.text import printable, spreadsheet_cell, unquote_cell

logger = logging.getLogger(__name__)

COLUMNS = ("landmark_id", "name", "latitude", "longitude", "category")
EXPECTED_HEADER = (
  f"expected a header like {','.join(COLUMNS)}: landmark_id is required; name, latitude "
  "with longitude, and category are optional; other columns (region, …) are ignored"
)
# Columns a user meant as one of `COLUMNS` (beside any of them in other case or spacing),
# which would otherwise be ignored with everything in them.
_MEANT = {"lat": "latitude", "lon": "longitude", "lng": "longitude", "long": "longitude"}
SHOWN = 5  # rows named in a message, before "and N more"
# The longest name or category, in characters: the longest Wikipedia title is about 250;
# a longer cell is a mistake (a quote left open, a pasted page), and `CentroidIndex.load`
# refuses a landmarks.csv of more than 4 KiB a landmark.
MAX_TEXT = 1000


@dataclasses.dataclass(frozen=True)
class LandmarkInfo:
  name: str | None = None
  latitude: float | None = None
  longitude: float | None = None
  category: str | None = None

  @property
  def has_location(self) -> bool:
    return self.latitude is not None and self.longitude is not None


def parse_coordinate(where: str, column: str, value: str | None) -> float | None:
  """A latitude or longitude cell: None when blank; text, NaN or infinity is a DataError
  naming the cell (`where`: the file and line), since dropping it would quietly leave the
  landmark or photo out of the geo filter."""
  if value is None or not value.strip():
    return None
  try:
    number = float(value)
  except ValueError:
    number = None
  if number is None or not math.isfinite(number):
    raise DataError(
      f"{where}: {column} {printable(value.strip()[:40])!r} is not a number in degrees; "
      "correct the cell, or leave it (and its pair) empty"
    )
  return number


def _few(items: Sequence) -> str:
  """The first `SHOWN` items, and how many more; `printable`, as ids from a CSV."""
  shown = printable(", ".join(map(str, items[:SHOWN])))
  return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def check_landmarks_header(path: str | os.PathLike, header: Sequence[str]) -> None:
  """Raises DataError for a header whose columns would be read wrong: no landmark_id, a
  column meant as one of `COLUMNS` under another spelling (``lat,lon``: the coordinates
  would be dropped), or one coordinate column without the other."""
  known = {column.casefold(): column for column in COLUMNS}
  meant = {}
  for column in header:
    key = column.strip().casefold()
    if column not in COLUMNS and (key in _MEANT or key in known):
      meant[column] = _MEANT.get(key, known.get(key))
  if meant:
    raise DataError(
      f"{path}: column(s) {', '.join(repr(c) for c in meant)} would be ignored: name them "
      f"{', '.join(meant.values())}; {EXPECTED_HEADER}"
    )
  if "landmark_id" not in header:
    raise DataError(
      f"{path} has no landmark_id column (its header: {','.join(header) or 'none'}); "
      f"{EXPECTED_HEADER}"
    )
  coordinates = [c for c in ("latitude", "longitude") if c in header]
  if len(coordinates) == 1:
    missing = "longitude" if coordinates == ["latitude"] else "latitude"
    raise DataError(f"{path} has a {coordinates[0]} column but no {missing}; {EXPECTED_HEADER}")


def load_landmarks_csv(path: str | os.PathLike) -> dict[Hashable, LandmarkInfo]:
  """``landmark_id → LandmarkInfo`` (`open_csv`: UTF-8, with or without a BOM). A header read
  wrong (`check_landmarks_header`), a landmark with several rows, a cell with a line break,
  a coordinate that is no number or out of range: an error naming the columns or rows."""
  with open_csv(path) as reader:
    header = next(reader, [])
    check_landmarks_header(path, header)
    numbered = [(reader.line_num, row) for row in reader if row]  # the line a row ends on
  numbered = [(line, _cells(path, line, header, row)) for line, row in numbered]
  lines: dict[Hashable, list[int]] = {}
  for line, row in numbered:
    lines.setdefault(parse_id(row["landmark_id"]), []).append(line)
  repeated = [
    f"{lid} (lines {', '.join(map(str, at))})" for lid, at in lines.items() if len(at) > 1
  ]
  if repeated:
    raise DataError(
      f"{path}: {len(repeated)} landmark_id(s) have several rows, which would overwrite each "
      f"other: {_few(repeated)}; give each landmark one row"
    )
  table = {}
  for line, row in numbered:
    info = LandmarkInfo(
      name=(row.get("name") or "").strip() or None,
      latitude=parse_coordinate(f"{path} line {line}", "latitude", row.get("latitude")),
      longitude=parse_coordinate(f"{path} line {line}", "longitude", row.get("longitude")),
      category=(row.get("category") or "").strip() or None,
    )
    if (info.latitude is None) != (info.longitude is None):
      given, missing = ("latitude", "longitude")[:: 1 if info.longitude is None else -1]
      raise DataError(
        f"{path} line {line}: landmark {printable(row['landmark_id'])} has a {given} but no "
        f"{missing}; give both, or leave both empty for no location"
      )
    if info.has_location and not Location(info.latitude, info.longitude).on_earth:
      raise DataError(
        f"{path}: landmark {row['landmark_id']} has coordinates out of range "
        f"({info.latitude}, {info.longitude})"
      )
    table[parse_id(row["landmark_id"])] = info
  return table


def fields_given(path: str | os.PathLike) -> tuple[str, ...]:
  """The `LandmarkInfo` fields a landmarks CSV has a column for: an update leaves the
  others as they are (a CSV of ids and categories must not erase the names)."""
  with open_csv(path) as reader:
    header = next(reader, [])
  return tuple(field for field in COLUMNS[1:] if field in header)


def _cells(path, line: int, header: Sequence[str], row: Sequence[str]) -> dict[str, str]:
  """A row's cells of `COLUMNS` by column, `spreadsheet_cell`'s quote removed. A line break
  in one is a DataError: no id, name or number holds one, so a quote closed late has merged
  rows into it."""
  cells = {column: unquote_cell(cell) for column, cell in zip(header, row) if column in COLUMNS}
  broken = [column for column, cell in cells.items() if "\n" in cell or "\r" in cell]
  if broken:
    start = line - sum(cell.count("\n") for cell in row)  # `line` is where the row ends
    raise DataError(
      f"{path} line {start}: a line break in the {broken[0]} cell "
      f"({printable(cells[broken[0]][:40])}): is a quote in this row or before it left open?"
    )
  long = [c for c in ("name", "category") if len(cells.get(c) or "") > MAX_TEXT]
  if long:
    raise DataError(
      f"{path} line {line}: a {long[0]} of {len(cells[long[0]]):,} characters "
      f"({printable(cells[long[0]][:40])}…); at most {MAX_TEXT:,}"
    )
  return cells


def refuse_unmatched_rows(
  unmatched: Sequence[Hashable],
  csv_name: str | os.PathLike,
  *,
  ignore_unmatched: bool = False,
  among: str = "of the index (by landmark_id, or by name for a landmark added from a folder)",
) -> None:
  """The one check of a landmarks CSV's rows against the landmarks they are for
  (`build-index`, `add-landmarks`, `update-landmarks`): rows that describe no landmark
  (`unmatched`, by their landmark_id; `among` says what they were matched against) are a
  DataError, since the landmarks they were meant for are left without names or
  coordinates; with `ignore_unmatched`, one warning line, and the caller leaves them out."""
  if not unmatched:
    return
  rows = f"{len(unmatched)} row(s) match no landmark {among}: landmark_id {_few(list(unmatched))}"
  if not ignore_unmatched:
    raise DataError(
      f"{csv_name}: {rows}; correct their landmark_id, or pass --ignore-unmatched to skip them"
    )
  logger.warning("%s: %s; skipped (--ignore-unmatched)", csv_name, rows)


def save_landmarks_csv(table: Mapping[Hashable, LandmarkInfo], path: str | os.PathLike) -> None:
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(["landmark_id", "name", "latitude", "longitude", "category"])
    for landmark_id, info in table.items():
      writer.writerow(
        [
          spreadsheet_cell(landmark_id),
          spreadsheet_cell(info.name or ""),
          "" if info.latitude is None else repr(info.latitude),
          "" if info.longitude is None else repr(info.longitude),
          spreadsheet_cell(info.category or ""),
        ]
      )


def find_landmark(
  text: str, landmark_ids: Iterable[Hashable], landmarks: Mapping[Hashable, LandmarkInfo]
) -> Hashable:
  """The landmark that `text` names, among `landmark_ids`: its id (``42``, ``"sacre_coeur"``),
  else its name in `landmarks` (exactly, else ignoring case), so that a user can say either.

  Raises:
    DataError: no landmark, or several with that name (naming them, and the closest ids and
      names when there is none).
  """
  landmark_ids = list(landmark_ids)
  by_id = [lid for lid in landmark_ids if lid == parse_id(text) or str(lid) == text]
  if by_id:
    return by_id[0]
  present = set(landmark_ids)
  named = {lid: info.name for lid, info in landmarks.items() if info.name and lid in present}
  for same in (lambda name: name == text, lambda name: name.casefold() == text.casefold()):
    matches = [lid for lid, name in named.items() if same(name)]
    if len(matches) == 1:
      return matches[0]
    if matches:
      raise DataError(
        f"{len(matches)} landmarks are named {text!r} (ids "
        f"{', '.join(map(str, matches))}): name one by its id"
      )
  words = list(dict.fromkeys([str(lid) for lid in landmark_ids] + list(named.values())))
  close = [w for w in words if text.casefold() in w.casefold()][:3] or difflib.get_close_matches(
    text, words, n=3, cutoff=0.6
  )
  raise DataError(
    f"no landmark {text!r} in the index (neither an id nor a name)"
    + (f"; did you mean {', '.join(close)}?" if close else "")
  )


def describe(landmark_id: Hashable, landmarks: Mapping[Hashable, LandmarkInfo]) -> str:
  """``42 (sacre_coeur)``, or the bare id when the landmark has no name."""
  info = landmarks.get(landmark_id)
  named = info is not None and info.name and info.name != str(landmark_id)
  return f"{landmark_id} ({info.name})" if named else str(landmark_id)


@dataclasses.dataclass(frozen=True)
class MetadataMerge:
  """What `merge_metadata` did with each row of a landmarks CSV."""

  landmarks: dict  # the merged table: landmark id → LandmarkInfo
  by_id: tuple = ()  # new landmarks whose row has their id
  by_name: dict = dataclasses.field(default_factory=dict)  # new landmark → the row whose
  #                                                           name is its id (a folder's name)
  updated: tuple = ()  # existing landmarks whose row replaced their metadata
  not_updated: tuple = ()  # existing landmarks whose row was left alone
  unchanged: tuple = ()  # existing landmarks whose row says what they already hold
  without_row: tuple = ()  # new landmarks no row describes
  unused: tuple = ()  # rows of ids that are neither new nor in the index

  def summary(self) -> dict:
    """JSON for the manifest's edit record (ids as strings)."""
    lists = {
      key: [str(v) for v in getattr(self, key)]
      for key in ("by_id", "updated", "not_updated", "unchanged", "without_row", "unused")
    }
    return {**lists, "by_name": {str(new): str(row) for new, row in self.by_name.items()}}


def merge_metadata(
  existing: Mapping[Hashable, LandmarkInfo],
  present: Iterable[Hashable],
  new_ids: Iterable[Hashable],
  table: Mapping[Hashable, LandmarkInfo] | None,
  *,
  update_existing: bool = False,
  fields: Sequence[str] = COLUMNS[1:],
) -> MetadataMerge:
  """The index's landmark table after adding `new_ids`, described by `table` (a landmarks
  CSV), next to the landmarks already `present` with metadata `existing`.

  A new landmark takes the row whose name is its id — landmarks added from folders are
  named by folder, so ``sacre_coeur/`` matches a row ``17,sacre_coeur,…`` — else the row
  with its id. Existing landmarks keep their metadata unless `update_existing`
  (``--update-metadata``): a CSV written for new photos often reuses ids the index already
  has, and silently renaming landmark 0 would make every answer about it wrong. A remaining
  row describes the existing landmark with its id; or, when its id is no landmark of the
  index and its name is the id of a folder landmark (a string id), that one.

  `fields`: the `LandmarkInfo` fields the CSV has columns for (`fields_given`); an existing
  landmark keeps the others.

  Raises:
    DataError: the merge would give two landmarks one name (then `find_landmark` could
      not tell them apart, and neither could a user), or a row's id and name point at two
      different existing landmarks.
  """
  table = dict(table or {})
  merged = dict(existing)
  present = set(present)
  new_ids = list(new_ids)
  folder_named = {lid for lid in present if isinstance(lid, str)}
  used, by_id, by_name, without = set(), [], {}, []
  rows_by_name = {}
  for row_id, info in table.items():
    if info.name:
      rows_by_name.setdefault(info.name.casefold(), []).append(row_id)
  for new_id in new_ids:
    named = [row for row in rows_by_name.get(str(new_id).casefold(), []) if row not in used]
    if len(named) == 1:
      merged[new_id] = table[named[0]]
      used.add(named[0])
      by_name[new_id] = named[0]
    elif new_id in table and new_id not in used:
      merged[new_id] = table[new_id]
      used.add(new_id)
      by_id.append(new_id)
    else:
      without.append(new_id)
  updated, not_updated, unchanged, unused, ambiguous = [], [], [], [], []
  for row_id, info in table.items():
    if row_id in used:
      continue
    target = row_id
    if info.name in folder_named and info.name != row_id:
      if row_id in present:  # `7,sacre_coeur`: landmark 7, or the landmark sacre_coeur?
        ambiguous.append((row_id, info.name))
        continue
      target = info.name
    if target in present:
      if target in merged:  # the columns the CSV lacks keep what the landmark holds
        info = dataclasses.replace(
          merged[target], **{field: getattr(info, field) for field in fields}
        )
      if merged.get(target) == info:
        unchanged.append(target)
        continue
      if update_existing:
        merged[target] = info
        updated.append(target)
      else:
        not_updated.append(target)
    else:
      unused.append(row_id)
  if ambiguous and update_existing:
    raise DataError(
      f"rows {'; '.join(f'{i},{n}' for i, n in ambiguous)}: the landmark_id is one landmark "
      "of the index and the "
      "name is another's id; give each row the id of the landmark it describes"
    )
  not_updated += [row_id for row_id, _ in ambiguous]
  _refuse_shared_names(merged, present | set(new_ids), set(updated) | set(new_ids))
  return MetadataMerge(
    merged,
    tuple(by_id),
    by_name,
    tuple(updated),
    tuple(not_updated),
    tuple(unchanged),
    tuple(without),
    tuple(unused),
  )


def _refuse_shared_names(
  table: Mapping[Hashable, LandmarkInfo], landmarks: set, changed: set
) -> None:
  """Raises DataError if a landmark in `changed` now shares its name (or its name is the id
  of) another landmark in `landmarks`."""
  owners: dict[str, list] = {}
  for lid in landmarks:
    info = table.get(lid)
    if info is not None and info.name:
      owners.setdefault(info.name.casefold(), []).append(lid)
  ids = {str(lid).casefold(): lid for lid in landmarks}
  clashes = []
  for name, lids in owners.items():
    others = set(lids) | ({ids[name]} if name in ids else set())
    if len(others) > 1 and others & changed:
      clashes.append(
        f"{table[lids[0]].name!r} would name " + " and ".join(map(str, sorted(others, key=str)))
      )
  if clashes:
    raise DataError(
      "two landmarks would share one name: "
      + "; ".join(clashes)
      + ". A landmark added from a folder is named by the folder; give each "
      "landmark its own name (rename the folder, or check the landmarks CSV's "
      "landmark_id column), or remove the one that is not wanted"
    )
