"""Random-access image sources: Google Landmarks v2 layout (its JPEG files or ArrayRecord
shards packed from them), image folders, TFDS.

A source is a sequence of records ``{"id": str, "label": int, "path": str}`` (or
``"encoded": bytes`` instead of a path for TFDS and packed shards), with dense labels from a
`LabelMap`. A source holds file names or record keys, not pixels, so it is cheap to pickle to
grain's workers; reading and decoding happen in the workers (`transforms.py`).
"""

from __future__ import annotations

import contextlib
import csv
import gc
import logging
import operator
import os
import pathlib
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from landmark_jax.data.labels import LabelMap
from landmark_jax.errors import DataError, MissingFileError

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


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


def read_csv_columns(path: str | os.PathLike, required: Sequence[str]) -> dict[str, list[str]]:
  """`read_csv`'s cells as one list per `required` column: a row costs no dict, so GLDv2's
  4.1 M rows take a third of the time and a fraction of the memory of `read_csv`'s dicts.
  Blank lines are skipped (as `csv.DictReader` does); a row without a `required` cell is an
  error naming its line."""
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


class ImageSource:
  """Common machinery: parallel arrays of ids, labels and file paths, plus the label map.

  Instead of paths, `images` (a random-access sequence of encoded images: the ArrayRecord
  shards of a packed folder) with `keys` (each record's key in it): records then carry
  ``"encoded"`` bytes. `images` must pickle cheaply (grain sends the source to its workers).
  """

  def __init__(
    self,
    ids: Sequence[str],
    labels: np.ndarray,
    paths: Sequence[str] | None,
    label_map: LabelMap,
    *,
    names: Mapping[Hashable, str] | None = None,
    categories: Mapping[Hashable, str] | None = None,
    images: Sequence[bytes] | None = None,
    keys: Sequence[int] | None = None,
  ):
    self.ids = np.asarray(ids, dtype=object)
    self.labels = np.asarray(labels, dtype=np.int32)
    self.paths = None if paths is None else np.asarray(paths, dtype=object)
    self.label_map = label_map
    self.names = dict(names or {})
    self.categories = dict(categories or {})
    if (images is None) != (keys is None):
      raise ValueError("give images and keys together")
    self.images = images
    self.keys = None if keys is None else np.asarray(keys, dtype=np.int64)

  def __len__(self) -> int:
    return len(self.labels)

  def __getitem__(self, index: int) -> dict[str, Any]:
    if self.images is not None:
      return {
        "id": self.ids[index],
        "label": self.labels[index],
        "encoded": self.images[int(self.keys[index])],
      }
    return {"id": self.ids[index], "label": self.labels[index], "path": self.paths[index]}

  def subset(self, indices: Sequence[int]) -> "ImageSource":
    """The records at `indices`, with the same label map (e.g. one curriculum stage)."""
    indices = np.asarray(indices, dtype=np.int64)
    return ImageSource(
      self.ids[indices],
      self.labels[indices],
      None if self.paths is None else self.paths[indices],
      self.label_map,
      names=self.names,
      categories=self.categories,
      images=self.images,
      keys=None if self.keys is None else self.keys[indices],
    )

  def stage_subset(self, stage: int) -> "ImageSource":
    """Records whose class is trained in curriculum stages 0..`stage` (non-landmarks always)."""
    limit = self.label_map.stage_sizes[stage]
    keep = (self.labels < limit) | (self.labels == self.label_map.non_landmark_label)
    return self.subset(np.flatnonzero(keep))

  def landmark_ids(self) -> list:
    """The dataset's landmark id of every record (None for non-landmark)."""
    return self.label_map.to_landmark_ids(self.labels)

  def images_per_class(self) -> np.ndarray:
    """Count of records per dense label, non-landmark last."""
    return np.bincount(self.labels, minlength=self.label_map.num_classes + 1)

  def images_per_landmark(self) -> dict:
    """The dataset's landmark id → its number of records (rare/frequent breakdowns)."""
    return dict(zip(self.label_map.landmark_ids, self.images_per_class()[:-1].tolist()))


