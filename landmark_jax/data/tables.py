"""The CSV tables a dataset comes with: reading them (`open_csv`: a spreadsheet's encoding
and quotes; a missing file or column is an error naming it), landmark ids as integers where
they are, a config's file found in the dataset folder or the working directory, and the
clean CSV that selects the photos to train on."""

from __future__ import annotations

import collections
import contextlib
import csv
import gc
import operator
import os
import pathlib
from typing import Hashable, Iterator, Sequence

import numpy as np

from landmark_jax.errors import DataError, MissingFileError
from landmark_jax.text import unquote_cell


def parse_id(value: str) -> Hashable:
  """GLDv2 landmark ids are integers; keep any other id as the string it is."""
  value = value.strip()
  try:
    return int(value)
  except ValueError:
    return value


# The longest cell read, in characters: csv's default, 131,072, is below a clean CSV's images
# cell for a landmark of 7,700 photos (17 characters each); a longer cell is an error.
MAX_CELL = 1 << 20


@contextlib.contextmanager
def open_csv(path: str | os.PathLike, reader=csv.reader) -> Iterator:
  """A `reader` (`csv.reader`, `csv.DictReader`) of a CSV a user gave or a spreadsheet
  saved: UTF-8 (Excel's BOM is skipped; no other encoding is guessed), quotes read
  strictly, so that an unterminated quote is an error rather than the rows after it merged
  into one cell. A byte that is not UTF-8, a malformed quote or a cell over `MAX_CELL`
  characters is one DataError naming the line."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise MissingFileError(f"CSV file not found: {path}")
  if csv.field_size_limit() < MAX_CELL:  # process-wide: only ever raised, never lowered
    csv.field_size_limit(MAX_CELL)
  with open(path, encoding="utf-8-sig", newline="") as f:
    try:
      yield reader(f, strict=True)
    except (UnicodeDecodeError, csv.Error):
      raise _malformed(path) from None


def _malformed(path: pathlib.Path) -> DataError:
  """Where a CSV that failed to read went wrong: read again (on this error path only), so
  the fast path of 4.1 M rows keeps no line numbers."""
  with open(path, "rb") as f:
    if f.read(2) in (b"\xff\xfe", b"\xfe\xff"):  # Excel's "Unicode Text" is UTF-16
      return DataError(
        f"{path}: UTF-16 text (Excel's 'Unicode Text'), not a UTF-8 CSV; save it as 'CSV "
        "UTF-8' (Excel: File > Save As > CSV UTF-8), or convert it, e.g. iconv -f utf-16 "
        "-t utf-8"
      )
    f.seek(0)
    offset = 0
    for number, line in enumerate(f, 1):  # b"\n" never occurs inside a UTF-8 character
      try:
        line.decode("utf-8")
      except UnicodeDecodeError as error:
        return DataError(
          f"{path} line {number}: not UTF-8 (byte 0x{line[error.start]:02X} at offset "
          f"{offset + error.start}); save it as 'CSV UTF-8' (Excel: File > Save As > CSV "
          "UTF-8), or convert it, e.g. iconv -f cp1252 -t utf-8"
        )
      offset += len(line)
  with open(path, encoding="utf-8-sig", newline="") as f:
    reader, start = csv.reader(f, strict=True), 1
    try:
      for _ in reader:
        start = reader.line_num + 1
    except csv.Error as error:
      return DataError(f"{path} line {start}: {_csv_problem(str(error))}")
  return DataError(f"{path}: not a readable CSV")  # the file changed while being read


def _csv_problem(message: str) -> str:
  if "unexpected end of data" in message:
    return "a quote opened in this row is never closed (unterminated quote)"
  if "field larger than field limit" in message:
    return (
      f"a cell of more than {csv.field_size_limit():,} characters: is a quote left open before it?"
    )
  if "expected after" in message:
    return 'a quote inside a quoted cell must be doubled ("")'
  return message


def _checked_cells(path: pathlib.Path, column: str, cells: list[str]) -> list[str]:
  """`cells` of `column` with `spreadsheet_cell`'s quote removed, once each was checked by
  `_refuse_line_breaks`. Tested on one joined string: GLDv2's 4.1 M cells in C."""
  joined = "\0".join(cells)
  _refuse_line_breaks(path, column, cells, joined)
  if joined.startswith("'") or "\0'" in joined:
    return [unquote_cell(cell) for cell in cells]
  return cells


