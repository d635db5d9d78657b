import json
import pickle

import numpy as np
import pytest
from PIL import Image

from landmark_jax.cli import main
from landmark_jax.data import GLDv2Source
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.eval.metrics import revisited_map
from landmark_jax.eval.report import emulate_collection
from landmark_jax.eval.revisited import evaluate_revisited
from landmark_jax.recognize import PhotoEmbedder


def test_emulated_collection_has_the_requested_landmark_share(demo_cache):
  source = GLDv2Source(demo_dataset(), csv="test.csv")
  collection = emulate_collection(source, 0.2, seed=1)
  non_landmark = collection.labels == collection.label_map.non_landmark_label
  assert non_landmark.sum() == 120  # every non-landmark photo kept
  assert (~non_landmark).sum() == 30  # 0.2 / 0.8 × 120
  assert set(collection.ids) <= set(source.ids)
  tiny_share = emulate_collection(source, 0.02)
  assert (tiny_share.labels != tiny_share.label_map.non_landmark_label).sum() == 2  # round(2.45)


def test_evaluate_writes_report_and_plots(tiny_trained, index_dir, tmp_path, capsys):
  workdir = str(tiny_trained[0])
  assert main(["evaluate", "--checkpoint", workdir, "--index", str(index_dir / "index"),
               "--out", str(tmp_path), "--landmark-share", "0", "--eta", "0.9"]) == 0
  report = json.loads((tmp_path / "report.json").read_text())
  assert report["images"] == 168 and report["landmark_images"] == 48 and report["eta"] == 0.9
  # Two demo landmarks have 9 training views (< 10: rare), six have 18; 6 test views each.
  assert report["by_frequency"]["rare"]["images"] == 12
  assert report["by_frequency"]["frequent"]["images"] == 36
  assert 0 <= report["gap"] <= report["gap_without_threshold"] <= 1
  sweep = report["sweep"]
  assert np.all(np.diff(sweep["specificity"]) >= 0) and np.all(np.diff(sweep["sensitivity"]) <= 0)
  for name in ("threshold_sweep.png", "sensitivity_specificity.png"):
    with Image.open(tmp_path / name) as image:
      assert image.format == "PNG" and image.size[0] >= 600
  markdown = (tmp_path / "report.md").read_text()
  assert "| all photos |" in markdown and "GAP" in markdown and "threshold_sweep.png" in markdown


def test_evaluate_revisited_on_a_constructed_dataset(trained, landmarks_mini, tmp_path):
  # A revisitop-layout dataset from landmarks-mini: database = all landmark photos but the
  # first of each landmark, queries = those firsts (cropped to a box); positives of a query =
  # its landmark's other photos, split easy/hard, one junk.
  import csv
  rows = list(csv.DictReader(open(landmarks_mini / "train.csv")))
  (tmp_path / "jpg").mkdir()
  by_landmark = {}
  for row in rows:
    by_landmark.setdefault(row["landmark_id"], []).append(row["id"])
  def link(image_id):
    src = landmarks_mini / "images" / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"
    (tmp_path / "jpg" / f"{image_id}.jpg").symlink_to(src)
  queries = [ids[0] for ids in by_landmark.values() if len(ids) >= 3]
  database = [i for ids in by_landmark.values() for i in (ids[1:] if ids[0] in queries else ids)]
  for image_id in queries + database:
    link(image_id)
  gnd = []
  for q in queries:
    others = [database.index(i) for i in by_landmark[next(l for l, ids in by_landmark.items() if ids[0] == q)][1:]]
    gnd.append({"easy": others[:-2], "hard": others[-2:-1], "junk": others[-1:],
                "bbx": [10.0, 10.0, 300.0, 250.0]})
  with open(tmp_path / "gnd_mini.pkl", "wb") as f:
    pickle.dump({"imlist": database, "qimlist": queries, "gnd": gnd}, f)

  embedder = PhotoEmbedder(trained)
  result = evaluate_revisited(embedder.embed, tmp_path, tmp_path / "gnd_mini.pkl",
                              trust_pickle=True)
  assert result["queries"] == len(queries) and result["database_images"] == len(database)

  # Independently: crop the queries by hand, embed, rank, score.
  crops = [Image.open(tmp_path / "jpg" / f"{q}.jpg").convert("RGB").crop((10, 10, 300, 250))
           for q in queries]
  ranks = np.argsort(-(embedder.embed([str(tmp_path / "jpg" / f"{d}.jpg") for d in database])
                       @ embedder.embed(crops).T), axis=0, kind="stable")
  for protocol in ("medium", "hard"):
    assert result[protocol]["mAP"] == pytest.approx(revisited_map(ranks, gnd, protocol)["mAP"])

  # Distractors join the database and can only push positives down.
  (tmp_path / "distractors").mkdir()
  for i in range(3):
    Image.fromarray(np.random.default_rng(i).integers(0, 255, (80, 80, 3), np.uint8)).save(
        tmp_path / "distractors" / f"d{i}.jpg")
  with_distractors = evaluate_revisited(embedder.embed, tmp_path, tmp_path / "gnd_mini.pkl",
                                        distractors=tmp_path / "distractors", trust_pickle=True)
  assert with_distractors["distractors"] == 3
  assert with_distractors["medium"]["mAP"] <= result["medium"]["mAP"] + 1e-9


def test_geo_information_side_by_side_never_hurts(tiny_trained, index_dir, tmp_path):
  # Geo filtering only removes candidates: a located landmark photo's own landmark stays,
  # and a non-landmark photo's best score can only fall. So with geo-information sensitivity
  # and specificity are at least those without, at the same η.
  workdir = str(tiny_trained[0])
  locations = demo_dataset() / "locations.csv"
  assert main(["evaluate", "--checkpoint", workdir, "--index", str(index_dir / "index"),
               "--out", str(tmp_path), "--landmark-share", "0", "--eta", "0.9",
               "--locations-csv", str(locations)]) == 0
  report = json.loads((tmp_path / "report.json").read_text())
  geo = report["geo"]
  assert geo["located_photos"] == 168
  assert geo["with"]["sensitivity"] >= geo["without"]["sensitivity"]
  assert geo["with"]["specificity"] >= geo["without"]["specificity"]
  assert geo["with"]["sensitivity"] + geo["with"]["specificity"] > (
      geo["without"]["sensitivity"] + geo["without"]["specificity"])  # it does help here
  assert "| with geo-information |" in (tmp_path / "report.md").read_text()