def _drop_missing(ids, landmark_ids, paths, what: str):
  exists = np.fromiter((os.path.isfile(p) for p in paths), dtype=bool, count=len(paths))
  missing = int((~exists).sum())
  if missing:
    first = [ids[i] for i in np.flatnonzero(~exists)[:3]]
    logger.warning(
      "%d of %d images named in %s are missing and are left out (first: %s)",
      missing,
      len(paths),
      what,
      ", ".join(map(str, first)),
    )
  keep = np.flatnonzero(exists)
  return (
    [ids[i] for i in keep],
    [landmark_ids[i] for i in keep],
    [paths[i] for i in keep],
    missing,
  )


def _drop_unpacked(ids, landmark_ids, keys: np.ndarray, what: str, packed_dir):
  """`_drop_missing` for packed photos: those without a key (-1) are left out and reported."""
  absent = keys < 0
  missing = int(absent.sum())
  if missing:
    first = [ids[i] for i in np.flatnonzero(absent)[:3]]
    logger.warning(
      "%d of %d images named in %s are not in the packed shards %s and are left out (first: %s)",
      missing,
      len(keys),
      what,
      packed_dir,
      ", ".join(map(str, first)),
    )
  keep = np.flatnonzero(~absent)
  return [ids[i] for i in keep], [landmark_ids[i] for i in keep], keys[keep], missing


