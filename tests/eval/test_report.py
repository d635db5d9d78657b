import dataclasses
import json
import logging
import math
import pickle

import numpy as np
import pytest
from PIL import Image

from landmark_jax.cli import main
from landmark_jax.data import GLDv2Source
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.errors import ConfigError, DataError
from landmark_jax.eval.collection import (
  check_collection_size,
  emulate_collection,
  landmark_photos_wanted,
)
from landmark_jax.eval.metrics import revisited_map
from landmark_jax.eval.report import evaluate_source, write_report
from landmark_jax.eval.revisited import evaluate_revisited
from landmark_jax.eval.scoring import ScoredPhotos, evaluate_scored
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


def test_landmark_photos_wanted_by_hand():
  assert landmark_photos_wanted(120, 0.2) == 30  # 0.2 / 0.8 × 120
  assert landmark_photos_wanted(120, 0.02) == 2  # 0.02 / 0.98 × 120 = 2.45
  assert landmark_photos_wanted(120, 0.001) == 1  # 0.12, but at least one
  assert landmark_photos_wanted(956, 0.02) == 20  # 19.51 (955 gives 19.49 → 19)


@pytest.mark.parametrize("share", [0, 1, -0.5, 1.5, math.nan])
def test_emulate_collection_refuses_a_share_outside_0_1(demo_cache, share):
  source = GLDv2Source(demo_dataset(), csv="test.csv")
  with pytest.raises(ConfigError, match="landmark share must be in [(]0, 1[)]"):
    emulate_collection(source, share)


def test_a_collection_too_small_is_refused_with_what_would_do(demo_cache):
  source = GLDv2Source(demo_dataset(), csv="test.csv")  # 48 landmark, 120 non-landmark photos
  # 2 % of a collection with 120 non-landmark photos is 2 landmark photos. 20 need
  # 0.02 / 0.98 × N ≥ 19.5, N ≥ 955.5: 956 non-landmark photos; or with these 120 a share of
  # 20 / 140 = 14.29 %, rounded up to 14.3 %.
  with pytest.raises(
    DataError,
    match="2 % landmark share of 120 non-landmark photos keeps 2 "
    "landmark photos, fewer than --min-photos 20: use at least "
    "956 non-landmark photos, a share of at least 14.3 %",
  ):
    check_collection_size(source, 0.02, min_photos=20)
  # The advice holds: that share keeps 20.
  kept = emulate_collection(source, 0.143)
  assert (kept.labels != kept.label_map.non_landmark_label).sum() == 20
  check_collection_size(source, 0.143, min_photos=20)
  check_collection_size(source, 0.02, min_photos=2)
  check_collection_size(source, 0.02, min_photos=0)
  # More than the test set has at any share: no share can help.
  with pytest.raises(DataError, match="only 48 landmark photos"):
    check_collection_size(source, 0.5, min_photos=49)


def scored_photos(recognised, landmark, rejected, non_landmark, landmarks=8):
  """`landmark` photos of `landmarks` landmarks (in turn), the first `recognised` predicted
  right above η = 0.9 and the rest predicted wrong; `non_landmark` photos, the first
  `rejected` scored under η and the rest over it."""
  truth = [i % landmarks for i in range(landmark)] + [None] * non_landmark
  nearest = [t if i < recognised else (t + 1) % landmarks for i, t in enumerate(truth[:landmark])]
  nearest += [0] * non_landmark
  scores = [0.95] * landmark + [0.5] * rejected + [0.95] * (non_landmark - rejected)
  return ScoredPhotos([f"p{i}" for i in range(len(truth))], truth, nearest, np.array(scores))


def test_a_figure_on_one_photo_is_refused_naming_the_counts():
  # The issue: one landmark photo, recognised, reported as 100 % sensitivity with no warning.
  scored = scored_photos(1, 1, 120, 120)
  with pytest.raises(
    DataError,
    match="1 landmark photo and specificity on 120 non-landmark "
    "photos.*--min-photos 20.*--landmark-share",
  ):
    evaluate_scored(scored, 0.9)
  with pytest.raises(DataError, match="30 landmark photos and specificity on 19 non-landmark"):
    evaluate_scored(scored_photos(30, 30, 19, 19), 0.9)
  evaluate_scored(scored_photos(20, 20, 20, 20), 0.9)  # 20 of each is enough
  # With the check off the figure is shown, but with its n and an interval that says how
  # little one photo proves: 1 of 1 → 1/(1 + 1.96²) = 20.7 % to 100 %.
  result = evaluate_scored(scored, 0.9, min_photos=0)
  assert result["sensitivity"] == 1.0 and result["landmark_images"] == 1
  assert result["sensitivity_ci"] == pytest.approx((0.2065, 1.0), abs=1e-4)


