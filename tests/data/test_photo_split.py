"""A user's photos split per landmark: sizes by the rule, every photo in one split, the same
split from the same seed and from each way of giving the photos, refusals that name enough."""

import csv
import pathlib
import re

import numpy as np
import pytest
from PIL import Image

from landmark_jax.data import photo_split
from landmark_jax.data.sources import GLDv2Source
from landmark_jax.errors import DataError, MissingFileError


def photo_list(counts: dict, non_landmark: int) -> photo_split.PhotoList:
  ids, landmark_ids = [], []
  for landmark, count in counts.items():
    ids += [f"{landmark}/{i}" for i in range(count)]
    landmark_ids += [landmark] * count
  ids += [f"non_landmark/{i}" for i in range(non_landmark)]
  landmark_ids += [None] * non_landmark
  return photo_split.PhotoList(ids, [f"/p/{i}.jpg" for i in ids], landmark_ids)


@pytest.mark.parametrize(
  "count, expected",
  # By hand: 20 % each to validation and test, rounded, at least 1; below 3 all train.
  [
    (1, (1, 0, 0)),
    (2, (2, 0, 0)),
    (3, (1, 1, 1)),
    (4, (2, 1, 1)),
    (7, (5, 1, 1)),
    (10, (6, 2, 2)),
    (13, (7, 3, 3)),
  ],
)
def test_split_sizes_follow_the_rule(count, expected):
  assert tuple(photo_split.split_sizes(count).values()) == expected


def test_each_landmark_is_split_by_its_own_counts_and_every_photo_lands_once():
  photos = photo_list({"a": 10, "b": 4, 7: 2}, non_landmark=13)
  split = photo_split.split_photos(photos, seed=0)
  placed = sum((s.ids for s in split.values()), [])
  assert sorted(placed) == sorted(photos.ids)
  for landmark, count in {"a": 10, "b": 4, 7: 2, None: 13}.items():
    sizes = {name: s.landmark_ids.count(landmark) for name, s in split.items()}
    assert sizes == photo_split.split_sizes(count)
  assert photo_split.unsplit_landmarks(photos) == [7]


def test_the_split_is_seeded_and_one_landmark_does_not_move_another():
  photos = photo_list({"a": 10, "b": 6}, non_landmark=10)
  first = photo_split.split_photos(photos, seed=0)
  assert photo_split.split_photos(photos, seed=0) == first
  assert photo_split.split_photos(photos, seed=1) != first
  # More photos of "a": "b"'s test photos stay the same.
  grown = photo_split.split_photos(photo_list({"a": 15, "b": 6}, non_landmark=10), seed=0)
  b_test = [i for i in first["test"].ids if i.startswith("b/")]
  assert b_test == [i for i in grown["test"].ids if i.startswith("b/")]


def test_photos_without_non_landmarks_are_refused_naming_the_folder():
  with pytest.raises(DataError, match="no photos without a landmark.*non_landmark/"):
    photo_split.check_splittable(photo_list({"a": 30}, non_landmark=0), min_photos=5)


def held_out_landmark_photos(counts) -> int:
  return min(sum(photo_split.split_sizes(n)[s] for n in counts) for s in ("val", "test"))


def fewest_extra_photos(counts, min_photos) -> int:
  """By brute force over every way of adding photos to two landmarks."""
  for extra in range(200):
    for k in range(extra + 1):
      if held_out_landmark_photos([counts[0] + k, counts[1] + extra - k]) >= min_photos:
        return extra
  raise AssertionError("no way found")


@pytest.mark.parametrize("counts", [(4, 4), (3, 10), (2, 2)])
def test_too_few_landmark_photos_are_refused_naming_about_how_many_more(counts):
  photos = photo_list(dict(zip("ab", counts)), non_landmark=30)
  with pytest.raises(DataError, match="fewer than --min-photos 5") as refused:
    photo_split.check_splittable(photos, min_photos=5)
  named = int(re.search(r"add about (\d+) more landmark photos", str(refused.value)).group(1))
  # "about": the fewest that would do, or one more (the count is found greedily).
  assert fewest_extra_photos(counts, 5) <= named <= fewest_extra_photos(counts, 5) + 1