class GLDv2Source(ImageSource):
  """Google Landmarks Dataset v2 layout.

  Args:
    root: the dataset folder.
    csv: ``id,url,landmark_id`` rows (GLDv2's ``train.csv``), relative to `root`.
    image_dir: folder holding ``<a>/<b>/<c>/<id>.jpg`` (default: ``images`` if it exists,
      else ``train``, as GLDv2's archives unpack), where a, b, c are the id's first three
      characters. An id that ends in an image extension (``.jpg .jpeg .png .webp``, any
      case, e.g. ``abc123.png``) names its file as it is (``<a>/<b>/<c>/abc123.png``);
      any other id is GLDv2's bare hash and gets ``.jpg``.
    clean_csv: optional ``landmark_id,images`` (space-separated ids) — GLDv2's
      ``train_clean.csv`` or the output of `landmark-jax clean`, in `root` or from the working
      directory (`find_data_file`); only those landmark photos are kept, and every
      non-landmark one (rows of `csv` without a landmark id, `non_landmark_csv`). Labels come
      from the kept photos, as the model trained on them knows them.
    non_landmark_csv: optional ``id[,url]`` list of photos without a landmark.
    regions_csv: optional CSV with ``landmark_id,region`` (any extra columns, e.g. a
      ``landmarks.csv`` with ``name``, are fine) for curriculum learning.
    categories_csv: optional ``landmark_id,category`` (``train_label_to_category.csv``).
    label_map: reuse an existing label map (e.g. the one saved with a model) instead of
      deriving one from the data; ids it does not know are an error.
    check_files: stat every image up front and leave out (and report) missing ones.
    packed_dir: read the photos from this packed folder's ArrayRecord shards (written by
      `landmark-jax prepare gldv2 --pack`, `landmark_jax.data.packed`) instead of their
      files; found in `root`, else from the working directory. A photo is looked up by its
      path relative to `image_dir` (which need not exist then); photos not in the shards
      are left out and reported, as missing files are.
  """

  def __init__(
    self,
    root: str | os.PathLike,
    *,
    csv: str = "train.csv",
    image_dir: str | None = None,
    clean_csv: str | None = None,
    non_landmark_csv: str | None = None,
    regions_csv: str | None = None,
    categories_csv: str | None = None,
    label_map: LabelMap | None = None,
    check_files: bool = True,
    packed_dir: str | os.PathLike | None = None,
  ):
    self.root = pathlib.Path(root)
    if image_dir is None:
      image_dir = "images" if (self.root / "images").is_dir() else "train"
    self.image_dir = self.root / image_dir

    columns = read_csv_columns(self.root / csv, ["id", "landmark_id"])
    ids = list(map(str.strip, columns["id"]))
    landmark_ids: list = parse_ids(columns.pop("landmark_id"))
    del columns
    if clean_csv:
      selected = select_clean(
        ids, landmark_ids, find_data_file(self.root, clean_csv, "clean CSV"), self.root / csv
      )
      ids, landmark_ids = [ids[i] for i in selected], [landmark_ids[i] for i in selected]
    if non_landmark_csv:
      extra = [
        row["id"].strip()
        for row in read_csv(
          find_data_file(self.root, non_landmark_csv, "data.non_landmark_csv"), ["id"]
        )
      ]
      ids += extra
      landmark_ids += [None] * len(extra)

    self.missing = 0
    images, keys, paths = None, None, None
    if packed_dir:
      # Imported here: the packed reader loads grain's ArrayRecord support, which sources
      # of JPEG files do not need.
      from landmark_jax.data.packed import PackedImages

      packed = PackedImages(find_data_file(self.root, packed_dir, "data.packed_dir", folder=True))
      keys = packed.keys_of([self.relative_path(image_id) for image_id in ids])
      ids, landmark_ids, keys, self.missing = _drop_unpacked(
        ids, landmark_ids, keys, csv, packed.folder
      )
      images = packed.records
    else:
      paths = self.image_paths(ids)
      if check_files:
        ids, landmark_ids, paths, self.missing = _drop_missing(ids, landmark_ids, paths, csv)

    names, regions, categories = {}, None, None
    if regions_csv:
      table = read_csv(
        find_data_file(self.root, regions_csv, "data.regions_csv"), ["landmark_id", "region"]
      )
      regions = {
        parse_id(r["landmark_id"]): r["region"].strip() for r in table if r["region"].strip()
      }
      names = {parse_id(r["landmark_id"]): r["name"].strip() for r in table if r.get("name")}
    if categories_csv:
      categories = read_landmark_table(
        find_data_file(
          self.root,
          categories_csv,
          "data.categories_csv (landmark_id,category: GLDv2's "
          "train_label_to_category.csv; data.categories_csv= goes without categories)",
        ),
        "category",
      )
    if label_map is None:
      label_map = LabelMap.from_ids((lid for lid in landmark_ids if lid is not None), regions)
    labels = label_map.to_labels(landmark_ids)
    super().__init__(
      ids, labels, paths, label_map, names=names, categories=categories, images=images, keys=keys
    )

  def relative_path(self, image_id: str) -> str:
    """``<a>/<b>/<c>/<id>[.jpg]``: where `image_id` lies under `image_dir` (see the class),
    and its name in a packed folder's index."""
    if len(image_id) < 3:  # the layout's three folder levels are the id's first characters
      raise DataError(
        f"image id {image_id!r} is too short for the GLDv2 layout "
        "<a>/<b>/<c>/<id> (it needs at least 3 characters)"
      )
    # GLDv2's ids are bare hashes of JPEGs; other collections list the file name itself.
    name = image_id if image_id.lower().endswith(IMAGE_EXTENSIONS) else f"{image_id}.jpg"
    return f"{image_id[0]}/{image_id[1]}/{image_id[2]}/{name}"

  def image_path(self, image_id: str) -> pathlib.Path:
    """The file of `image_id`: ``<image_dir>/<a>/<b>/<c>/<id>[.jpg]`` (see the class)."""
    return self.image_dir / self.relative_path(image_id)

  def image_paths(self, ids: Sequence[str]) -> list[str]:
    """``str(image_path(id))`` of each id, by string concatenation: a pathlib join per
    photo is most of the time of reading GLDv2's 4.1 M rows. pathlib normalises "." parts
    and repeated slashes, so an id with a "/" or a "." among its first three characters
    takes `image_path` to get the same string."""
    prefix = str(self.image_dir / "x")[:-1]  # "" for ".", else the folder and a separator
    return [
      prefix + self.relative_path(image_id)
      if "/" not in image_id and "." not in image_id[:3]
      else str(self.image_path(image_id))
      for image_id in ids
    ]


