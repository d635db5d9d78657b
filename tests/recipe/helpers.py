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
