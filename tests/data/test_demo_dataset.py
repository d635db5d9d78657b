import csv

import numpy as np
import pytest
from PIL import Image

from landmark_jax.data import GLDv2Source
from landmark_jax.data.demo_dataset import LANDMARKS, DemoDatasetConfig, demo_dataset

SMALL = DemoDatasetConfig(
  train_views=6,
  rare_train_views=3,
  test_views=3,
  val_views=2,
  train_non_landmarks=8,
  test_non_landmarks=10,
  val_non_landmarks=5,
  image_size=64,
)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
  return demo_dataset(SMALL, cache_dir=tmp_path_factory.mktemp("cache"))


def test_layout_counts_and_regions(demo_dir):
  train = GLDv2Source(demo_dir, non_landmark_csv="non_landmark.csv", regions_csv="landmarks.csv")
  test = GLDv2Source(demo_dir, csv="test.csv", label_map=train.label_map)
  n = len(LANDMARKS)
  assert train.images_per_class().tolist() == [6, 6, 6, 3, 6, 6, 6, 3, 8]  # 3, 7 are rare
  assert test.images_per_class().tolist() == [3] * n + [10]
  val = GLDv2Source(demo_dir, csv="val.csv", label_map=train.label_map)
  assert val.images_per_class().tolist() == [2] * n + [5]
  assert train.label_map.num_stages == 2  # two curriculum parts, for the demo's curriculum
  assert train.names[0] == "astronaut"
  assert not set(train.ids) & set(test.ids)  # held-out views are new images
  assert not set(val.ids) & (set(test.ids) | set(train.ids))
  for path in train.paths[:5]:
    with Image.open(path) as image:
      assert image.size == (64, 64) and image.format == "JPEG"


def test_deterministic_from_seed_and_reused(demo_dir, tmp_path):
  again = demo_dataset(SMALL, cache_dir=tmp_path)
  with open(demo_dir / "train.csv") as a, open(again / "train.csv") as b:
    assert a.read() == b.read()  # same seed → byte-identical images (ids are their SHA-1)
  mtime = (again / "demo.json").stat().st_mtime_ns
  assert demo_dataset(SMALL, cache_dir=tmp_path) == again
  assert (again / "demo.json").stat().st_mtime_ns == mtime  # reused, not regenerated
  other = demo_dataset(DemoDatasetConfig(**{**SMALL.__dict__, "seed": 1}), cache_dir=tmp_path)
  with open(other / "train.csv") as f:
    assert {r["id"] for r in csv.DictReader(f)}.isdisjoint(
      {r["id"] for r in csv.DictReader(open(again / "train.csv"))}
    )


def histogram(path):
  pixels = np.asarray(Image.open(path).convert("RGB"))
  return (
    np.concatenate([np.histogram(pixels[..., c], 16, (0, 256))[0] for c in range(3)]) / pixels.size
  )


def test_held_out_views_are_recognisable_from_training_views(demo_dir):
  # Sanity of the simulation itself, no model involved: nearest-neighbour matching of color
  # histograms puts most held-out views with their own landmark (chance is 1/8).
  train = GLDv2Source(demo_dir)
  test = GLDv2Source(demo_dir, csv="test.csv", label_map=train.label_map)
  landmark_views = test.labels < test.label_map.num_classes
  train_features = np.stack([histogram(p) for p in train.paths])
  test_features = np.stack([histogram(p) for p in test.paths[landmark_views]])
  distances = np.abs(test_features[:, None] - train_features[None]).sum(-1)
  predicted = train.labels[distances.argmin(axis=1)]
  assert np.mean(predicted == test.labels[landmark_views]) >= 0.5


def test_more_training_non_landmarks_leave_the_held_out_photos_unchanged(demo_dir, tmp_path):
  # Issue 16 gave the demo 4× the training non-landmark photos; what it is evaluated and
  # calibrated on must be the very same files, so that the figures stay comparable.
  more = demo_dataset(
    DemoDatasetConfig(**{**SMALL.__dict__, "train_non_landmarks": 32}), cache_dir=tmp_path
  )
  for name in ("test.csv", "val.csv", "train.csv", "locations.csv"):
    assert (more / name).read_bytes() == (demo_dir / name).read_bytes(), name
  before = [r["id"] for r in csv.DictReader(open(demo_dir / "non_landmark.csv"))]
  after = [r["id"] for r in csv.DictReader(open(more / "non_landmark.csv"))]
  assert after[: len(before)] == before and len(after) == 32  # the old ones, then new crops
  assert DemoDatasetConfig().train_non_landmarks == 240