@pytest.mark.parametrize("non_landmark", [3, 12, 22])
def test_too_few_non_landmark_photos_are_refused_naming_the_fewest_that_do(non_landmark):
  photos = photo_list({"a": 30, "b": 30}, non_landmark)
  with pytest.raises(DataError, match="fewer than --min-photos 5") as refused:
    photo_split.check_splittable(photos, min_photos=5)
  named = int(re.search(r"use at least (\d+) non-landmark", str(refused.value)).group(1))
  # By hand: 20 % of 23 rounds to 5 (4.6), of 22 to 4 (4.4).
  assert named == 23
  photo_split.check_splittable(photo_list({"a": 30, "b": 30}, named), min_photos=5)


def test_enough_photos_pass():
  photo_split.check_splittable(photo_list({"a": 13, "b": 13}, non_landmark=23), min_photos=5)


def write_jpeg(path: pathlib.Path, seed: int) -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  pixels = np.random.default_rng(seed).integers(0, 255, (24, 32, 3), dtype=np.uint8)
  Image.fromarray(pixels).save(path, "JPEG")
  return path


def test_a_folder_a_csv_and_an_extra_non_landmark_folder_list_the_same_photos(tmp_path):
  folder = tmp_path / "photos"
  for i in range(3):
    write_jpeg(folder / "tower" / f"t{i}.jpg", i)
    write_jpeg(folder / "non_landmark" / f"n{i}.jpg", 10 + i)
  write_jpeg(folder / "12" / "x.jpg", 20)
  write_jpeg(tmp_path / "street" / "sub" / "s.jpg", 30)
  listed = photo_split.list_photos(folder, non_landmarks=tmp_path / "street")
  assert sorted(zip(listed.ids, listed.landmark_ids), key=str) == sorted(
    [(f"tower/t{i}", "tower") for i in range(3)]
    + [(f"non_landmark/n{i}", None) for i in range(3)]
    + [("12/x", 12), ("non_landmarks/sub/s", None)],
    key=str,
  )
  assert all(pathlib.Path(p).is_file() for p in listed.paths)

  with open(tmp_path / "photos.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["path", "landmark_id"])
    for path, landmark in zip(listed.paths, listed.landmark_ids):
      writer.writerow(
        [pathlib.Path(path).relative_to(tmp_path), "" if landmark is None else landmark]
      )
  from_csv = photo_split.list_photos(tmp_path / "photos.csv")
  assert from_csv.paths == listed.paths
  assert from_csv.landmark_ids == listed.landmark_ids


def test_a_csv_naming_a_missing_photo_is_refused(tmp_path):
  (tmp_path / "photos.csv").write_text("path,landmark_id\nnowhere.jpg,1\n")
  with pytest.raises(MissingFileError, match="1 photo.*not found.*nowhere.jpg"):
    photo_split.list_photos(tmp_path / "photos.csv")


def test_the_written_split_reads_back_through_gldv2_source_by_path(tmp_path):
  folder = tmp_path / "photos"
  for i in range(5):
    write_jpeg(folder / "tower" / f"t{i}.jpg", i)
    write_jpeg(folder / "non_landmark" / f"n{i}.jpg", 10 + i)
  split = photo_split.split_photos(photo_split.list_photos(folder), seed=3)
  photo_split.write_split(split, tmp_path / "split", {"seed": 3})
  for name, photos in split.items():
    source = GLDv2Source(tmp_path / "split", csv=photo_split.SPLIT_FILES[name])
    assert list(source.ids) == photos.ids
    assert list(source.paths) == photos.paths
    assert source.landmark_ids() == photos.landmark_ids