def test_no_photos_at_all_is_refused_even_with_the_check_off():
  with pytest.raises(DataError, match="no test photos"):
    evaluate_scored(scored_photos(0, 0, 0, 0), 0.9, min_photos=0)


class NoEmbedding:
  """A photo embedder that must not be asked to embed anything."""

  def embed_source(self, *args, **kwargs):
    raise AssertionError("photos were embedded before the photo counts were checked")


def test_evaluate_source_checks_the_counts_before_embedding(demo_cache, tmp_path):
  source = GLDv2Source(demo_dataset(), csv="test.csv")
  landmark = np.flatnonzero(source.labels != source.label_map.non_landmark_label)
  non_landmark = np.flatnonzero(source.labels == source.label_map.non_landmark_label)
  small = source.subset(np.concatenate([landmark[:10], non_landmark]))
  with pytest.raises(DataError, match="10 landmark photos and specificity on 120 non-landmark"):
    evaluate_source(NoEmbedding(), None, small, tmp_path)


def test_report_shows_n_and_wilson_intervals_and_marks_small_rows(tmp_path, caplog):
  # 8 of 48 landmark photos recognised, 117 of 120 non-landmark photos rejected. Wilson
  # bounds from the score equation (checked with scipy's binomtest(...).proportion_ci(
  # method="wilson")): 8/48 → 0.0870–0.2958, 117/120 → 0.9291–0.9915.
  scored = scored_photos(8, 48, 117, 120)
  train_counts = {landmark: 5 if landmark < 2 else 50 for landmark in range(8)}  # 0, 1 rare
  with caplog.at_level(logging.WARNING, logger="landmark_jax.eval.report"):
    result = write_report(scored, 0.9, tmp_path, train_counts=train_counts, geo_scored=scored)
  markdown = (tmp_path / "report.md").read_text()
  assert "| all photos | sensitivity | specificity |" in markdown
  assert (
    "| paper's offline test (η = 0.9000, no ρ) | 16.7 % (8.7–29.6 %), n = 48 "
    "| 97.5 % (92.9–99.1 %), n = 120 |" in markdown
  )
  assert (
    "| with geo-information (η = 0.9000, no ρ) | 16.7 % (8.7–29.6 %), n = 48 "
    "| 97.5 % (92.9–99.1 %), n = 120 |" in markdown
  )
  # Rare: landmarks 0 and 1, 6 photos each = 12, of which photos 0 and 1 are recognised;
  # frequent: the other 36, photos 2–7 recognised.
  rare = next(line for line in markdown.splitlines() if line.startswith("| rare |"))
  frequent = next(line for line in markdown.splitlines() if line.startswith("| frequent |"))
  assert "n = 12" in rare and "n < 20: indicative only" in rare
  assert "n = 36" in frequent and "indicative" not in frequent
  assert any("12 photos" in r.getMessage() and "rare" in r.getMessage() for r in caplog.records)
  assert "n = 168" in markdown  # GAP over every test photo
  assert "nan" not in markdown
  report = json.loads((tmp_path / "report.json").read_text())
  assert (report["recognised"], report["landmark_images"]) == (8, 48)
  assert (report["rejected"], report["non_landmark_images"]) == (117, 120)
  assert report["sensitivity_ci"] == pytest.approx([0.0870, 0.2958], abs=1e-4)
  assert report["specificity_ci"] == pytest.approx([0.9291, 0.9915], abs=1e-4)
  assert report["by_frequency"]["rare"]["images"] == 12
  assert report["by_frequency"]["rare"]["recognised"] == 2
  assert report["by_frequency"]["frequent"]["recognised"] == 6
  assert report["by_frequency"]["rare"]["indicative_only"] is True
  assert report["min_photos"] == 20 and result["geo"]["with"]["landmark_images"] == 48


def test_undefined_figures_show_a_dash_and_n_0_never_nan(tmp_path):
  scored = scored_photos(5, 24, 0, 0)  # no non-landmark photos at all
  with pytest.raises(DataError, match="0 non-landmark photos"):
    write_report(scored, 0.9, tmp_path)
  write_report(scored, 0.9, tmp_path, min_photos=0)
  markdown = (tmp_path / "report.md").read_text()
  # 5 of 24
  assert "| paper's offline test (η = 0.9000, no ρ) | 20.8 % (9.2–40.5 %), n = 24 | —, n = 0 |" in (
    markdown
  )
  assert "nan" not in markdown.lower()
  report = json.loads((tmp_path / "report.json").read_text())
  assert report["specificity"] is None and report["non_landmark_images"] == 0


