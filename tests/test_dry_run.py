"""`landmark-jax benchmark gldv2-dry-run` at a tiny scale: it runs every step but the two
that compile a model (minutes on CPU; their code is what `benchmark train` and training
run), writes a JSON row per step with its time and memory, and its synthetic CSVs hold the
requested rows and landmarks, read back here with the csv module."""

import collections
import csv
import json

import numpy as np
import pytest

from landmark_jax.benchmarks import gldv2_synthetic
from landmark_jax.benchmarks.gldv2_dry_run import EMBEDDING_DIM
from landmark_jax.cli.main import main
from landmark_jax.data.labels import REGIONS

SCALE = 0.0005
STEPS = [
  "metadata",
  "source",
  "clean_source",
  "label_map",
  "curriculum",
  "shuffle",
  "train_state",
  "embeddings",
  "cleaning",
]
ROW_FIELDS = (
  "step",
  "what",
  "seconds",
  "cpu seconds",
  "rss before MB",
  "peak RSS MB",
  "added MB",
  "workers peak MB",
)


def read_rows(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
  out = tmp_path_factory.mktemp("dry-run")
  status = main(
    [
      "benchmark",
      "gldv2-dry-run",
      "--out",
      str(out),
      "--scale",
      str(SCALE),
      "--steps",
      *STEPS,
      "--shuffle-records",
      "300",
      "--workers",
      "2",
    ]
  )
  assert status == 0
  return out, json.loads((out / "dry_run.json").read_text())


def test_every_step_has_its_time_and_memory(dry_run):
  _, payload = dry_run
  assert [row["step"] for row in payload["steps"]] == STEPS
  for row in payload["steps"]:
    assert all(field in row for field in ROW_FIELDS), row
    assert row["seconds"] >= 0 and row["peak RSS MB"] > 0 and row["added MB"] >= 0


def test_the_csvs_have_the_requested_rows_and_landmarks(dry_run):
  out, payload = dry_run
  sizes = {
    k: round(v * SCALE)
    for k, v in [
      ("photos", 4_132_914),
      ("landmarks", 203_094),
      ("clean_photos", 1_580_470),
      ("clean_landmarks", 81_313),
    ]
  }
  assert payload["sizes"] == sizes
  train = read_rows(out / "train.csv")
  assert list(train[0]) == ["id", "url", "landmark_id"]
  landmark_of = {row["id"]: row["landmark_id"] for row in train}
  assert len(train) == len(landmark_of) == sizes["photos"]  # distinct ids
  counts = collections.Counter(landmark_of.values())
  assert len(counts) == sizes["landmarks"] and min(counts.values()) >= 2
  assert all(len(i) == 16 and set(i) <= set("0123456789abcdef") for i in landmark_of)
  assert all(row["url"] == f"https://synthetic.invalid/{row['id']}.jpg" for row in train)

  clean = read_rows(out / "train_clean.csv")
  photos = [(row["landmark_id"], image) for row in clean for image in row["images"].split()]
  assert len(clean) == len({row["landmark_id"] for row in clean}) == sizes["clean_landmarks"]
  assert len(photos) == len(set(photos)) == sizes["clean_photos"]
  assert all(landmark_of[image] == landmark for landmark, image in photos)

  regions = read_rows(out / "regions.csv")
  assert {row["landmark_id"] for row in regions} == set(counts)
  assert len(regions) == sizes["landmarks"] and {row["region"] for row in regions} <= set(REGIONS)


def test_the_steps_report_what_the_data_holds(dry_run):
  out, payload = dry_run
  rows = {row["step"]: row for row in payload["steps"]}
  landmarks = payload["sizes"]["landmarks"]
  assert rows["source"]["rows"] == payload["sizes"]["photos"]
  assert rows["source"]["landmarks"] == rows["label_map"]["landmarks"] == landmarks
  assert rows["clean_source"]["rows"] == payload["sizes"]["clean_photos"]
  regions = collections.Counter(r["region"] for r in read_rows(out / "regions.csv"))
  present = [regions[r] for r in REGIONS if regions[r]]
  assert rows["source"]["stage sizes"] == np.cumsum(present).tolist()
  # The train state at n + 1 classes, counted by hand: a D × (n + 1) kernel and an (n + 1)
  # bias (float32), the same again as SGD momentum, and n × D centers.
  state = payload["details"]["train_state_bytes"]
  classifier = 4 * (EMBEDDING_DIM + 1) * (landmarks + 1)
  assert state["classifier params"] == state["optimizer: classifier momentum"] == classifier
  assert state["center-loss centers"] == 4 * EMBEDDING_DIM * landmarks
  embeddings = np.load(out / "embeddings.npy", mmap_mode="r")
  assert embeddings.shape == (payload["sizes"]["clean_photos"], EMBEDDING_DIM)
  assert payload["details"]["cleaning"]["landmarks cleaned"] == payload["sizes"]["clean_landmarks"]


def test_decimal_and_hex_ids_match_python():
  values = np.array([0, 7, 10, 99, 100, 203_093, 4_132_913])
  assert gldv2_synthetic.decimal(values).tolist() == [str(v).encode() for v in values]
  ids = gldv2_synthetic.hex_ids(np.arange(1000), seed=3)
  assert len(set(ids.tolist())) == 1000
  assert all(len(i) == 16 and int(i, 16) >= 0 for i in ids.tolist())
