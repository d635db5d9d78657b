"""The recipe's validation and test photos, cut from a GLDv2-layout folder's own list.

GLDv2 as `prepare gldv2` writes it has one list (``train.csv``) and no photos without a
landmark; the recipe needs photos to calibrate η on and to test on, landmarks and
non-landmarks both. Each landmark's photos, and the non-landmark photos as one more group,
are cut as `fit` cuts them (`photo_split.split_photos`: 60/20/20, seeded per landmark), then
each held-out split is capped at `held_out_max` landmark and as many non-landmark photos
(the rest go back to training): at GLDv2's 4.1 M photos a fifth would take 800 000 from
training to measure what 10 000 measure as well.

The split is written as ``id,landmark_id`` CSVs (blank: no landmark) that `GLDv2Source`
reads under the data folder by id, so packed shards (``data.packed_dir``) still work;
``split.json`` is written last.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import pathlib

import numpy as np

from landmark_jax.data import photo_split
from landmark_jax.data.tables import parse_ids, read_csv_columns
from landmark_jax.errors import ConfigError
from landmark_jax.folders import atomic_write_text

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class DataList:
  """The photos of a GLDv2-layout folder, by id (no file is opened)."""

  photos: photo_split.PhotoList
  non_landmark_rows: int  # of them, from the non-landmark list

  def counts(self) -> tuple[int, int]:
    """Landmark and non-landmark photos."""
    non_landmark = sum(lid is None for lid in self.photos.landmark_ids)
    return len(self.photos) - non_landmark, non_landmark


def list_data(train_csv: pathlib.Path, non_landmark_csv: pathlib.Path | None) -> DataList:
  """`train_csv`'s ``id,landmark_id`` rows and the ids of `non_landmark_csv` (no landmark)."""
  columns = read_csv_columns(train_csv, ["id", "landmark_id"])
  ids = [i.strip() for i in columns["id"]]
  landmark_ids = parse_ids(columns["landmark_id"])
  extra = []
  if non_landmark_csv is not None:
    extra = [i.strip() for i in read_csv_columns(non_landmark_csv, ["id"])["id"]]
  listed = photo_split.PhotoList(ids + extra, ids + extra, list(landmark_ids) + [None] * len(extra))
  return DataList(listed, len(extra))


def cap_held_out(
  split: dict[str, photo_split.PhotoList], most: int, seed: int
) -> dict[str, photo_split.PhotoList]:
  """`split` with at most `most` landmark and `most` non-landmark photos in each held-out
  split, a seeded sample; the others train."""
  keep = {name: [] for name in SPLITS}
  keep["train"] = list(range(len(split["train"])))
  moved = []
  for offset, name in enumerate(("val", "test"), start=1):
    photos = split[name]
    rng = np.random.default_rng([seed, offset])
    for is_landmark in (True, False):
      rows = [i for i, lid in enumerate(photos.landmark_ids) if (lid is not None) == is_landmark]
      chosen = sorted(rng.permutation(rows)[:most].tolist()) if len(rows) > most else rows
      keep[name] += chosen
      moved += [(name, i) for i in sorted(set(rows) - set(chosen))]

  def rows_of(name, indices):
    photos = split[name]
    return photo_split.PhotoList(
      [photos.ids[i] for i in indices],
      [photos.paths[i] for i in indices],
      [photos.landmark_ids[i] for i in indices],
    )

  capped = {name: rows_of(name, sorted(keep[name])) for name in SPLITS}
  for name, i in moved:
    capped["train"] += rows_of(name, [i])
  return capped


def make_split(data: DataList, seed: int, held_out_max: int) -> dict[str, photo_split.PhotoList]:
  return cap_held_out(photo_split.split_photos(data.photos, seed), held_out_max, seed)


def split_record(data_dir: pathlib.Path, seed: int, held_out_max: int, data: DataList) -> dict:
  """What a split was made from: a second run with other settings is refused."""
  landmark, non_landmark = data.counts()
  return {
    "data": str(data_dir),
    "split_seed": seed,
    "held_out_max": held_out_max,
    "landmark_photos": landmark,
    "non_landmark_photos": non_landmark,
  }


def check_same_split(folder: pathlib.Path, record: dict) -> None:
  path = folder / photo_split.SPLIT_INFO
  if not path.is_file():
    return
  before = json.loads(path.read_text()).get("made_from", {})
  changed = [k for k in sorted(record) if before.get(k) != record[k]]
  if changed:
    raise ConfigError(
      f"{folder} was split from other data or settings ("
      + ", ".join(f"{k} {before.get(k)!r} → {record[k]!r}" for k in changed)
      + "): use another --workdir, or delete it to start over"
    )


def write_split(split: dict[str, photo_split.PhotoList], folder: pathlib.Path, record: dict):
  """``train.csv``, ``val.csv``, ``test.csv`` (``id,landmark_id``), then ``split.json``."""
  folder.mkdir(parents=True, exist_ok=True)
  for name, photos in split.items():
    staging = folder / f".{name}.csv.partial"
    with open(staging, "w", newline="") as f:
      writer = csv.writer(f)
      writer.writerow(["id", "landmark_id"])
      writer.writerows(
        (i, "" if lid is None else lid) for i, lid in zip(photos.ids, photos.landmark_ids)
      )
    staging.replace(folder / photo_split.SPLIT_FILES[name])
  info = {"made_from": record, "counts": photo_split.split_counts(split)}
  atomic_write_text(folder / photo_split.SPLIT_INFO, json.dumps(info, indent=2))
