"""`landmark-jax demo` end to end on a minimal budget: every step runs and writes what the
next reads, the report's files agree with each other, and a second run reuses every step.
The figures themselves are not asserted: two training steps recognise nothing well."""

import csv
import json

import pytest

from landmark_jax.cli.main import main

STEPS = ("1/7", "2/7", "3/7", "4/7", "5/7", "6/7", "7/7")


@pytest.fixture(scope="module")
def demo_run(demo_cache, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("demo") / "workdir"
  return workdir, ["demo", "--workdir", str(workdir), "max_steps=2"]


def test_the_demo_runs_every_step_and_writes_its_report(demo_run, capsys):
  workdir, argv = demo_run
  assert main(argv) == 0
  out = capsys.readouterr().out
  assert all(f"== {step}" in out for step in STEPS)
  assert "reused" not in out
  report = workdir / "report"
  for name in ("report.md", "report.json", "predictions.csv", "threshold_sweep.png",
               "sensitivity_specificity.png", "score_distributions.png"):
    assert (report / name).stat().st_size > 0, name
  figures = json.loads((report / "report.json").read_text())
  with open(report / "predictions.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  # One row per test photo, and the rates the report prints are those rows'.
  assert len(rows) == figures["images"] == 168
  landmark = [r for r in rows if r["landmark_id"]]
  assert len(landmark) == figures["landmark_images"]
  recognised = sum(r["predicted_landmark_id"] == r["landmark_id"] for r in landmark)
  assert recognised == figures["recognised"]
  rejected = sum(not r["predicted_landmark_id"] for r in rows if not r["landmark_id"])
  assert rejected == figures["rejected"]
  # A prediction is made exactly when the score clears the calibrated η.
  eta = json.loads((workdir / "index" / "manifest.json").read_text())["eta"]
  assert figures["eta"] == pytest.approx(eta)
  for row in rows:
    assert bool(row["predicted_landmark_id"]) == (float(row["score"]) >= eta), row
  assert "score_distributions.png" in out
  timings = json.loads((workdir / "timings.json").read_text())
  assert set(timings) == {"dataset", "train", "embed", "clean", "index", "calibrate",
                          "evaluate", "total"}


def test_a_second_demo_reuses_every_step(demo_run, capsys):
  workdir, argv = demo_run
  assert main(argv) == 0
  out = capsys.readouterr().out
  assert out.count("(done before: reused)") == 5  # train, embed, clean, index, calibrate


def test_a_demo_workdir_made_with_other_settings_is_refused(demo_run, capsys):
  workdir, argv = demo_run
  assert main([*argv[:-1], "max_steps=3"]) == 2
  err = capsys.readouterr().err.strip()
  assert "max_steps: 2 → 3" in err and "landmark-jax demo --fresh" in err
