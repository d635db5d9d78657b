"""The Google Landmarks v2 layout: a ``train.csv`` of photos, their JPEG files in
``<a>/<b>/<c>/<id>.jpg`` folders or the ArrayRecord shards packed from them."""

from __future__ import annotations

import logging
import os
import pathlib
from typing import Sequence

import numpy as np

from landmark_jax.data.labels import LabelMap
from landmark_jax.data.sources.base import IMAGE_EXTENSIONS, ImageSource
from landmark_jax.data.tables import (
  find_data_file,
  parse_id,
  parse_ids,
  read_csv,
  read_csv_columns,
  read_landmark_table,
  select_clean,
)
from landmark_jax.errors import DataError

logger = logging.getLogger(__name__)


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


def refuse_escaping_ids(ids: Sequence[str], csv_path) -> None:
  """A DataError naming the ids that would name a file outside the image folder in the
  layout (a ``/`` or ``\\``: ``../../etc/x``), one `open` cannot take (NUL), or a hidden
  one (a leading ``.``). Tested on one joined string, so GLDv2's 4.1 M ids cost a few
  substring searches in C; the ids are listed only on an error."""
  joined = "\n".join(ids)
  suspect = joined.startswith(".") or any(part in joined for part in ("/", "\\", "\0", "\n."))
  if not suspect:
    return
  bad = [i for i in ids if i.startswith(".") or any(c in i for c in "/\\\0")]
  if bad:
    raise DataError(
      f"{csv_path}: {len(bad)} photo id(s) are no file name (a '/', '\\' or NUL, or a "
      f"leading '.'), which would name files outside the image folder: "
      f"{', '.join(repr(i) for i in bad[:3])}; list such photos by a path column instead"
    )


class GLDv2Source(ImageSource):
  """Google Landmarks Dataset v2 layout.

  Args:
    root: the dataset folder.
    csv: ``id,url,landmark_id`` rows (GLDv2's ``train.csv``), relative to `root`. A
      ``path`` column, where there is one, names each photo's file (relative to `root`, or
      absolute) instead of the layout below.
    image_dir: folder holding ``<a>/<b>/<c>/<id>.jpg`` (default: ``images`` if it exists,
      else ``train``, as GLDv2's archives unpack), where a, b, c are the id's first three
      characters. An id that ends in an image extension (``.jpg .jpeg .png .webp``, any
      case, e.g. ``abc123.png``) names its file as it is (``<a>/<b>/<c>/abc123.png``);
      any other id is GLDv2's bare hash and gets ``.jpg``. An id that could name a file
      outside `image_dir` is refused (`refuse_escaping_ids`).
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

    columns = read_csv_columns(self.root / csv, ["id", "landmark_id"], optional=["path"])
    ids = list(map(str.strip, columns["id"]))
    landmark_ids: list = parse_ids(columns.pop("landmark_id"))
    # A `path` column names each photo's file (relative to root): the split of a user's
    # folder that `landmark-jax fit` writes lists photos where they are.
    listed_paths = (
      [str(self.root / p.strip()) for p in columns["path"]] if "path" in columns else None
    )
    del columns
    if clean_csv:
      selected = select_clean(
        ids, landmark_ids, find_data_file(self.root, clean_csv, "clean CSV"), self.root / csv
      )
      ids, landmark_ids = [ids[i] for i in selected], [landmark_ids[i] for i in selected]
      if listed_paths is not None:
        listed_paths = [listed_paths[i] for i in selected]
    if non_landmark_csv:
      if listed_paths is not None:
        raise DataError(
          f"{csv} lists its photos by path: add non-landmark photos to it, not "
          "through a non-landmark CSV"
        )
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
    if listed_paths is None:
      refuse_escaping_ids(ids, self.root / csv)
    if packed_dir and listed_paths is not None:
      raise DataError(f"{csv} lists its photos by path: they cannot be read from packed shards")
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
      paths = self.image_paths(ids) if listed_paths is None else listed_paths
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
