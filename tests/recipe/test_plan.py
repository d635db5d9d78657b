"""`landmark-jax recipe --dry-run`: every step in order with its command line, nothing
written, and each lacking input named (status 2)."""

import csv
import json
import os
import shlex

import pytest

from landmark_jax.cli.main import main
from tests.recipe.helpers import listed_folder, write_csv

# The recipe's steps on a folder without its own val.csv/test.csv, whose landmarks CSV has
# a region column (no regions step), with the bundle: docs/recipe.md's table.
STEPS = [
  ("split", "process 0"),
  ("round1/train", "every process (2)"),
  ("round1/embed", "every process (2)"),
  ("round1/clean", "process 0"),
  ("train", "every process (2)"),
  ("embed", "every process (2)"),
  ("clean", "process 0"),
  ("index", "process 0"),
  ("calibrate", "process 0"),
  ("evaluate", "process 0"),
  ("export", "process 0"),
]


def enough_photos(root):
  """A listed folder whose split trains on 96 photos: tiny_cpu's batch of 32 fills round 2
  whatever cleaning drops (`inputs._batch_lacks`)."""
  return listed_folder(root, per_landmark=(20, 20, 20, 20), non_landmarks=80)


def dry_run(capsys, data, workdir, *extra):
  status = main(
    [
      "recipe",
      "--data",
      str(data),
      "--workdir",
      str(workdir),
      "--config",
      "tiny_cpu",
      "--dry-run",
      "--plan-processes",
      "2",
      "--min-photos",
      "5",
      *extra,
    ]
  )
  out, err = capsys.readouterr()
  return status, out, err


def steps_of(out: str) -> list[tuple[str, str, str, list[str]]]:
  """(name, who, state, argv) of each listed step."""
  lines = out.splitlines()
  found = []
  for i, line in enumerate(lines):
    head = line.split(". ", 1)
    if len(head) == 2 and head[0].strip().isdigit():
      name, who, state = head[1].split(" — ")
      found.append((name, who, state, shlex.split(lines[i + 1])))
  return found


def flag(argv, name):
  return argv[argv.index(name) + 1]


def test_the_dry_run_lists_every_step_with_its_command_and_writes_nothing(tmp_path, capsys):
  data = enough_photos(tmp_path / "data")
  workdir = tmp_path / "w"
  status, out, err = dry_run(capsys, data, workdir, "num_epochs=3", "index.backend=exact")
  assert status == 0, err
  steps = steps_of(out)
  assert [(name, who) for name, who, _, _ in steps] == STEPS
  assert all(state == "to do" for _, _, state, _ in steps)
  by_name = {name: argv for name, _, _, argv in steps}
  # Both rounds train the config with the overrides on the split's CSVs under the data.
  for name, folder in (
    ("round1/train", workdir / "round1" / "train"),
    ("train", workdir / "train"),
  ):
    argv = by_name[name]
    assert argv[:4] == ["landmark-jax", "train", "--workdir", str(folder)]
    assert "num_epochs=3" in argv and f"data.root={data}" in argv
    assert f"data.csv={workdir / 'split' / 'train.csv'}" in argv
    assert f"data.holdout_csv={workdir / 'split' / 'val.csv'}" in argv
  # Round 2 trains on round 1's cleaning, an absolute path (`experiment.retrain_config`).
  clean_csv = workdir.resolve() / "round1" / "clean" / "train_clean.csv"
  assert f"data.clean_csv={clean_csv}" in by_name["train"]
  assert not any(a.startswith("data.clean_csv") for a in by_name["round1/train"])
  assert flag(by_name["round1/embed"], "--checkpoint") == str(workdir / "round1" / "train")
  assert flag(by_name["index"], "--target-recall") == "0.99"
  assert by_name["index"][-1] == "backend=exact"  # the index.* overrides, as IndexConfig's
  assert flag(by_name["evaluate"], "--min-photos") == "5"
  assert flag(by_name["export"], "--out") == str(workdir / "bundle")
  # Header: the data's counts (4 landmarks of 20 photos, 80 non-landmark photos).
  assert "80 photos of 4 landmarks, 80 non-landmark photos" in out
  assert "lacks:" not in out and not workdir.exists()


def test_a_step_done_before_is_listed_as_reused(tmp_path, capsys):
  data = enough_photos(tmp_path / "data")
  workdir = tmp_path / "w"
  (workdir / "split").mkdir(parents=True)
  (workdir / "split" / "split.json").write_text("{}")
  (workdir / "round1" / "train").mkdir(parents=True)
  (workdir / "round1" / "train" / "holdout.json").write_text(json.dumps({}))
  status, out, _ = dry_run(capsys, data, workdir)
  states = {name: state for name, _, state, _ in steps_of(out)}
  assert status == 0
  assert states["split"] == states["round1/train"] == "done (reused)"
  assert states["round1/embed"] == "to do"


