"""`landmark-jax fit`: the demo is `fit` on the embedded dataset; mistakes are refused in
one line before anything is trained; `--no-train` makes a model whose embeddings are the
backbone's whitened features, and the whitening is the one computed by hand."""

import csv
import json
import pathlib
import re
import shlex
import shutil

import jax
import numpy as np
import pytest
from PIL import Image

import landmark_jax.fit
from landmark_jax.cli.main import main
from landmark_jax.errors import ConfigError
from landmark_jax.stages import whiten


class FitCalled(Exception):
  pass


def test_the_demo_is_fit_on_the_embedded_dataset(monkeypatch, tmp_path):
  calls = []

  def spy(photos, workdir, **options):
    calls.append((photos, pathlib.Path(workdir), options))
    raise FitCalled

  monkeypatch.setattr(landmark_jax.fit, "fit", spy)
  with pytest.raises(FitCalled):
    main(["demo", "--workdir", str(tmp_path / "demo"), "seed=3"])
  ((photos, workdir, options),) = calls
  assert photos is None  # the embedded dataset
  assert workdir == tmp_path / "demo"
  assert options["config"] == "tiny_cpu" and options["overrides"] == ("seed=3",)
  assert options["second_round"] is True and options["train"] is True


def write_photos(root: pathlib.Path, counts: dict, size=(40, 30)) -> pathlib.Path:
  rng = np.random.default_rng(0)
  for folder, count in counts.items():
    (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(count):
      pixels = rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)
      Image.fromarray(pixels).save(root / folder / f"{i}.jpg")
  return root


