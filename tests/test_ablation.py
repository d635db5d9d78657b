"""`landmark-jax ablation` on a minimal budget: every run goes through the whole pipeline, and
the table's rows are what each run's saved predictions give when recomputed by hand."""

import csv
import json

import numpy as np
import pytest

from landmark_jax.ablation import VARIANTS, check_overrides, variants_named
from landmark_jax.cli.main import main
from landmark_jax.errors import ConfigError

# Slow as a whole: trains every variant of the ablation, once for the module.
pytestmark = pytest.mark.slow

SEEDS = (0, 1)
RUN_VARIANTS = ("softmax_n", "center_loss")
BUDGET = ("max_steps=2", "checkpoint_every_steps=100")


def by_hand(predictions_csv) -> dict:
  """Sensitivity, specificity, top-1 and thresholded GAP from one run's predictions.csv."""
  with open(predictions_csv, newline="") as f:
    rows = list(csv.DictReader(f))
  truth = np.array([r["landmark_id"] for r in rows])
  nearest = np.array([r["nearest_landmark_id"] for r in rows])
  predicted = np.array([r["predicted_landmark_id"] for r in rows])
  score = np.array([float(r["score"]) for r in rows])
  landmark = truth != ""
  # GAP: the predictions made (at η), most confident first; precision at each correct one.
  made = np.flatnonzero(predicted != "")
  ranked = made[np.argsort(-score[made], kind="stable")]
  correct = predicted[ranked] == truth[ranked]
  precision = np.cumsum(correct) / np.arange(1, len(ranked) + 1)
  return {
    "sensitivity": np.mean(predicted[landmark] == truth[landmark]),
    "specificity": np.mean(predicted[~landmark] == ""),
    "top1_accuracy": np.mean(nearest[landmark] == truth[landmark]),
    "gap": np.sum(precision * correct) / landmark.sum(),
  }