def test_lacking_inputs_are_named_and_the_status_is_2(tmp_path, capsys):
  data = listed_folder(tmp_path / "data")
  (data / "non_landmark.csv").unlink()  # GLDv2 has none
  status, out, err = dry_run(capsys, data, tmp_path / "w", "pipeline.batch_size=8")
  assert status == 2
  lacks = [line for line in out.splitlines() if line.startswith("lacks:")]
  assert len(lacks) == 1 and "--non-landmark-csv" in lacks[0], lacks
  assert "--non-landmarks DIR" not in lacks[0]  # `fit`'s flag, not the recipe's
  assert "no photos without a landmark" in lacks[0]
  assert err.strip() == "landmark-jax recipe: error: 1 input(s) lacking (the lacks: lines above)"
  # The steps are still listed: what would run once the input is there.
  assert len(steps_of(out)) == len(STEPS)


def test_a_workdir_of_other_settings_is_a_lack(tmp_path, capsys):
  data = enough_photos(tmp_path / "data")
  workdir = tmp_path / "w"
  status, _, err = dry_run(capsys, data, workdir, "num_epochs=3")
  assert status == 0, err
  # A first round trained with num_epochs=3: its config and a checkpoint, as `train` leaves.
  from landmark_jax.config import to_dict
  from landmark_jax.recipe.options import RecipeOptions

  options = RecipeOptions(data, workdir, "tiny_cpu", ("num_epochs=3",))
  train_dir = workdir / "round1" / "train"
  (train_dir / "checkpoints" / "4").mkdir(parents=True)
  (train_dir / "config.json").write_text(json.dumps(to_dict(options.run_config())))
  assert dry_run(capsys, data, workdir, "num_epochs=3")[0] == 0  # the same settings: fine
  status, out, _ = dry_run(capsys, data, workdir, "num_epochs=4")
  assert status == 2
  (lack,) = [line for line in out.splitlines() if line.startswith("lacks:")]
  assert "num_epochs: 3 → 4" in lack
  assert lack.endswith(f"use `rm -r {workdir}` to start over, or another --workdir")


def status_of(argv) -> int:
  """`main`'s status, whether it returns it or argparse exits with it."""
  try:
    return main(argv)
  except SystemExit as exit_:
    return exit_.code


@pytest.mark.parametrize(
  "argv, message",
  [
    (["data.csv=other.csv"], "data.csv: the recipe sets it from --data"),
    (["--held-out-max", "0"], "argument --held-out-max: 0 is not a positive integer"),
    (["--dry-run", "--estimate-only"], "not allowed with argument"),
  ],
)
def test_a_mistake_is_one_line_and_status_2(tmp_path, capsys, argv, message):
  data = listed_folder(tmp_path / "data")
  status = status_of(["recipe", "--data", str(data), "--workdir", str(tmp_path / "w"), *argv])
  err = capsys.readouterr().err.strip().splitlines()
  assert status == 2 and len(err) == 1 and message in err[0], err


def test_the_papers_curriculum_needs_two_regions_before_anything_runs(tmp_path, capsys):
  data = listed_folder(tmp_path / "data")  # landmarks in europe_russia and north_america_oceania
  argv = ["--config", "default", "--pretrained", "none", "pipeline.batch_size=16"]
  status, out, err = dry_run(capsys, data, tmp_path / "w", *argv)
  assert status == 0, out + err
  assert "--pretrained" not in out and "model.pretrained=none" in out
  rows = (data / "landmarks.csv").read_text().replace("north_america_oceania", "europe_russia")
  (data / "landmarks.csv").write_text(rows)
  status, out, _ = dry_run(capsys, data, tmp_path / "w", *argv)
  (lack,) = [line for line in out.splitlines() if line.startswith("lacks:")]
  assert status == 2 and "every landmark of the training data is in one region" in lack
  # Without a region column, the coordinates make a regions step (process 0's, first).
  (data / "landmarks.csv").write_text("landmark_id,name,latitude,longitude\n0,a,48.8,2.3\n")
  steps = steps_of(dry_run(capsys, data, tmp_path / "w", *argv)[1])
  assert steps[0][:2] == ("regions", "process 0")
  assert steps[0][3][1:] == [
    "regions",
    "--landmarks-csv",
    str(data / "landmarks.csv"),
    "--out",
    str(tmp_path / "w" / "regions.csv"),
  ]


