"""Image folders: one folder per landmark (and one of photos without a landmark), or a
folder of non-landmark photos only."""

from __future__ import annotations

import os
import pathlib

import numpy as np

from landmark_jax.data.labels import LabelMap
from landmark_jax.data.sources.base import IMAGE_EXTENSIONS, ImageSource
from landmark_jax.data.tables import find_data_file, parse_id, read_landmark_table, select_clean
from landmark_jax.errors import DataError, MissingFileError


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
