"""The CSV tables a dataset comes with: reading them (a missing file or column is an error
naming it), landmark ids as integers where they are, a config's file found in the dataset
folder or the working directory, and the clean CSV that selects the photos to train on."""

from __future__ import annotations

import contextlib
import csv
import gc
import operator
import os
import pathlib
from typing import Hashable, Sequence

import numpy as np

from landmark_jax.errors import DataError, MissingFileError


def parse_id(value: str) -> Hashable:
  """GLDv2 landmark ids are integers; keep any other id as the string it is."""
  value = value.strip()
  try:
    return int(value)
  except ValueError:
    return value


def read_csv(path: str | os.PathLike, required: Sequence[str]) -> list[dict[str, str]]:
  """Rows of a headed CSV; a missing file or column is an error that names it."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise MissingFileError(f"CSV file not found: {path}")
  with open(path, newline="") as f:
    reader = csv.DictReader(f)
    missing = [c for c in required if c not in (reader.fieldnames or [])]
    if missing:
      raise DataError(f"{path} lacks column(s) {missing}; it has {reader.fieldnames}")
    return list(reader)


def read_csv_columns(
  path: str | os.PathLike, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, list[str]]:
  """`read_csv`'s cells as one list per `required` column: a row costs no dict, so GLDv2's
  4.1 M rows take a third of the time and a fraction of the memory of `read_csv`'s dicts.
  Blank lines are skipped (as `csv.DictReader` does); a row without a `required` cell is an
  error naming its line. Columns of `optional` the file has are returned as well."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise MissingFileError(f"CSV file not found: {path}")
  with open(path, newline="") as f, _without_gc():
    reader = csv.reader(f)
    fieldnames = next(reader, [])
    missing = [c for c in required if c not in fieldnames]
    if missing:
      raise DataError(f"{path} lacks column(s) {missing}; it has {fieldnames or None}")
    rows = [row for row in reader if row]
  required = [*required, *(c for c in optional if c in fieldnames)]
  positions = [fieldnames.index(c) for c in required]
  width = max(positions) + 1
  short = next((i for i, row in enumerate(rows) if len(row) < width), None)
  if short is not None:
    raise DataError(
      f"{path}: row {short + 2} has {len(rows[short])} cell(s), fewer than the "
      f"header's columns up to {required[positions.index(width - 1)]!r}"
    )
  return {column: [row[p] for row in rows] for column, p in zip(required, positions)}


@contextlib.contextmanager
def _without_gc():
  """The cyclic garbage collector off while millions of row lists are built: it would
  rescan all of them at every generation-2 pass (a third of the time for GLDv2's 4.1 M
  rows), and CSV rows make no reference cycles to collect."""
  enabled = gc.isenabled()
  gc.disable()
  try:
    yield
  finally:
    if enabled:
      gc.enable()


def parse_ids(values: Sequence[str]) -> list:
  """`parse_id` of each value, None for a blank one (GLDv2: 4.1 M cells, 203 k landmark
  ids). Cells that are all ASCII digits (GLDv2's) are converted as a NumPy array; any other
  cell sends the lot to `parse_id`, once per distinct value."""
  digits = _decimal_cells(values)
  if digits is not None:
    return digits.tolist()
  parsed = {value: parse_id(value) if value.strip() else None for value in dict.fromkeys(values)}
  return list(map(parsed.__getitem__, values))


def _decimal_cells(values: Sequence[str]) -> np.ndarray | None:
  """int64 of cells that are 1–18 ASCII digits each (what `int` gives them), else None."""
  cells = np.asarray(values, dtype=np.str_)
  width = cells.dtype.itemsize // 4
  if not cells.size or cells.ndim != 1 or width > 18:
    return None
  codes = cells.view(np.uint32).reshape(len(cells), width)  # NumPy pads with 0 at the end
  is_digit = (codes >= ord("0")) & (codes <= ord("9"))
  if not (is_digit[:, 0].all() and (is_digit | (codes == 0)).all()):
    return None
  value = np.zeros(len(cells), np.int64)
  for column, digit in zip(codes.T.astype(np.int64), is_digit.T):
    value = np.where(digit, value * 10 + (column - ord("0")), value)
  return value


