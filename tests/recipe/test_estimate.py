"""`landmark-jax recipe --estimate-only`: hours and chip-hours from a device check's JSON,
against the formula (docs/recipe.md) worked by hand on small numbers."""

import json

import pytest

from landmark_jax.cli.main import main
from landmark_jax.recipe import estimate
from landmark_jax.recipe.options import RecipeOptions
from tests.recipe.helpers import listed_folder, write_csv

# One slow "chip": 0.05 images/s training at 64 px (tiny_cpu's crop), 0.01 embedding; one
# host's pipeline 0.08 images/s. The keys are those `benchmark device --json` writes.
DEVICE_CHECK = {
  "machine": {"device": "Slow Chip", "platform": "gpu", "devices": 2, "host": "x", "jax": "0"},
  "settings": {"backbone": "wide_resnet_tiny", "image_sizes": [64], "batch_size": 128},
  "train": [
    {"image": 64, "batch": 128, "loss": "softmax_center", "images/s": 0.05},
    {"image": 64, "batch": 128, "loss": "softmax", "images/s": 0.06},
  ],
  "inference": {"image": 64, "batch": 256, "images/s": 0.01},
  "pipeline": [{"workers": 2, "images/s": 0.05}, {"workers": 4, "images/s": 0.08}],
}
OVERRIDES = ("pipeline.batch_size=8", "num_epochs=3")


@pytest.fixture
def data(tmp_path):
  """80 training photos (4 landmarks × 10, 40 non-landmark), its own 12 validation and
  6 test photos."""
  root = listed_folder(tmp_path / "data")
  write_csv(root / "val.csv", ("id", "landmark_id"), [(f"v{i}", i % 4) for i in range(12)])
  write_csv(root / "test.csv", ("id", "landmark_id"), [(f"t{i}", i % 4) for i in range(6)])
  return root


def check_file(tmp_path, payload=DEVICE_CHECK):
  path = tmp_path / "device.json"
  path.write_text(json.dumps(payload))
  return path


def test_the_estimate_follows_the_formula(tmp_path, data):
  options = RecipeOptions(data, tmp_path / "w", "tiny_cpu", OVERRIDES)
  rates = estimate.read_rates(check_file(tmp_path), crop_size=64)
  rounds, notes, held = estimate.estimate(options, rates, processes=2, chips=4, scaling=0.9)
  # By hand: 2 processes each hold 40 of the 80 photos in batches of 8 / 2 = 4: 10 steps an
  # epoch, 30 in 3 epochs (one stage: tiny_cpu has no curriculum) of 8 photos.
  # 4 chips × 0.05 × 0.9 = 0.18 images/s, but 2 hosts' pipelines give 2 × 0.08 = 0.16.
  # train = 240 / 0.16 + 120 (one stage's start) + 12 held-out / (4 × 0.01) = 1920 s;
  # embed = 80 / 0.04 = 2000 s; chip-h = 3920 × 4 / 3600.
  r1 = rounds[0]
  assert (r1.photos, r1.steps, r1.batch) == (80, 30, 8)
  assert r1.rate == pytest.approx(0.16)
  assert r1.train_seconds == pytest.approx(1920)
  assert r1.embed_seconds == pytest.approx(2000)
  assert r1.chip_hours == pytest.approx(3920 * 4 / 3600)
  # Round 2 before round 1's cleaning: 38.2 % of the 40 landmark photos (15) + 40.
  assert rounds[1].photos == round(1_580_470 / 4_132_914 * 40) + 40 == 55
  assert held == {"val": 12, "test": 6, "chips": 4}
  assert any("the input pipeline limits" in n for n in notes)
  assert any(
    "gives each chip 2: rerun `landmark-jax benchmark device --batch-size 2`" in n for n in notes
  )