@pytest.mark.parametrize("share", ["0", "-0.02", "1", "1.5", "abc", "nan"])
def test_a_landmark_share_outside_0_1_is_a_usage_error(tmp_path, capsys, share):
  # Refused while parsing: the checkpoint that does not exist is never reached.
  with pytest.raises(SystemExit) as exit_:
    main(
      [
        "evaluate",
        "--checkpoint",
        str(tmp_path / "no_such_run"),
        "--index",
        str(tmp_path),
        "--out",
        str(tmp_path),
        "--landmark-share",
        share,
      ]
    )
  assert exit_.value.code == 2
  lines = capsys.readouterr().err.splitlines()
  assert len(lines) == 1 and "--landmark-share" in lines[0] and f"{share} is not" in lines[0]


@pytest.mark.parametrize("count", ["-1", "many"])
def test_min_photos_must_be_an_integer_at_least_0(tmp_path, capsys, count):
  with pytest.raises(SystemExit) as exit_:
    main(
      [
        "evaluate",
        "--checkpoint",
        str(tmp_path / "no_such_run"),
        "--index",
        str(tmp_path),
        "--out",
        str(tmp_path),
        "--min-photos",
        count,
      ]
    )
  assert exit_.value.code == 2
  lines = capsys.readouterr().err.splitlines()
  assert len(lines) == 1 and f"--min-photos: {count} is not an integer ≥ 0" in lines[0]


def test_evaluate_refuses_a_small_collection_before_embedding(
  tiny_trained, index_dir, tmp_path, capsys, monkeypatch
):
  # The recognizer embeds through its PhotoEmbedder: any photo embedded fails the test.
  monkeypatch.setattr(PhotoEmbedder, "embed_source", NoEmbedding.embed_source)
  assert (
    main(
      [
        "evaluate",
        "--checkpoint",
        str(tiny_trained[0]),
        "--index",
        str(index_dir / "index"),
        "--out",
        str(tmp_path),
        "--landmark-share",
        "0.02",
      ]
    )
    == 2
  )
  lines = capsys.readouterr().err.splitlines()
  assert len(lines) == 1, lines
  assert "keeps 2 landmark photos, fewer than --min-photos 20" in lines[0]
  assert "956 non-landmark photos" in lines[0]
  assert not (tmp_path / "report.md").exists()


def test_evaluate_writes_report_and_plots(tiny_trained, index_dir, tmp_path, capsys):
  workdir = str(tiny_trained[0])
  # No --landmark-share: the test set as it is, all 48 landmark and 120 non-landmark photos.
  assert (
    main(
      [
        "evaluate",
        "--checkpoint",
        workdir,
        "--index",
        str(index_dir / "index"),
        "--out",
        str(tmp_path),
        "--eta",
        "0.9",
      ]
    )
    == 0
  )
  report = json.loads((tmp_path / "report.json").read_text())
  assert report["images"] == 168 and report["landmark_images"] == 48
  assert report["eta"] == float(np.float32(0.9))  # η is the float32 the scores are compared in
  assert report["non_landmark_images"] == 120 and report["min_photos"] == 20
  assert 0 <= report["recognised"] <= 48 and 0 <= report["rejected"] <= 120
  low, high = report["sensitivity_ci"]
  assert low <= report["sensitivity"] <= high
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
  all_photos = next(line for line in markdown.splitlines() if line.startswith("| paper's offline"))
  assert "n = 48" in all_photos and "n = 120" in all_photos
  rare = next(line for line in markdown.splitlines() if line.startswith("| rare |"))
  assert "n = 12" in rare and "n < 20: indicative only" in rare


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
    others = [
      database.index(i)
      for i in by_landmark[next(l for l, ids in by_landmark.items() if ids[0] == q)][1:]
    ]
    gnd.append(
      {
        "easy": others[:-2],
        "hard": others[-2:-1],
        "junk": others[-1:],
        "bbx": [10.0, 10.0, 300.0, 250.0],
      }
    )
  with open(tmp_path / "gnd_mini.pkl", "wb") as f:
    pickle.dump({"imlist": database, "qimlist": queries, "gnd": gnd}, f)

  embedder = PhotoEmbedder(trained)
  result = evaluate_revisited(
    embedder.embed, tmp_path, tmp_path / "gnd_mini.pkl", trust_pickle=True
  )
  assert result["queries"] == len(queries) and result["database_images"] == len(database)

  # Independently: crop the queries by hand, embed, rank, score.
  crops = [
    Image.open(tmp_path / "jpg" / f"{q}.jpg").convert("RGB").crop((10, 10, 300, 250))
    for q in queries
  ]
  ranks = np.argsort(
    -(
      embedder.embed([str(tmp_path / "jpg" / f"{d}.jpg") for d in database])
      @ embedder.embed(crops).T
    ),
    axis=0,
    kind="stable",
  )
  for protocol in ("medium", "hard"):
    assert result[protocol]["mAP"] == pytest.approx(revisited_map(ranks, gnd, protocol)["mAP"])

  # Distractors join the database and can only push positives down.
  (tmp_path / "distractors").mkdir()
  for i in range(3):
    Image.fromarray(np.random.default_rng(i).integers(0, 255, (80, 80, 3), np.uint8)).save(
      tmp_path / "distractors" / f"d{i}.jpg"
    )
  with_distractors = evaluate_revisited(
    embedder.embed,
    tmp_path,
    tmp_path / "gnd_mini.pkl",
    distractors=tmp_path / "distractors",
    trust_pickle=True,
  )
  assert with_distractors["distractors"] == 3
  assert with_distractors["medium"]["mAP"] <= result["medium"]["mAP"] + 1e-9