class ImageFolderSource(ImageSource):
  """``<root>/<landmark>/*.{jpg,jpeg,png,webp}``; the folder `non_landmark_dir` holds photos
  without a landmark. Landmark ids are the folder names (integers when they parse as such),
  photo ids ``<folder>/<file name without extension>``. `clean_csv`: keep only the landmark
  photos it lists (and every non-landmark one), as `GLDv2Source`'s."""

  def __init__(
    self,
    root: str | os.PathLike,
    *,
    non_landmark_dir: str = "non_landmark",
    regions_csv: str | None = None,
    clean_csv: str | os.PathLike | None = None,
    label_map: LabelMap | None = None,
  ):
    root = pathlib.Path(root)
    if not root.is_dir():
      raise MissingFileError(f"image folder not found: {root}")
    ids, landmark_ids, paths = [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
      landmark_id = None if folder.name == non_landmark_dir else parse_id(folder.name)
      for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_EXTENSIONS:
          ids.append(f"{folder.name}/{path.stem}")
          landmark_ids.append(landmark_id)
          paths.append(str(path))
    if not ids:
      raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}/<landmark>/")
    if clean_csv:
      selected = select_clean(ids, landmark_ids, find_data_file(root, clean_csv, "clean CSV"), root)
      ids, landmark_ids, paths = (
        [ids[i] for i in selected],
        [landmark_ids[i] for i in selected],
        [paths[i] for i in selected],
      )
    regions = read_landmark_table(regions_csv, "region") if regions_csv else None
    if label_map is None:
      label_map = LabelMap.from_ids((lid for lid in landmark_ids if lid is not None), regions)
    labels = np.fromiter(
      (label_map.to_label(lid) for lid in landmark_ids), np.int32, count=len(ids)
    )
    super().__init__(ids, labels, paths, label_map)


class TfdsSource(ImageSource):
  """Any prepared TFDS dataset with an image and a label feature, via `tfds.data_source`.

  Images are read as their encoded bytes (``SkipDecoding``) and decoded by Pillow in the
  workers, so no TensorFlow is needed. `non_landmark_value`, if given, is the label value
  that means "no landmark".
  """

  def __init__(
    self,
    name: str,
    *,
    split: str = "train",
    data_dir: str | None = None,
    image_key: str = "image",
    label_key: str = "label",
    non_landmark_value: int | None = None,
    label_map: LabelMap | None = None,
  ):
    import tensorflow_datasets as tfds

    self._data = tfds.data_source(
      name, split=split, data_dir=data_dir, decoders={image_key: tfds.decode.SkipDecoding()}
    )
    self._image_key = image_key
    # One pass over the labels: they are needed for the label map and per-class statistics.
    # Reading a record here does not decode its image.
    raw_labels = [int(self._data[i][label_key]) for i in range(len(self._data))]
    landmark_ids = [None if v == non_landmark_value else v for v in raw_labels]
    if label_map is None:
      label_map = LabelMap.from_ids(lid for lid in landmark_ids if lid is not None)
    labels = np.fromiter(
      (label_map.to_label(lid) for lid in landmark_ids), np.int32, count=len(raw_labels)
    )
    super().__init__(
      [f"{name}/{split}/{i}" for i in range(len(raw_labels))], labels, None, label_map
    )
    self._index = np.arange(len(raw_labels))

  def __getitem__(self, index: int) -> dict[str, Any]:
    record = self._data[int(self._index[index])]
    return {"id": self.ids[index], "label": self.labels[index], "encoded": record[self._image_key]}

  def subset(self, indices: Sequence[int]) -> "TfdsSource":
    indices = np.asarray(indices, dtype=np.int64)
    view = object.__new__(TfdsSource)
    ImageSource.__init__(view, self.ids[indices], self.labels[indices], None, self.label_map)
    view._data, view._image_key, view._index = self._data, self._image_key, self._index[indices]
    return view


def non_landmark_folder_source(root: str | os.PathLike, label_map: LabelMap) -> ImageSource:
  """Every image under `root` (subfolders too), as photos without a landmark: the
  non-landmark half of a validation set (`landmark-jax calibrate --non-landmark-folder`)."""
  root = pathlib.Path(root)
  if not root.is_dir():
    raise MissingFileError(f"non-landmark photo folder not found: {root}")
  paths = sorted(
    str(p) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
  )
  if not paths:
    raise DataError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {root}")
  ids = [pathlib.Path(p).relative_to(root).with_suffix("").as_posix() for p in paths]
  return ImageSource(
    ids, np.full(len(paths), label_map.non_landmark_label, np.int32), paths, label_map
  )