def test_round_two_counts_what_round_one_cleaning_kept(tmp_path, data):
  workdir = tmp_path / "w"
  (workdir / "round1" / "clean").mkdir(parents=True)
  report = {"images_after": 24, "non_landmark_images": 40}
  (workdir / "round1" / "clean" / "report.json").write_text(json.dumps(report))
  options = RecipeOptions(data, workdir, "tiny_cpu", OVERRIDES)
  rates = estimate.read_rates(check_file(tmp_path), crop_size=64)
  rounds, notes, _ = estimate.estimate(options, rates, processes=2, chips=4, scaling=0.9)
  # 64 photos: 30 steps × 64 / 80 = 24; train = 24 × 8 / 0.16 + 120 + 300 = 1620 s.
  r2 = rounds[1]
  assert (r2.photos, r2.steps) == (64, 24)
  assert r2.train_seconds == pytest.approx(1620)
  assert r2.embed_seconds == pytest.approx(64 / 0.04)
  assert not any("GLDv2-clean's share" in n for n in notes)


def test_a_check_of_another_network_is_a_warning_first(tmp_path, data):
  # `benchmark device --smoke` times resnet_tiny: its images/s are not tiny_cpu's, nor the
  # paper's WRN-50-2's (about 20× slower on the same CPU, in the new-user try).
  payload = dict(DEVICE_CHECK, settings={**DEVICE_CHECK["settings"], "backbone": "resnet_tiny"})
  options = RecipeOptions(data, tmp_path / "w", "tiny_cpu", OVERRIDES)
  rates = estimate.read_rates(check_file(tmp_path, payload), crop_size=64)
  _, notes, _ = estimate.estimate(options, rates, processes=1, chips=1, scaling=0.9)
  assert notes[0].startswith("WARNING: the check timed resnet_tiny, this run trains ")
  assert "benchmark device --backbone wide_resnet_tiny" in notes[0]
  assert "1 chip reaches 0.9 × 1 × one chip's images/s (--scaling)" in notes


def test_another_crop_size_scales_by_the_area(tmp_path):
  payload = dict(DEVICE_CHECK, train=[{"image": 224, "loss": "softmax_center", "images/s": 490.0}])
  rates = estimate.read_rates(check_file(tmp_path, payload), crop_size=256)
  assert rates.train == pytest.approx(490.0 * (224 / 256) ** 2)
  assert "(224/256)²" in rates.notes[0]


def test_the_command_prints_the_table(tmp_path, data, capsys):
  argv = ["recipe", "--data", str(data), "--workdir", str(tmp_path / "w"), "--config"]
  argv += ["tiny_cpu", "--estimate-only", "--device-check", str(check_file(tmp_path))]
  status = main([*argv, "--plan-processes", "2", "--chips", "4", *OVERRIDES])
  out = capsys.readouterr().out
  assert status == 0
  # 1920 s = 0.53 h, 2000 s = 0.56 h, wall 1.09 h, 4.36 chip-h (the first test's figures).
  assert "| 1 | 80 | 30 × 8 | 0 | 0.53 | 0.56 | 1.09 | 4.36 |" in out
  assert "4 chips reach 0.9 × 4 × one chip's images/s" in out and "WARNING" not in out
  assert "Estimate on 4 × Slow Chip" in out and not (tmp_path / "w").exists()


def test_without_a_device_check_it_says_how_to_make_one(tmp_path, data, capsys):
  argv = ["recipe", "--data", str(data), "--workdir", str(tmp_path / "w"), "--estimate-only"]
  assert main(argv) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "give --device-check FILE: `landmark-jax benchmark device" in err[0]


def test_the_keys_read_are_those_the_device_check_writes():
  from landmark_jax.benchmarks import device_check

  settings = device_check.DeviceCheckSettings()
  row = device_check._train_row(settings, 224, "softmax_center", 0.5, None, None, None)
  assert {"image", "loss", "images/s"} <= set(row)
  assert {"device", "devices"} <= set(device_check.machine())
  assert "batch_size" in {f for f in settings.__dataclass_fields__}


def test_a_batch_round_two_could_not_fill_is_refused_as_the_dry_run_says(tmp_path, data, capsys):
  argv = ["recipe", "--data", str(data), "--workdir", str(tmp_path / "w"), "--config"]
  argv += ["tiny_cpu", "--estimate-only", "--device-check", str(check_file(tmp_path))]
  assert main([*argv, "pipeline.batch_size=64"]) == 2  # 80 training photos: at most 40
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "batch: round 1 trains on 80 photos" in err[0], err
  assert "give pipeline.batch_size=32 or less" in err[0]