def test_photos_without_non_landmarks_are_refused_before_training(tmp_path, capsys):
  photos = write_photos(tmp_path / "photos", {"tower": 10, "bridge": 10})
  assert main(["fit", str(photos), "--workdir", str(tmp_path / "w")]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1
  assert "no photos without a landmark" in err and "--non-landmarks" in err
  assert not (tmp_path / "w" / "train").exists()


def test_too_few_held_out_photos_are_refused_naming_enough(tmp_path, capsys):
  photos = write_photos(tmp_path / "photos", {"tower": 5, "bridge": 5, "non_landmark": 30})
  assert main(["fit", str(photos), "--workdir", str(tmp_path / "w")]) == 2
  err = capsys.readouterr().err.strip()
  # By hand: 5 photos a landmark give 1 to validation and 1 to test; 2 landmarks, 2 < 5.
  assert "rest on 2 landmark photo(s)" in err and "more landmark photos" in err
  assert not (tmp_path / "w" / "train").exists()


def test_a_data_override_is_refused_naming_photos(tmp_path, capsys):
  photos = write_photos(tmp_path / "photos", {"tower": 3, "non_landmark": 3})
  assert main(["fit", str(photos), "--workdir", str(tmp_path / "w"), "data.root=/x"]) == 2
  assert "data.root: the data section comes from the photos" in capsys.readouterr().err
  # The demo too, before it generates or trains anything.
  assert main(["demo", "--workdir", str(tmp_path / "d"), "data.kind=folder"]) == 2
  assert "landmark-jax fit PHOTOS --workdir W" in capsys.readouterr().err
  assert not (tmp_path / "d").exists()


def test_missing_photos_are_one_line(tmp_path, capsys):
  assert main(["fit", str(tmp_path / "nowhere"), "--workdir", str(tmp_path / "w")]) == 2
  assert "photos not found" in capsys.readouterr().err


def test_whitening_decorrelates_to_the_shrunk_variances():
  rng = np.random.default_rng(0)
  # 200 photos, 12 features with very different variances, correlated by a rotation.
  rotation = np.linalg.qr(rng.normal(size=(12, 12)))[0]
  features = (rng.normal(size=(200, 12)) * np.geomspace(10, 0.1, 12)) @ rotation + 3.0
  kernel, bias = whiten.whitening(features, dim=6)
  projected = features @ kernel + bias
  # By hand: the covariance's eigenvalues λ (SVD of the centred data), shrinkage s = mean λ;
  # the projection keeps the 6 largest, each scaled to variance λ / (λ + s), uncorrelated.
  centred = features - features.mean(axis=0)
  eigenvalues = np.linalg.svd(centred, compute_uv=False) ** 2 / (len(features) - 1)
  expected = eigenvalues[:6] / (eigenvalues[:6] + eigenvalues.mean())
  np.testing.assert_allclose(projected.mean(axis=0), 0, atol=1e-4)
  np.testing.assert_allclose(np.cov(projected.T), np.diag(expected), atol=1e-4)


def test_whitening_beyond_the_datas_rank_is_zero_columns():
  features = np.random.default_rng(1).normal(size=(5, 16))
  kernel, _ = whiten.whitening(features, dim=8)
  # 5 photos span 4 directions around their mean.
  assert np.all(np.linalg.norm(kernel[:, :4], axis=0) > 0)
  assert np.all(kernel[:, 4:] == 0)


@pytest.mark.slow
def test_no_train_fits_and_its_model_embeds_whitened_backbone_features(tmp_path, capsys):
  from landmark_jax.models import normalize_images
  from landmark_jax.recognize.embedder import PhotoEmbedder
  from landmark_jax.train.checkpoints import load_trained

  photos = write_photos(
    tmp_path / "photos", {"tower": 8, "bridge": 8, "arch": 8, "non_landmark": 30}, size=(72, 72)
  )
  workdir = tmp_path / "w"
  argv = ["fit", str(photos), "--workdir", str(workdir), "--no-train", "--pretrained", "none"]
  assert main(argv) == 0
  out = capsys.readouterr().out
  assert "whiten the pretrained backbone's features" in out and "| all photos |" in out
  assert "train again" not in out  # one round: nothing to retrain
  assert out.rstrip().endswith(
    f"landmark-jax serve --checkpoint {workdir}/train --index {workdir}/index"
  )

  trained = load_trained(workdir / "train")
  info = json.loads((workdir / "train" / whiten.WHITENING_FILE).read_text())
  # The training split, by hand: 4 of each landmark's 8 photos (2 to validation, 2 to
  # test), 18 of the 30 non-landmark ones (6 and 6).
  assert info["photos"] == 3 * 4 + 18
  train_rows = [
    line.split(",")[1] for line in (workdir / "split" / "train.csv").read_text().splitlines()[1:]
  ]
  embedder = PhotoEmbedder(trained)
  pixels = np.stack([p.pixels for p in embedder.decode(train_rows, read_exif=False)])
  backbone = {k: trained.variables[k]["backbone"] for k in ("params", "batch_stats")}
  features = np.asarray(
    trained.model.backbone.apply(backbone, normalize_images(pixels), train=False)
  )
  kernel, bias = whiten.whitening(features, trained.config.model.embedding_dim)
  expected = features @ kernel + bias
  expected /= np.linalg.norm(expected, axis=1, keepdims=True)
  np.testing.assert_allclose(embedder.embed_arrays(pixels), expected, atol=2e-4)


def test_a_training_workdir_is_a_pretrained_start(tiny_trained):
  from landmark_jax import sharding
  from landmark_jax.config import load_config
  from landmark_jax.train import loop, optim
  from landmark_jax.train.checkpoints import load_trained, make_model
  from tests.helpers import TINY_TRAINED_OVERRIDES

  workdir, _ = tiny_trained
  config = load_config("tiny_cpu", [*TINY_TRAINED_OVERRIDES, f"model.pretrained={workdir}"])
  model = make_model(config, 3)  # another class count: only the backbone carries over
  tx = optim.make_optimizer(config.optim, ())
  state = loop._initial_state(config, model, tx, sharding.make_data_mesh())
  expected = load_trained(workdir).variables
  for collection, tree in (("params", state.params), ("batch_stats", state.batch_stats)):
    for got, want in zip(
      jax.tree.leaves(tree["backbone"]), jax.tree.leaves(expected[collection]["backbone"])
    ):
      np.testing.assert_array_equal(np.asarray(got), want)
  # A workdir of another backbone is refused, naming both.
  other = load_config("tiny_cpu", ["model.backbone=resnet_tiny", f"model.pretrained={workdir}"])
  with pytest.raises(ConfigError, match="a wide_resnet_tiny, not this config's resnet_tiny"):
    loop._initial_state(other, make_model(other, 3), tx, sharding.make_data_mesh())


def test_a_workdir_inside_the_photos_and_a_photo_file_are_refused(tmp_path, capsys):
  photos = write_photos(tmp_path / "photos", {"tower": 3, "non_landmark": 3})
  assert main(["fit", str(photos), "--workdir", str(photos / "w")]) == 2
  assert "is inside the photos" in capsys.readouterr().err
  assert main(["fit", str(photos / "tower" / "0.jpg"), "--workdir", str(tmp_path / "w")]) == 2
  assert "is a file but not a .csv" in capsys.readouterr().err


def test_the_papers_config_without_weights_or_regions_is_refused_in_one_line(tmp_path, capsys):
  counts = {"tower": 8, "bridge": 8, "arch": 8, "non_landmark": 30}
  photos = write_photos(tmp_path / "photos", counts)
  fit = ["fit", str(photos), "--config", "default"]
  # No weights: refused before the split is written.
  assert main([*fit, "--workdir", str(tmp_path / "a")]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "model.pretrained=torchvision" in err
  assert not (tmp_path / "a").exists()
  # No regions: the curriculum has one part; refused naming fit's way to give them, not
  # training's data.regions_csv (which fit refuses).
  assert main([*fit, "--workdir", str(tmp_path / "b"), "model.pretrained=none"]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1
  assert "the photos come without regions: give --landmarks-csv CSV with a region column" in err
  assert "curriculum.enabled=False" in err and "data.regions_csv" not in err
  assert not (tmp_path / "b" / "round1").exists()
  # Regions that put every landmark in one part, or miss one.
  for name, rows, expected in (
    ("one.csv", "tower,far_east\nbridge,far_east\narch,far_east\n", "all in one region"),
    ("part.csv", "tower,far_east\nbridge,europe_russia\n", "1 of 3 landmarks have no region"),
  ):
    (tmp_path / name).write_text("landmark_id,region\n" + rows)
    argv = [*fit, "--workdir", str(tmp_path / f"w-{name}"), "--landmarks-csv", str(tmp_path / name)]
    assert main([*argv, "model.pretrained=none"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err
  assert main([*fit, "--workdir", str(tmp_path / "c"), "data.regions_csv=regions.csv"]) == 2
  assert "a region column of --landmarks-csv" in capsys.readouterr().err


def papers_recipe_command() -> list[str]:
  """The command of docs/train-on-your-photos.md's "The paper's recipe" (a ```sh block:
  tests/test_fit_walkthrough.py runs the page's ```bash blocks, and this is not one)."""
  doc = pathlib.Path(__file__).resolve().parents[1] / "docs" / "train-on-your-photos.md"
  section = doc.read_text().split("## The paper's recipe\n", 1)[1]
  (block,) = re.findall(r"```sh\n(.*?)```", section.split("\n## ", 1)[0], re.S)
  argv = shlex.split(block.replace("\\\n", " "))
  assert argv[:2] == ["landmark-jax", "fit"]
  return argv[1:]


# The page's command made cheap on a CPU: a tiny backbone on 64-pixel crops, two epochs (one
# per region), from scratch (no weights can be downloaded here).
CPU_OVERRIDES = (
  "model.backbone=resnet_tiny",
  "model.embedding_dim=64",
  "model.dtype=float32",
  "pipeline.image.resize_size=72",
  "pipeline.image.crop_size=64",
  "pipeline.num_workers=0",
  "num_epochs=2",
)


@pytest.mark.slow
def test_the_papers_recipe_trains_cleans_and_trains_again_on_the_cleaned_photos(
  tmp_path, monkeypatch, capsys
):
  from landmark_jax.train.checkpoints import CONFIG_FILE

  argv = papers_recipe_command()
  assert "--config" in argv and argv[argv.index("--config") + 1] == "default"
  assert "model.pretrained=torchvision" in argv
  argv = [a.replace("model.pretrained=torchvision", "model.pretrained=none") for a in argv]
  monkeypatch.chdir(tmp_path)
  counts = {"my_photos/tower": 8, "my_photos/bridge": 8, "my_photos/arch": 8, "street_photos": 30}
  write_photos(tmp_path, counts)
  # Eight copies of one photo: round 1's cleaning drops the near-duplicates among arch's
  # training photos, whatever the model learnt (identical photos embed identically).
  for i in range(1, 8):
    shutil.copy(tmp_path / "my_photos/arch/0.jpg", tmp_path / f"my_photos/arch/{i}.jpg")
  # Two regions: the curriculum trains tower and bridge, then all three.
  (tmp_path / "my_landmarks.csv").write_text(
    "landmark_id,name,region\ntower,Tower,europe_russia\nbridge,Bridge,europe_russia\n"
    "arch,Arch,far_east\n"
  )
  assert main([*argv, *CPU_OVERRIDES]) == 0
  out = capsys.readouterr().out
  assert "train again from scratch on the photos cleaning kept" in out and "| all photos |" in out

  workdir = tmp_path / argv[argv.index("--workdir") + 1]
  round1, round2 = workdir / "round1", workdir
  clean_csv = round1 / "clean" / "train_clean.csv"
  configs = [json.loads((r / "train" / CONFIG_FILE).read_text()) for r in (round1, round2)]
  # Round 1 trained on every training photo, round 2 on what round 1's cleaning kept.
  assert configs[0]["data"]["clean_csv"] == ""
  assert configs[1]["data"]["clean_csv"] == str(clean_csv.resolve())
  for config, r in zip(configs, (round1, round2)):
    assert config["model"]["backbone"] == "resnet_tiny" and config["curriculum"]["enabled"]
    assert len(json.loads((r / "train" / "label_map.json").read_text())["stage_sizes"]) == 2

  # The cleaned CSV is round 1's landmark training photos less the ones cleaning dropped.
  with open(workdir / "split" / "train.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  training = {r["id"]: r["landmark_id"] for r in rows if r["landmark_id"]}
  with open(clean_csv, newline="") as f:
    kept = {i: r["landmark_id"] for r in csv.DictReader(f) for i in r["images"].split()}
  report = json.loads((round1 / "clean" / "report.json").read_text())
  assert kept.items() <= training.items()
  assert len(training) - len(kept) == report["images_dropped"]
  # By hand: arch's training photos (8 - 2 validation - 2 test) are 4 copies: 3 dropped.
  assert sum(lid == "arch" for lid in training.values()) == 4
  assert sum(lid == "arch" for lid in kept.values()) == 1
  assert report["near_duplicates_dropped"] >= 3

  # And round 2's photos are those: the kept ones and every non-landmark training photo.
  non_landmarks = {r["id"] for r in rows if not r["landmark_id"]}
  assert embedded_ids(round1 / "embeddings") == set(training) | non_landmarks
  assert embedded_ids(round2 / "embeddings") == set(kept) | non_landmarks


def embedded_ids(folder: pathlib.Path) -> set[str]:
  return {str(i) for shard in folder.glob("shard-*") for i in np.load(shard / "ids.npy")}


def test_the_second_round_says_where_it_starts_again():
  headlines = [
    landmark_jax.fit.step_headlines(
      "split", train=True, second_round=True, target=0.99, pretrained=pretrained
    )["train"]
    for pretrained in (False, True)
  ]
  assert headlines[0] == (
    "5/10 train again from scratch on the photos cleaning kept (+ the non-landmark ones)"
  )
  assert "train again from the pretrained weights on the photos cleaning kept" in headlines[1]


def test_a_run_that_trained_nothing_does_not_hold_the_workdir(tmp_path):
  """A `fit` stopped before its first checkpoint (weights it could not read) leaves its
  config behind; a rerun with other settings may go on, one that trained may not."""
  from landmark_jax.config import load_config, to_dict
  from landmark_jax.errors import ConfigError
  from landmark_jax.experiment import check_same_config

  earlier = load_config("tiny_cpu", ["model.embedding_dim=32"])
  (tmp_path / "train").mkdir()
  (tmp_path / "train" / "config.json").write_text(json.dumps(to_dict(earlier)))
  check_same_config(tmp_path, load_config("tiny_cpu"), "--fresh")
  (tmp_path / "train" / "checkpoints" / "3").mkdir(parents=True)
  with pytest.raises(ConfigError, match=r"other settings \(model.embedding_dim: 32 → 64"):
    check_same_config(tmp_path, load_config("tiny_cpu"), "--fresh")
