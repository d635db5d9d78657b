"""A user's photos, split into training, validation and test photos (`landmark-jax fit`).

The photos come as a folder of ``<landmark>/*.jpg`` (with ``non_landmark/`` for photos that
show none), a GLDv2-layout folder (``train.csv`` and ``images/``), or a CSV of
``path,landmark_id`` rows (blank id: no landmark; paths relative to the CSV's folder); a
folder of further non-landmark photos may be added. Each landmark's photos — and the
non-landmark photos, as one more group — are shuffled with a seeded generator of their own
and cut into ``SPLIT_FRACTIONS``, so the split of one landmark does not move when another
landmark's photos change. A landmark with fewer than `MIN_PHOTOS_TO_SPLIT` photos is all
training photos: it is indexed, but left out of validation and test.

The split is written as three CSVs (``id,path,landmark_id``) that `GLDv2Source` reads by
their ``path`` column, plus ``split.json`` saying how it was made.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import pathlib
import zlib
from typing import Hashable, Sequence

import numpy as np

from landmark_jax.data.labels import LabelMap
from landmark_jax.data.sources import GLDv2Source, ImageFolderSource, ImageSource
from landmark_jax.data.sources.folder import non_landmark_folder_source
from landmark_jax.data.tables import parse_ids, read_csv_columns
from landmark_jax.errors import DataError, MissingFileError
from landmark_jax.text import spreadsheet_row

# Share of each landmark's photos in the validation and the test split; the rest trains.
# A fifth each is the usual hold-out for a few dozen photos a landmark: enough to measure,
# most left to learn from.
SPLIT_FRACTIONS = {"val": 0.2, "test": 0.2}

# Fewest photos of a landmark to split: one to train on, one to calibrate, one to test.
MIN_PHOTOS_TO_SPLIT = 3

SPLIT_FILES = {"train": "train.csv", "val": "val.csv", "test": "test.csv"}
SPLIT_INFO = "split.json"


@dataclasses.dataclass(frozen=True)
class PhotoList:
  """Photos by id, with their files and landmark ids (None: no landmark)."""

  ids: list[str]
  paths: list[str]
  landmark_ids: list[Hashable | None]

  def __len__(self) -> int:
    return len(self.ids)

  def __add__(self, other: "PhotoList") -> "PhotoList":
    return PhotoList(
      self.ids + other.ids, self.paths + other.paths, self.landmark_ids + other.landmark_ids
    )


def _from_source(source: ImageSource) -> PhotoList:
  return PhotoList(
    [str(i) for i in source.ids],
    [str(pathlib.Path(p).absolute()) for p in source.paths],
    source.landmark_ids(),
  )


def is_gldv2_folder(root: pathlib.Path) -> bool:
  return (root / "train.csv").is_file()


def has_own_split(root: pathlib.Path) -> bool:
  """A GLDv2-layout folder that brings its validation and test photos (as the embedded
  demo dataset does): they are kept, not split again."""
  return is_gldv2_folder(root) and (root / "val.csv").is_file() and (root / "test.csv").is_file()


def list_photos(photos: str | os.PathLike, non_landmarks: str | os.PathLike | None = None):
  """Every photo of `photos` (a ``<landmark>/*.jpg`` folder, a GLDv2-layout folder or a
  ``path,landmark_id`` CSV) and of the folder `non_landmarks`, as a `PhotoList`."""
  photos = pathlib.Path(photos)
  if photos.is_file() and photos.suffix.lower() != ".csv":
    raise DataError(
      f"{photos} is a file but not a .csv: give a folder of <landmark>/*.jpg, a GLDv2-layout "
      "folder, or a CSV of path,landmark_id"
    )
  if photos.is_file():
    listed = _from_csv(photos)
  elif not photos.is_dir():
    raise MissingFileError(f"photos not found: {photos} (a folder of <landmark>/*.jpg or a CSV)")
  elif is_gldv2_folder(photos):
    non_landmark_csv = "non_landmark.csv" if (photos / "non_landmark.csv").is_file() else None
    listed = _from_source(GLDv2Source(photos, non_landmark_csv=non_landmark_csv))
  else:
    listed = _from_source(ImageFolderSource(photos))
  if non_landmarks is not None:
    extra = _from_source(non_landmark_folder_source(non_landmarks, LabelMap.from_ids([])))
    listed += PhotoList([f"non_landmarks/{i}" for i in extra.ids], extra.paths, extra.landmark_ids)
  if len(set(listed.ids)) != len(listed.ids):
    seen, twice = set(), []
    for photo_id in listed.ids:
      if photo_id in seen:
        twice.append(photo_id)
      seen.add(photo_id)
    raise DataError(f"photo id(s) listed twice: {', '.join(twice[:3])}")
  return listed


def _from_csv(path: pathlib.Path) -> PhotoList:
  columns = read_csv_columns(path, ["path", "landmark_id"], optional=["id"])
  paths = []
  for name in columns["path"]:
    file = pathlib.Path(name.strip())
    paths.append(str((file if file.is_absolute() else path.parent / file).absolute()))
  ids = (
    [i.strip() for i in columns["id"]]
    if "id" in columns
    else [pathlib.Path(name.strip()).with_suffix("").as_posix() for name in columns["path"]]
  )
  missing = [p for p in paths if not os.path.isfile(p)]
  if missing:
    raise MissingFileError(
      f"{len(missing)} photo(s) listed in {path} not found (first: {missing[0]}); "
      "paths are relative to the CSV's folder"
    )
  if not paths:
    raise DataError(f"{path} lists no photos")
  return PhotoList(list(ids), paths, parse_ids(columns["landmark_id"]))


def _group_seed(seed: int, landmark_id: Hashable | None) -> list[int]:
  # crc32 of the id's text: stable across processes and Python versions (unlike `hash`).
  return [seed, zlib.crc32(repr(landmark_id).encode())]


def split_sizes(count: int) -> dict[str, int]:
  """How many of a landmark's `count` photos go to each split."""
  if count < MIN_PHOTOS_TO_SPLIT:
    return {"train": count, "val": 0, "test": 0}
  held = {name: max(1, round(fraction * count)) for name, fraction in SPLIT_FRACTIONS.items()}
  return {"train": count - sum(held.values()), **held}


def split_photos(photos: PhotoList, seed: int = 0) -> dict[str, PhotoList]:
  """`photos` cut into ``train``, ``val`` and ``test``, per landmark (see the module)."""
  groups: dict[Hashable | None, list[int]] = {}
  for index, landmark_id in enumerate(photos.landmark_ids):
    groups.setdefault(landmark_id, []).append(index)
  chosen = {name: [] for name in SPLIT_FILES}
  for landmark_id, members in groups.items():
    order = np.random.default_rng(_group_seed(seed, landmark_id)).permutation(len(members))
    start = 0
    for name, size in split_sizes(len(members)).items():
      chosen[name] += [members[i] for i in order[start : start + size]]
      start += size
  return {
    name: PhotoList(
      [photos.ids[i] for i in sorted(rows)],
      [photos.paths[i] for i in sorted(rows)],
      [photos.landmark_ids[i] for i in sorted(rows)],
    )
    for name, rows in chosen.items()
  }


def unsplit_landmarks(photos: PhotoList) -> list:
  """Landmarks with too few photos to split: trained on and indexed, never evaluated."""
  counts: dict = {}
  for landmark_id in photos.landmark_ids:
    if landmark_id is not None:
      counts[landmark_id] = counts.get(landmark_id, 0) + 1
  return sorted((lid for lid, n in counts.items() if n < MIN_PHOTOS_TO_SPLIT), key=str)


def _counts(split: PhotoList) -> tuple[int, int]:
  non_landmark = sum(lid is None for lid in split.landmark_ids)
  return len(split) - non_landmark, non_landmark


# How `fit`'s user adds photos without a landmark (the recipe names its own flag).
ADD_NON_LANDMARKS = (
  "put ordinary photos (streets, rooms, people) in non_landmark/ or give --non-landmarks DIR"
)


def check_splittable(
  photos: PhotoList, min_photos: int, add_non_landmarks: str = ADD_NON_LANDMARKS
) -> None:
  """Refuses, before anything is trained, photos without non-landmarks or whose validation
  or test split would hold fewer than `min_photos` landmark or non-landmark photos, saying
  how many photos would be enough."""
  landmark_counts: dict = {}
  non_landmark = 0
  for landmark_id in photos.landmark_ids:
    if landmark_id is None:
      non_landmark += 1
    else:
      landmark_counts[landmark_id] = landmark_counts.get(landmark_id, 0) + 1
  if not non_landmark:
    raise DataError(
      "no photos without a landmark: the model must learn what 'no landmark' looks like, "
      f"and η is calibrated on them; {add_non_landmarks}"
    )
  if not landmark_counts:
    raise DataError("no landmark photos: put each landmark's photos in a folder of its own")
  held_landmark = min(
    sum(split_sizes(n)[name] for n in landmark_counts.values()) for name in SPLIT_FRACTIONS
  )
  held_non_landmark = min(split_sizes(non_landmark)[name] for name in SPLIT_FRACTIONS)
  problems = []
  if held_landmark < min_photos:
    problems.append(
      f"{held_landmark} landmark photo(s) (add about "
      f"{_more_landmark_photos(landmark_counts, min_photos)} more landmark photos, "
      f"at least {MIN_PHOTOS_TO_SPLIT} per landmark)"
    )
  if held_non_landmark < min_photos:
    problems.append(
      f"{held_non_landmark} non-landmark photo(s) (use at least "
      f"{_fewest_to_hold(min_photos)} non-landmark photos)"
    )
  if problems:
    raise DataError(
      "the validation and test splits would each rest on "
      + " and ".join(problems)
      + f", fewer than --min-photos {min_photos} ({_percent()} of each landmark's photos go "
      "to each; --min-photos 0 turns the check off)"
    )


def _percent() -> str:
  return " and ".join(f"{100 * f:g} %" for f in SPLIT_FRACTIONS.values())


def _fewest_to_hold(min_photos: int) -> int:
  """The fewest photos of one group whose validation and test shares hold `min_photos`."""
  count = MIN_PHOTOS_TO_SPLIT
  while min(split_sizes(count)[name] for name in SPLIT_FRACTIONS) < min_photos:
    count += 1
  return count


def _more_landmark_photos(counts: dict, min_photos: int) -> int:
  """Photos to add, one at a time to the landmark that gains a held-out photo soonest,
  until both held-out splits hold `min_photos` landmark photos."""
  counts = dict(counts)
  added = 0
  while min(sum(split_sizes(n)[s] for n in counts.values()) for s in SPLIT_FRACTIONS) < min_photos:

    def photos_to_next_gain(item):
      _, n = item
      step = 1
      while split_sizes(n + step)["test"] == split_sizes(n)["test"] and step < 100:
        step += 1
      return step

    landmark, _ = min(counts.items(), key=photos_to_next_gain)
    counts[landmark] += 1
    added += 1
  return max(added, 1)


def write_split(split: dict[str, PhotoList], folder: pathlib.Path, info: dict) -> None:
  """The split's CSVs and ``split.json``, written last: a folder with it is complete."""
  folder.mkdir(parents=True, exist_ok=True)
  for name, photos in split.items():
    with open(folder / SPLIT_FILES[name], "w", newline="", encoding="utf-8") as f:
      writer = csv.writer(f)
      writer.writerow(["id", "path", "landmark_id"])
      for row in zip(photos.ids, photos.paths, photos.landmark_ids):
        writer.writerow(spreadsheet_row([row[0], row[1], "" if row[2] is None else row[2]]))
  (folder / SPLIT_INFO).write_text(json.dumps(info, indent=2))


def split_counts(split: dict[str, PhotoList]) -> dict[str, dict[str, int]]:
  """Per split: landmark and non-landmark photos."""
  return {
    name: dict(zip(("landmark_photos", "non_landmark_photos"), _counts(photos)))
    for name, photos in split.items()
  }


def describe(photos: Sequence[Hashable]) -> str:
  """The first few of a list, and how many more."""
  shown = ", ".join(map(str, photos[:5]))
  return shown + (f" and {len(photos) - 5} more" if len(photos) > 5 else "")