def test_geo_information_side_by_side_never_hurts(tiny_trained, index_dir, tmp_path):
  # Geo filtering only removes candidates: a located landmark photo's own landmark stays,
  # and a non-landmark photo's best score can only fall. So with geo-information sensitivity
  # and specificity are at least those without, at the same η.
  workdir = str(tiny_trained[0])
  locations = demo_dataset() / "locations.csv"
  assert (
    main(
      [
        "evaluate",
        "--checkpoint",
        workdir,
        "--index",
        str(index_dir / "index"),
        "--out",
        str(tmp_path),
        "--eta",
        "0.9",
        "--locations-csv",
        str(locations),
      ]
    )
    == 0
  )
  report = json.loads((tmp_path / "report.json").read_text())
  geo = report["geo"]
  assert geo["located_photos"] == 168
  assert geo["with"]["sensitivity"] >= geo["without"]["sensitivity"]
  assert geo["with"]["specificity"] >= geo["without"]["specificity"]
  assert geo["with"]["sensitivity"] + geo["with"]["specificity"] > (
    geo["without"]["sensitivity"] + geo["without"]["specificity"]
  )  # it does help here
  assert "| with geo-information (η = 0.9000, no ρ) |" in (tmp_path / "report.md").read_text()


def test_photos_of_landmarks_the_index_lacks_are_counted_and_said(tmp_path, caplog):
  # 48 landmark photos of 8 landmarks, 6 each; landmarks 5 and 7 were removed from the index.
  scored = scored_photos(8, 48, 117, 120)
  with caplog.at_level(logging.WARNING, logger="landmark_jax.eval.report"):
    result = write_report(scored, 0.9, tmp_path, indexed={0, 1, 2, 3, 4, 6})
  assert result["photos_of_landmarks_not_in_index"] == 12
  assert "12 test photos show landmarks the index does not have (5, 7)" in caplog.text
  assert (
    "12 of the landmark photos show landmarks the index does not have"
    in (tmp_path / "report.md").read_text()
  )
  write_report(scored, 0.9, tmp_path / "all", indexed=set(range(8)))
  assert "does not have" not in (tmp_path / "all" / "report.md").read_text()


def test_references_change_the_answers_and_the_report_shows_both(tmp_path):
  # 48 landmark photos (8 recognised at η = 0.9) and 120 non-landmarks (3 accepted). With
  # references, 2 of the 8 recognised and 2 of the 3 accepted non-landmarks are far from
  # their landmark's references: 6/48 recognised, 119/120 rejected. The headline is η alone.
  scored = scored_photos(8, 48, 117, 120)
  accepted = np.flatnonzero(np.asarray(scored.scores) >= np.float32(0.9))
  landmark = [i for i in accepted if scored.truth[i] is not None]
  non_landmark = [i for i in accepted if scored.truth[i] is None]
  near = np.ones(len(scored.ids), bool)
  near[landmark[:2] + non_landmark[:2]] = False
  with_references = dataclasses.replace(
    scored, near_references=near, reference_similarity=np.where(near, 0.9, 0.1)
  )
  result = write_report(
    with_references, 0.9, tmp_path / "with", reference_threshold=0.5, eta_without_references=0.9
  )
  assert (result["recognised"], result["rejected"]) == (8, 117)
  assert (result["references"]["with"]["recognised"], result["references"]["with"]["rejected"]) == (
    6,
    119,
  )
  assert result["references"]["without"]["recognised"] == 8
  markdown = (tmp_path / "with" / "report.md").read_text()
  assert "| with references (η = 0.9000, ρ = 0.5000) | 12.5 %" in markdown
  assert "| paper's offline test (η = 0.9000, no ρ) | 16.7 %" in markdown
  # Kept but not applied (calibration chose no ρ): said in one sentence, figures unchanged.
  kept = dataclasses.replace(scored, reference_similarity=np.full(len(scored.ids), 0.5))
  result = write_report(kept, 0.9, tmp_path / "kept")
  assert result["recognised"] == 8 and "references" not in result
  assert list(result["settings"]) == ["paper"]
  assert "calibration chose no threshold ρ" in (tmp_path / "kept" / "report.md").read_text()