def read_landmark_table(path: str | os.PathLike, column: str) -> dict[Hashable, str]:
  """``landmark_id → value`` from a CSV with `landmark_id` and `column` (e.g. region)."""
  return {
    parse_id(row["landmark_id"]): row[column].strip()
    for row in read_csv(path, ["landmark_id", column])
    if row[column].strip()
  }


def find_data_file(
  root: str | os.PathLike, name: str | os.PathLike, what: str, *, folder: bool = False
) -> pathlib.Path:
  """A file (or, with `folder`, a folder) a data config names: absolute as given; relative,
  in the dataset folder `root` (GLDv2 ships ``train_clean.csv`` there), else from the
  working directory (where `landmark-jax clean --out` wrote one)."""
  path = pathlib.Path(name)
  if path.is_absolute():
    candidates = [path]
  else:
    candidates = [pathlib.Path(root) / path, path.absolute()]
  for candidate in candidates:
    if candidate.is_dir() if folder else candidate.is_file():
      return candidate
  raise MissingFileError(f"{what} not found: " + " nor ".join(map(str, dict.fromkeys(candidates))))


def read_clean_csv(path: str | os.PathLike) -> dict[str, Hashable]:
  """``image id → landmark id`` of a ``landmark_id,images`` CSV (images space-separated):
  GLDv2's ``train_clean.csv`` or the one `landmark-jax clean` writes."""
  clean: dict[str, Hashable] = {}
  for row in read_csv(path, ["landmark_id", "images"]):
    landmark_id = parse_id(row["landmark_id"])
    images = row["images"].split()
    if not clean.keys().isdisjoint(images):  # a photo seen before: the same landmark?
      for image_id in images:
        if clean.setdefault(image_id, landmark_id) != landmark_id:
          raise DataError(
            f"{path} lists photo {image_id} under two landmarks "
            f"({clean[image_id]!r} and {landmark_id!r})"
          )
    clean.update(dict.fromkeys(images, landmark_id))
  return clean


def select_clean(
  ids: Sequence[str], landmark_ids: Sequence[Hashable], clean_csv: pathlib.Path, data: str
) -> list[int]:
  """Indices of the photos to train on after cleaning: the landmark photos `clean_csv` lists
  and every non-landmark photo (landmark None; a clean CSV lists landmark photos only, and
  the non-landmark class must still be trained).

  Raises:
    DataError: the CSV names photos `data` does not have, or gives one another landmark: it
      was made from other data, and training would quietly drop what it names.
  """
  clean = read_clean_csv(clean_csv)
  landmark_of = dict(zip(ids, landmark_ids))
  # Set operations and `map` in C first; the lists that name photos only on an error.
  unknown = (
    []
    if clean.keys() <= landmark_of.keys()
    else [image_id for image_id in clean if image_id not in landmark_of]
  )
  if unknown:
    raise DataError(
      f"{clean_csv} names {len(unknown)} photo(s) that {data} does not have "
      f"(first: {', '.join(unknown[:3])}): was it made from other data?"
    )
  moved = (
    []
    if not any(map(operator.ne, map(landmark_of.__getitem__, clean), clean.values()))
    else [image_id for image_id, landmark in clean.items() if landmark_of[image_id] != landmark]
  )
  if moved:
    first = moved[0]
    raise DataError(
      f"{clean_csv} puts {len(moved)} photo(s) under another landmark than "
      f"{data} does (first: {first}, {clean[first]!r} there, "
      f"{landmark_of[first]!r} here): was it made from other data?"
    )
  listed = np.fromiter(map(clean.__contains__, ids), bool, count=len(ids))
  non_landmark = np.fromiter(map(_is_none, landmark_ids), bool, count=len(ids))
  return np.flatnonzero(listed | non_landmark).tolist()


def _is_none(value) -> bool:
  return value is None
