"""GLDv2-layout folders that the recipe tests make: lists only (the dry run and the estimate
open no photo), or small real photos (the end-to-end run)."""

import csv
import pathlib


def write_csv(path: pathlib.Path, header, rows) -> None:
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)


def listed_folder(root: pathlib.Path, per_landmark=(10, 10, 10, 10), non_landmarks=40):
  """``train.csv`` with `per_landmark[i]` photos of landmark i, ``non_landmark.csv``,
  ``landmarks.csv`` (regions and coordinates) and an empty ``images/``."""
  root.mkdir(parents=True)
  (root / "images").mkdir()
  rows = [(f"{i:03d}{k:04d}", "", i) for i, n in enumerate(per_landmark) for k in range(n)]
  write_csv(root / "train.csv", ("id", "url", "landmark_id"), rows)
  write_csv(
    root / "non_landmark.csv", ("id", "url"), [(f"nl{k:05d}", "") for k in range(non_landmarks)]
  )
  regions = ("europe_russia", "north_america_oceania")
  write_csv(
    root / "landmarks.csv",
    ("landmark_id", "name", "region", "latitude", "longitude"),
    [(i, f"landmark_{i}", regions[i % 2], 48.0 + i, 2.0 + i) for i in range(len(per_landmark))],
  )
  return root


def photo_folder(root: pathlib.Path) -> pathlib.Path:
  """A small GLDv2-layout folder of real 64-px photos, as `prepare gldv2` leaves GLDv2 plus
  a non-landmark list: the embedded demo's 8 landmarks × 10 views and 40 non-landmark
  crops, without validation or test lists (the recipe splits them off)."""
  from landmark_jax.data.demo_dataset import DemoDatasetConfig, generate

  config = DemoDatasetConfig(
    image_size=64,
    train_views=10,
    rare_train_views=10,
    test_views=0,
    val_views=0,
    train_non_landmarks=40,
    test_non_landmarks=0,
    val_non_landmarks=0,
  )
  generate(root, config)
  for name in ("val.csv", "test.csv", "locations.csv", "demo.json"):
    (root / name).unlink()
  return root