@pytest.fixture(scope="module")
def ablation(demo_cache, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("ablation")
  argv = [
    "ablation",
    "--config",
    "tiny_cpu",
    "--workdir",
    str(workdir),
    "--seeds",
    ",".join(map(str, SEEDS)),
    "--variants",
    ",".join(RUN_VARIANTS),
    *BUDGET,
  ]
  assert main(argv) == 0
  return workdir


def test_the_table_rows_are_the_saved_predictions_recomputed(ablation):
  payload = json.loads((ablation / "ablation.json").read_text())
  assert [(r["variant"], r["seed"]) for r in payload["runs"]] == [
    (v, s) for v in RUN_VARIANTS for s in SEEDS
  ]
  recomputed = {}
  for run in payload["runs"]:
    figures = by_hand(ablation / run["predictions"])
    recomputed[(run["variant"], run["seed"])] = figures
    for key, value in figures.items():
      assert run[key] == pytest.approx(value, abs=1e-12), (run["variant"], run["seed"], key)
  table = (ablation / "ablation.md").read_text()
  for row in payload["summary"]:
    values = {
      key: [recomputed[(row["variant"], s)][key] for s in SEEDS]
      for key in ("sensitivity", "specificity", "top1_accuracy", "gap")
    }
    cells = []
    for key, seeds in values.items():
      assert row[key]["mean"] == pytest.approx(np.mean(seeds), abs=1e-12)
      assert (row[key]["min"], row[key]["max"]) == pytest.approx((min(seeds), max(seeds)))
      cells.append(
        f"{100 * np.mean(seeds):.1f}"
        if min(seeds) == max(seeds)
        else f"{100 * np.mean(seeds):.1f} ({100 * min(seeds):.1f}–{100 * max(seeds):.1f})"
      )
    assert f"| {row['label']} | " + " | ".join(cells) + " |" in table
  assert (ablation / "ablation.png").stat().st_size > 0


def test_the_variants_differ_only_in_what_they_ablate(ablation):
  configs = {
    (v, s): json.loads((ablation / v / f"seed-{s}" / "train" / "config.json").read_text())
    for v in RUN_VARIANTS
    for s in SEEDS
  }

  def without_varied(config):
    config = json.loads(json.dumps(config))
    del config["seed"], config["loss"]["kind"], config["loss"]["non_landmark_class"]
    del config["curriculum"]["enabled"]
    return config

  first = without_varied(configs[(RUN_VARIANTS[0], SEEDS[0])])
  assert all(without_varied(c) == first for c in configs.values())
  assert first["max_steps"] == 2
  softmax_n = configs[("softmax_n", 0)]
  assert (softmax_n["loss"]["kind"], softmax_n["loss"]["non_landmark_class"]) == ("softmax", False)
  assert configs[("center_loss", 1)]["loss"]["kind"] == "softmax_center"
  assert configs[("center_loss", 1)]["seed"] == 1


def test_a_second_run_reuses_every_finished_run(ablation, capsys):
  before = (ablation / "ablation.json").read_text()
  argv = [
    "ablation",
    "--config",
    "tiny_cpu",
    "--workdir",
    str(ablation),
    "--seeds",
    ",".join(map(str, SEEDS)),
    "--variants",
    ",".join(RUN_VARIANTS),
    *BUDGET,
  ]
  assert main(argv) == 0
  out = capsys.readouterr().out
  assert out.count("done before, reused") == len(SEEDS) * len(RUN_VARIANTS)
  after = json.loads((ablation / "ablation.json").read_text())
  assert after["runs"] == json.loads(before)["runs"]


def test_variant_names_and_overrides_are_checked():
  assert [v.name for v in variants_named(None)] == [v.name for v in VARIANTS]
  with pytest.raises(ConfigError, match="unknown variant 'softmax'.*softmax_n"):
    variants_named(["softmax"])
  with pytest.raises(ConfigError, match="loss.kind is what the ablation varies"):
    check_overrides(["num_epochs=2", "loss.kind=arcface"])


@pytest.mark.parametrize(
  "argv, message",
  [
    (["--seeds", ""], "give at least one seed"),
    (["--seeds", "0,x"], "an integer"),
    (["--variants", "nope"], "unknown variant 'nope'"),
    (["seed=3"], "seed is what the ablation varies"),
    (["--seeds", "0", "1"], "several seeds are comma-separated: --seeds 0,1,2"),
    (["data.kind=gldv2", "data.root=."], "set data.val_csv and data.test_csv"),
  ],
)
def test_mistakes_are_one_line(argv, message, tmp_path, capsys):
  try:  # argparse refuses a malformed flag by exiting; the library's checks return
    status = main(["ablation", "--config", "tiny_cpu", "--workdir", str(tmp_path / "w"), *argv])
  except SystemExit as exit:
    status = exit.code
  assert status == 2
  err = capsys.readouterr().err.strip()
  assert message in err and "\n" not in err
  assert not (tmp_path / "w").exists()


def test_a_workdir_made_with_other_settings_is_refused_not_reused(ablation, capsys):
  before = (ablation / "ablation.json").read_text()
  argv = [
    "ablation",
    "--config",
    "tiny_cpu",
    "--workdir",
    str(ablation),
    "--seeds",
    ",".join(map(str, SEEDS)),
    "--variants",
    ",".join(RUN_VARIANTS),
    "max_steps=3",
    "checkpoint_every_steps=100",
  ]
  assert main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert "max_steps: 2 → 3" in err and "--fresh" in err and "\n" not in err
  assert (ablation / "ablation.json").read_text() == before  # nothing run, nothing rewritten


def test_held_out_photos_of_a_landmark_training_lacks_are_refused_before_training(
  demo_cache, tmp_path, capsys
):
  from landmark_jax.data.demo_dataset import demo_dataset

  demo = demo_dataset()
  root = tmp_path / "data"
  root.mkdir()
  (root / "images").symlink_to(demo / "images", target_is_directory=True)
  for name in ("non_landmark.csv", "val.csv", "test.csv"):
    (root / name).write_bytes((demo / name).read_bytes())
  lines = (demo / "train.csv").read_text().splitlines()
  (root / "train.csv").write_text("\n".join(l for l in lines if not l.endswith(",7")) + "\n")
  argv = [
    "ablation",
    "--config",
    "tiny_cpu",
    "--workdir",
    str(tmp_path / "w"),
    "--seeds",
    "0",
    "data.kind=gldv2",
    f"data.root={root}",
    "data.non_landmark_csv=non_landmark.csv",
    "data.val_csv=val.csv",
    "data.test_csv=test.csv",
    "data.categories_csv=",
  ]
  assert main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert "validation split has photos of a landmark the training photos do not have" in err
  assert "landmark 7" in err and "\n" not in err
  assert not (tmp_path / "w").exists()


def test_a_result_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
  from landmark_jax import folders

  target = tmp_path / "result.json"
  folders.atomic_write_text(target, '{"a": 1}')
  folders.atomic_write_text(target, '{"a": 2}')
  assert json.loads(target.read_text()) == {"a": 2}
  assert [p.name for p in tmp_path.iterdir()] == ["result.json"]  # no staging file left
  # A writer killed before the rename leaves the previous result, not half a new one.
  monkeypatch.setattr(folders.os, "replace", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))
  with pytest.raises(KeyboardInterrupt):
    folders.atomic_write_text(target, '{"a": 3, "b": "cut short"}')
  assert json.loads(target.read_text()) == {"a": 2}
