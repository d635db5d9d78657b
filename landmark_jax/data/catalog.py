"""The dataset a config names: `DataConfig`, and `source_for(data, split)`, the one place
that turns "this config's data, this split" into an `ImageSource`.

Splits: ``train`` (training photos, plus the non-landmark ones and the regions for the
curriculum), ``val`` (calibrating η), ``test`` (evaluation) and ``holdout`` (classified
after training). The embedded demo dataset has all four; a GLDv2-layout dataset has the
ones whose CSV the config names.
"""

from __future__ import annotations

import dataclasses
import pathlib

from landmark_jax.data.config import SPLITS, DataConfig
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.data.labels import LabelMap
from landmark_jax.data.sources import GLDv2Source, ImageFolderSource, ImageSource, TfdsSource
from landmark_jax.errors import ConfigError, DataError

# The embedded dataset's CSV of each split.
_DEMO_CSV = {"val": "val.csv", "test": "test.csv", "holdout": "test.csv"}


def _train_source(data: DataConfig, label_map: LabelMap | None) -> ImageSource:
  if data.kind == "demo":
    return GLDv2Source(
      data.root or demo_dataset(),
      csv="train.csv",
      clean_csv=data.clean_csv or None,
      non_landmark_csv="non_landmark.csv",
      regions_csv="landmarks.csv",
      label_map=label_map,
      packed_dir=data.packed_dir or None,
    )
  if data.kind == "gldv2":
    if not data.root:
      raise ConfigError("data.kind=gldv2 needs data.root=<the dataset folder>")
    return GLDv2Source(
      data.root,
      csv=data.csv,
      image_dir=data.image_dir or None,
      clean_csv=data.clean_csv or None,
      non_landmark_csv=data.non_landmark_csv or None,
      regions_csv=data.regions_csv or None,
      categories_csv=data.categories_csv or None,
      label_map=label_map,
      packed_dir=data.packed_dir or None,
    )
  if data.kind == "folder":
    if not data.root:
      raise ConfigError("data.kind=folder needs data.root=<the image folder>")
    return ImageFolderSource(
      data.root,
      non_landmark_dir=data.non_landmark_dir,
      regions_csv=data.regions_csv or None,
      clean_csv=data.clean_csv or None,
      label_map=label_map,
    )
  if data.clean_csv:  # not needed yet: TfdsSource would select by its ids (name/split/i)
    raise ConfigError("data.clean_csv works with data.kind=demo, gldv2 or folder, not tfds")
  return TfdsSource(
    data.tfds_name,
    split=data.tfds_split,
    data_dir=data.tfds_data_dir or None,
    image_key=data.tfds_image_key,
    label_key=data.tfds_label_key,
    non_landmark_value=None if data.tfds_non_landmark_value < 0 else data.tfds_non_landmark_value,
    label_map=label_map,
  )


# The files (and the packed folder) a data config names that may be relative to the working
# directory.
_FOUND_FILES = ("clean_csv", "non_landmark_csv", "regions_csv", "categories_csv", "packed_dir")


def with_found_files(data: DataConfig) -> DataConfig:
  """`data` with each file it names that is found only from the working directory (not in
  the dataset folder, where a relative name means the dataset's own file) made absolute, so
  a run's saved config names the file it read from whatever folder a later step runs in."""
  changes = {}
  for name in _FOUND_FILES:
    value = getattr(data, name)
    if not value or pathlib.Path(value).is_absolute():
      continue
    in_root = data.root and (pathlib.Path(data.root) / value).exists()
    if not in_root and pathlib.Path(value).exists():
      changes[name] = str(pathlib.Path(value).absolute())
  return dataclasses.replace(data, **changes) if changes else data


def has_split(data: DataConfig, split: str) -> bool:
  """Whether `source_for(data, split)` has photos to give."""
  if split == "train" or data.kind == "demo":
    return True
  return data.kind == "gldv2" and bool(getattr(data, f"{split}_csv"))


def source_for(
  data: DataConfig, split: str = "train", label_map: LabelMap | None = None
) -> ImageSource:
  """The source of `split` of the dataset `data` describes.

  `label_map`: the labels to use (a trained model's); None derives them from the data,
  which only the training split may do.

  Raises:
    DataError: the dataset has no such split (name a folder or CSV instead).
  """
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}: {', '.join(SPLITS)}")
  if split == "train":
    return _train_source(data, label_map)
  if not has_split(data, split):
    raise DataError(
      f"the {data.kind} dataset of this config has no {split} split: give its "
      f"photos (--root/--csv or --folder) or set data.{split}_csv"
    )
  if label_map is None:
    raise ValueError(f"the {split} split needs the trained model's label map")
  if data.kind == "demo":
    return GLDv2Source(
      data.root or demo_dataset(),
      csv=_DEMO_CSV[split],
      label_map=label_map,
      packed_dir=data.packed_dir or None,
    )
  return GLDv2Source(
    data.root,
    csv=getattr(data, f"{split}_csv"),
    image_dir=data.image_dir or None,
    label_map=label_map,
    packed_dir=data.packed_dir or None,
  )
