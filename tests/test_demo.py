"""`landmark-jax demo` end to end on a minimal budget: every step of both rounds runs and
writes what the next reads, the second round trains on exactly the photos the first round's
cleaning kept plus the non-landmark ones, the report's files agree with each other, and a
second run reuses every step. The figures themselves are not asserted: two training steps
recognise nothing well."""

import csv
import json

import pytest

import landmark_jax.train.loop
from landmark_jax.cli.main import main
from landmark_jax.stages.embed import load_embeddings

# Slow as a whole: the demo's two rounds, trained once for the module (its tests read
# each other's run).
pytestmark = pytest.mark.slow

STEPS = tuple(f"{i}/10" for i in range(1, 11))


def read_csv(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def demo_run(demo_cache, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("demo") / "workdir"
  # The photos each training run read, recorded by the first test: {data.clean_csv: {id: landmark}}
  # No learning-rate decay: its steps depend on how many photos a round trains on, and as
  # constants of the compiled step they would cost the second round a compilation of its own.
  return workdir, ["demo", "--workdir", str(workdir), "optim.lr_decay_epochs=()", "max_steps=2"], {}


def test_the_demo_runs_every_step_and_writes_its_report(demo_run, capsys, monkeypatch):
  workdir, argv, trained_on = demo_run
  read_source = landmark_jax.train.loop.source_for

  def recording_source_for(data, split="train", label_map=None):
    source = read_source(data, split, label_map)
    if split == "train":
      trained_on[data.clean_csv] = dict(zip(source.ids, source.landmark_ids()))
    return source

  # What the training loop itself reads, so the next test checks the photos it trained on.
  monkeypatch.setattr(landmark_jax.train.loop, "source_for", recording_source_for)
  assert main(argv) == 0
  out = capsys.readouterr().out
  assert all(f"== {step}" in out for step in STEPS)
  assert "reused" not in out
  # The cleaning names the photos it was made from: build-index --target-recall samples them.
  assert json.loads((workdir / "clean" / "clean.json").read_text())["embeddings"] == str(
    (workdir / "embeddings").absolute()
  )
  report = workdir / "report"
  for name in (
    "report.md",
    "report.json",
    "predictions.csv",
    "threshold_sweep.png",
    "sensitivity_specificity.png",
    "score_distributions.png",
  ):
    assert (report / name).stat().st_size > 0, name
  figures = json.loads((report / "report.json").read_text())
  rows = read_csv(report / "predictions.csv")
  # One row per test photo, and the rates the report prints are those rows'.
  assert len(rows) == figures["images"] == 168
  landmark = [r for r in rows if r["landmark_id"]]
  assert len(landmark) == figures["landmark_images"]
  recognised = sum(r["predicted_landmark_id"] == r["landmark_id"] for r in landmark)
  assert recognised == figures["recognised"]
  rejected = sum(not r["predicted_landmark_id"] for r in rows if not r["landmark_id"])
  assert rejected == figures["rejected"]
  # The headline is the paper's offline test: a prediction is made exactly when the score
  # clears η alone (the manifest's `eta_without_references`; None: no ρ was chosen, and
  # `eta` is η alone). Beside it, the recognizer's rule: the score clears the calibrated η
  # (the manifest's `eta`, calibrated with ρ when there is one) and, when the calibration
  # found class references worth a threshold ρ, the similarity to the nearest landmark's
  # reference photos clears ρ.
  manifest = json.loads((workdir / "index" / "manifest.json").read_text())
  rho, eta = manifest["reference_threshold"], manifest["eta"]
  alone = eta if manifest["eta_without_references"] is None else manifest["eta_without_references"]
  assert figures["eta"] == pytest.approx(eta)
  assert figures["settings"]["paper"]["eta"] == pytest.approx(alone)
  assert figures["reference_threshold"] == (None if rho is None else pytest.approx(rho))
  assert all(row["reference_similarity"] for row in rows)  # every landmark has references
  for row in rows:
    assert bool(row["predicted_landmark_id"]) == (float(row["score"]) >= alone), row
    expected = float(row["score"]) >= eta and (
      rho is None or float(row["reference_similarity"]) >= rho
    )
    assert bool(row["predicted_with_references"]) == expected, row
  assert "score_distributions.png" in out
  assert str(workdir / "round1" / "clean" / "report.md") in out
  timings = json.loads((workdir / "timings.json").read_text())
  assert set(timings) == {
    "dataset",
    "round1/train",
    "round1/embed",
    "round1/clean",
    "train",
    "embed",
    "clean",
    "index",
    "calibrate",
    "evaluate",
    "total",
  }


def test_the_second_round_trains_on_the_cleaned_photos_and_every_non_landmark_one(
  demo_run, demo_cache
):
  workdir, _, trained_on = demo_run
  [dataset] = demo_cache.glob("demo-v*")
  everything = {r["id"]: int(r["landmark_id"]) for r in read_csv(dataset / "train.csv")}
  non_landmark = {r["id"]: None for r in read_csv(dataset / "non_landmark.csv")}
  clean_csv = workdir.resolve() / "round1" / "clean" / "train_clean.csv"
  clean = {
    image_id: int(r["landmark_id"]) for r in read_csv(clean_csv) for image_id in r["images"].split()
  }
  # Two steps of training cluster badly: cleaning drops photos, so the rounds differ.
  assert 0 < len(clean) < len(everything) and set(clean) <= set(everything)
  assert trained_on == {
    "": {**everything, **non_landmark},
    str(clean_csv): {**clean, **non_landmark},
  }
  # The centroids come from the retrained model, over the photos it trained on.
  embeddings = load_embeddings(workdir / "embeddings")
  assert embeddings.checkpoint.startswith(str(workdir / "train"))
  assert dict(zip(embeddings.ids, embeddings.landmark_ids())) == {**clean, **non_landmark}
  manifest = json.loads((workdir / "index" / "manifest.json").read_text())
  assert manifest["checkpoint"].startswith(str(workdir / "train"))


def test_a_second_demo_reuses_every_step(demo_run, capsys):
  workdir, argv, _ = demo_run
  assert main(argv) == 0
  out = capsys.readouterr().out
  # Both rounds' train, embed and clean, then index and calibrate.
  assert out.count("(done before: reused)") == 8


def test_a_demo_workdir_made_with_other_settings_is_refused(demo_run, capsys):
  workdir, argv, _ = demo_run
  assert main([*argv[:-1], "max_steps=3"]) == 2
  err = capsys.readouterr().err.strip()
  assert "max_steps: 2 → 3" in err and "landmark-jax demo --fresh" in err
  assert main([*argv, "--single-round"]) == 2
  err = capsys.readouterr().err.strip()
  assert "with the second round" in err and "landmark-jax demo --fresh" in err