def _refuse_line_breaks(path: pathlib.Path, column: str, cells: list[str], joined: str) -> None:
  """A DataError naming the row of the first cell with a line break: an id or a number
  never holds one, so a quote closed a few lines late has merged rows into it."""
  if "\n" in joined or "\r" in joined:
    row = next(i for i, cell in enumerate(cells) if "\n" in cell or "\r" in cell)
    raise DataError(
      f"{path}: row {row + 2} has a line break in its {column} cell "
      f"({cells[row][:40]!r}): is a quote in or before it left open?"
    )


def read_csv(path: str | os.PathLike, required: Sequence[str]) -> list[dict[str, str]]:
  """Rows of a headed CSV (`open_csv`); a missing file or column is an error that names it,
  and so is a row without a `required` cell or with a line break in one. Cells a row lacks
  are None, as `csv.DictReader` gives them."""
  path = pathlib.Path(path)
  with open_csv(path) as reader:
    header = next(reader, [])
    missing = [c for c in required if c not in header]
    if missing:
      raise DataError(f"{path} lacks column(s) {missing}; it has {header or None}")
    rows = [row for row in reader if row]
  _refuse_short_rows(path, rows, header, required)
  table = []
  for row in rows:
    cells = dict(zip(header, map(unquote_cell, row)))
    if len(row) < len(header):
      cells.update(dict.fromkeys(header[len(row) :]))
    table.append(cells)
  for column in required:
    cells = [row[column] for row in table]
    _refuse_line_breaks(path, column, cells, "\0".join(cells))
  return table


def read_csv_columns(
  path: str | os.PathLike, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, list[str]]:
  """`read_csv`'s cells as one list per `required` column: a row costs no dict, so GLDv2's
  4.1 M rows take a third of the time and a fraction of the memory of `read_csv`'s dicts.
  Blank lines are skipped (as `csv.DictReader` does); a row without a `required` cell, or
  with a line break in a cell returned, is an error naming its row. Columns of `optional`
  the file has are returned as well."""
  path = pathlib.Path(path)
  with open_csv(path) as reader, _without_gc():
    fieldnames = next(reader, [])
    missing = [c for c in required if c not in fieldnames]
    if missing:
      raise DataError(f"{path} lacks column(s) {missing}; it has {fieldnames or None}")
    rows = [row for row in reader if row]
  required = [*required, *(c for c in optional if c in fieldnames)]
  _refuse_short_rows(path, rows, fieldnames, required)
  return {
    column: _checked_cells(path, column, [row[p] for row in rows])
    for column, p in ((c, fieldnames.index(c)) for c in required)
  }


def _refuse_short_rows(path, rows: list[list[str]], header: list[str], columns) -> None:
  positions = [header.index(c) for c in columns]
  width = max(positions, default=-1) + 1
  short = next((i for i, row in enumerate(rows) if len(row) < width), None)
  if short is not None:
    raise DataError(
      f"{path}: row {short + 2} has {len(rows[short])} cell(s), fewer than the "
      f"header's columns up to {columns[positions.index(width - 1)]!r}"
    )


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
  """``landmark_id → value`` from a CSV with `landmark_id` and `column` (e.g. region); a
  landmark with several rows is refused, as `load_landmarks_csv` refuses it."""
  rows = read_csv(path, ["landmark_id", column])
  table = {parse_id(row["landmark_id"]): row[column].strip() for row in rows}
  if len(table) < len(rows):
    counts = collections.Counter(parse_id(row["landmark_id"]) for row in rows)
    repeated = [str(lid) for lid, count in counts.items() if count > 1]
    raise DataError(
      f"{path}: {len(repeated)} landmark_id(s) have several rows, which would overwrite each "
      f"other: {', '.join(repeated[:5])}{' …' if len(repeated) > 5 else ''}; give each "
      "landmark one row"
    )
  return {lid: value for lid, value in table.items() if value}


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