def test_the_regions_steps_command_writes_what_round_ones_train_reads(tmp_path, capsys):
  data = listed_folder(tmp_path / "data")
  # No region column: Paris, New York, Tokyo and Cairo by their coordinates, so the
  # regions step decides them (europe_russia, north_america_oceania, far_east,
  # middle_east_north_africa by docs/decisions.md's boundaries).
  places = [(48.86, 2.35), (40.71, -74.01), (35.68, 139.69), (30.04, 31.24)]
  rows = [(i, f"landmark_{i}", lat, lon) for i, (lat, lon) in enumerate(places)]
  write_csv(data / "landmarks.csv", ("landmark_id", "name", "latitude", "longitude"), rows)
  argv = ["--config", "default", "--pretrained", "none", "pipeline.batch_size=16"]
  status, out, _ = dry_run(capsys, data, tmp_path / "w", *argv)
  steps = steps_of(out)
  assert status == 0 and steps[0][:3] == ("regions", "process 0", "to do"), out
  (train,) = [argv for name, *_, argv in steps if name == "round1/train"]
  regions_csv = tmp_path / "w" / "regions.csv"
  assert f"data.regions_csv={regions_csv}" in train

  # The step's own command line (without its program name), by the real CLI, in the
  # workdir the run has made by then (its attempt's record is in it).
  (tmp_path / "w").mkdir()
  assert main(steps[0][3][1:]) == 0
  capsys.readouterr()
  written = dict(csv.reader(regions_csv.read_text().splitlines()[1:]))
  assert written == {
    "0": "europe_russia",
    "1": "north_america_oceania",
    "2": "far_east",
    "3": "middle_east_north_africa",
  }
  status, out, _ = dry_run(capsys, data, tmp_path / "w", *argv)
  assert status == 0 and steps_of(out)[0][:3] == ("regions", "process 0", "done (reused)"), out
  assert "lacks:" not in out


def test_a_batch_round_two_could_not_fill_is_a_lack(tmp_path, capsys):
  # 5 photos of each of 4 landmarks and 20 non-landmark photos: 60/20/20 keeps 3 of each
  # landmark's 5 and 12 of the 20 for training, 24 photos; cleaning drops some of them.
  data = listed_folder(tmp_path / "data", per_landmark=(5, 5, 5, 5), non_landmarks=20)
  status, out, _ = dry_run(capsys, data, tmp_path / "w", "--min-photos", "0")
  (lack,) = [line for line in out.splitlines() if line.startswith("lacks:")]
  assert status == 2 and "round 1 trains on 24 photos" in lack and "a batch of 32" in lack
  assert "pipeline.batch_size=8 or less" in lack  # a power of two, at most 12
  for batch, lacking in ((12, False), (13, True)):
    argv = ("--min-photos", "0", f"pipeline.batch_size={batch}")
    status, out, _ = dry_run(capsys, data, tmp_path / "w", *argv)
    assert (status == 2) == lacking and ("lacks: batch" in out) == lacking, out


def test_a_data_path_that_is_no_folder_is_named_without_a_download_hint(tmp_path, capsys):
  data = enough_photos(tmp_path / "data")
  for given, what in ((tmp_path / "dta", "does not exist"), (data / "train.csv", "is a file")):
    status, out, _ = dry_run(capsys, given, tmp_path / "w")
    lacks = [line for line in out.splitlines() if line.startswith("lacks:")]
    assert status == 2 and lacks == [
      f"lacks: --data {given} {what}: give the GLDv2-layout folder holding train.csv"
    ], lacks
    assert f"data: {given}: {'not a folder' if data in given.parents else 'does not exist'}" in out
  # One folder too deep: the folder above is named, not a download into the photos' folder.
  status, out, _ = dry_run(capsys, data / "images", tmp_path / "w")
  lacks = [line for line in out.splitlines() if line.startswith("lacks:")]
  train_csv = data / "images" / "train.csv"
  assert lacks == [f"lacks: {train_csv}: not there, but {data} holds one: --data {data}?"], lacks


@pytest.mark.parametrize("cpus, workers", [(1, 0), (2, 1), (6, 3), (32, 8)])
def test_embed_decodes_with_half_the_cpus_of_its_share_at_most_8(
  tmp_path, capsys, monkeypatch, cpus, workers
):
  # The affinity is SLURM's (--cpus-per-task) or a container's share, not the machine's.
  monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)), raising=False)
  steps = steps_of(dry_run(capsys, enough_photos(tmp_path / "data"), tmp_path / "w")[1])
  embeds = [argv for name, *_, argv in steps if name.endswith("embed")]
  assert len(embeds) == 2 and all(flag(a, "--num-workers") == str(workers) for a in embeds)
  given = dry_run(capsys, tmp_path / "data", tmp_path / "w", "--num-workers", "5")[1]
  assert all(flag(a, "--num-workers") == "5" for *_, a in steps_of(given) if "embed" in a)
