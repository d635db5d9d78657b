"""The paper's recipe is on by default: training refuses to start without the non-landmark
photos, with one region under the curriculum, or without pretrained weights for a fine-tuning
config — before any step, naming the setting that supplies the part and the one that
declines it — and runs once the config says which."""

import csv

import pytest

from landmark_jax.cli.main import main
from landmark_jax.config import apply_overrides, load_config
from landmark_jax.data import source_for
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.errors import ConfigError, DataError, MissingFileError
from landmark_jax.train import recipe
from landmark_jax.train.checkpoints import CHECKPOINTS_DIR, CONFIG_FILE, LABEL_MAP_FILE
from landmark_jax.train.loop import train
from tests.helpers import gradient_image


def _never_called(step, state, metrics):
  raise AssertionError(f"a training step ran (step {step}) although the config was refused")


def _refused(config, workdir, match):
  """`train` raises naming `match`, and no step ran and nothing a rerun would reuse was
  written: no checkpoint, config or label map."""
  with pytest.raises(ConfigError, match=match):
    train(config, workdir, hooks=[_never_called], progress=False)
  assert not (workdir / CHECKPOINTS_DIR).exists()
  assert not (workdir / CONFIG_FILE).exists()
  assert not (workdir / LABEL_MAP_FILE).exists()


def _tiny(*overrides):
  return apply_overrides(load_config("tiny_cpu"), list(overrides))


def _landmark_ids(root):
  with open(root / "train.csv", newline="") as f:
    return sorted({row["landmark_id"] for row in csv.DictReader(f)})


def test_no_non_landmark_photos_is_refused_naming_both_settings(tmp_path):
  # The embedded dataset read as GLDv2 without its non_landmark.csv: landmark photos only.
  config = _tiny("data.kind='gldv2'", f"data.root='{demo_dataset()}'")
  _refused(config, tmp_path / "run", r"data\.non_landmark_csv.*loss\.non_landmark_class=False")


def test_declining_the_non_landmark_class_is_accepted():
  config = _tiny(
    "data.kind='gldv2'", f"data.root='{demo_dataset()}'", "loss.non_landmark_class=False"
  )
  recipe.check_recipe(config, source_for(config.data, "train"))  # no error


def test_a_folder_dataset_names_its_own_setting(tmp_path):
  for landmark in ("tower", "bridge"):
    (tmp_path / landmark).mkdir()
    for i in range(2):
      gradient_image(40, 30).save(tmp_path / landmark / f"{i}.jpg")
  config = _tiny("data.kind='folder'", f"data.root='{tmp_path}'")
  with pytest.raises(ConfigError, match=r"data\.non_landmark_dir"):
    recipe.check_non_landmark_class(config, source_for(config.data, "train"))


def test_curriculum_without_regions_is_refused(tmp_path):
  root = demo_dataset()
  config = _tiny(
    "curriculum.enabled=True",
    "data.kind='gldv2'",
    f"data.root='{root}'",
    "data.non_landmark_csv='non_landmark.csv'",
  )
  _refused(
    config,
    tmp_path / "run",
    r"data\.regions_csv is not set.*landmark-jax regions.*curriculum\.enabled=False",
  )


def test_curriculum_with_one_region_is_refused_and_a_corrected_rerun_uses_its_regions(tmp_path):
  root = demo_dataset()
  landmarks = _landmark_ids(root)
  one_region = tmp_path / "one_region.csv"
  one_region.write_text(
    "landmark_id,region\n" + "".join(f"{lid},europe_russia\n" for lid in landmarks)
  )
  base = [
    "curriculum.enabled=True",
    "data.kind='gldv2'",
    f"data.root='{root}'",
    "data.non_landmark_csv='non_landmark.csv'",
  ]
  workdir = tmp_path / "run"
  _refused(
    _tiny(*base, f"data.regions_csv='{one_region}'"),
    workdir,
    r"every landmark of the training data is in one region",
  )
  # The same workdir with two regions: accepted, with a label map grouped by region (a label
  # map left by the refused run would have had one stage).
  two_regions = tmp_path / "two_regions.csv"
  two_regions.write_text(
    "landmark_id,region\n"
    + "".join(
      f"{lid},{'europe_russia' if i % 2 else 'far_east'}\n" for i, lid in enumerate(landmarks)
    )
  )
  config = _tiny(*base, f"data.regions_csv='{two_regions}'")
  source = source_for(config.data, "train")
  recipe.check_recipe(config, source)  # no error
  assert source.label_map.num_stages == 2
  assert not (workdir / LABEL_MAP_FILE).exists()


def test_a_fine_tuning_config_without_weights_is_refused(tmp_path):
  _refused(
    _tiny("model.fine_tune=True"),
    tmp_path / "run",
    r"model\.pretrained is not set.*model\.pretrained=none",
  )


def test_pretrained_none_says_from_scratch():
  config = _tiny("model.fine_tune=True", "model.pretrained='none'")
  recipe.check_pretrained(config)  # no error
  assert config.model.pretrained_weights is None
  assert _tiny("model.pretrained='/w/wrn.pth'").model.pretrained_weights == "/w/wrn.pth"


def test_the_paper_config_on_the_command_line_says_what_is_missing_in_one_line(tmp_path, capsys):
  # `default` as its docstring's laptop check, minus model.pretrained=none: refused before
  # the data is read or a step runs.
  status = main(
    [
      "train",
      "--config",
      "default",
      "--workdir",
      str(tmp_path / "wrn"),
      "data.kind=demo",
      "model.dtype=float32",
      "pipeline.batch_size=8",
      "max_steps=1",
    ]
  )
  err = capsys.readouterr().err
  assert status == 2
  assert len(err.strip().splitlines()) == 1
  assert "model.pretrained=none" in err and "model.fine_tune=True" in err
  assert not (tmp_path / "wrn" / CHECKPOINTS_DIR).exists()


@pytest.mark.parametrize("name", ["default", "wrn50_2_gldv2"])
def test_the_paper_configs_have_every_part_on(name):
  config = load_config(name)
  assert config.model.fine_tune and config.loss.non_landmark_class
  assert config.curriculum.enabled and config.loss.kind == "softmax_center"


def test_missing_weights_are_named_before_anything_is_written(tmp_path):
  _refused_with(
    MissingFileError,
    _tiny("model.pretrained='/no/such/wrn.pth'"),
    tmp_path / "run",
    r"model\.pretrained: backbone checkpoint not found: /no/such/wrn\.pth",
  )


def test_a_batch_larger_than_the_data_is_refused_before_anything_is_written(tmp_path):
  _refused_with(
    DataError, _tiny("pipeline.batch_size=4096"), tmp_path / "run", r"fewer than one batch of 4096"
  )


def _refused_with(error, config, workdir, match):
  with pytest.raises(error, match=match):
    train(config, workdir, hooks=[_never_called], progress=False)
  assert not (workdir / CONFIG_FILE).exists() and not (workdir / LABEL_MAP_FILE).exists()


def test_train_says_it_is_the_first_round_unless_it_trains_on_cleaned_photos(
  tmp_path, capsys, monkeypatch, demo_cache
):
  argv = ["train", "--config", "tiny_cpu", "--workdir", str(tmp_path / "w"), "max_steps=1"]
  assert main(argv) == 0
  assert "first round" in capsys.readouterr().out
  # The second round (a clean CSV): nothing to add.
  clean = tmp_path / "train_clean.csv"
  from landmark_jax.config import load_config
  from landmark_jax.data import source_for

  source = source_for(load_config("tiny_cpu").data, "train")
  by_landmark: dict = {}
  for image_id, landmark in zip(source.ids, source.landmark_ids()):
    if landmark is not None:
      by_landmark.setdefault(landmark, []).append(str(image_id))
  clean.write_text(
    "landmark_id,images\n" + "".join(f"{k},{' '.join(v)}\n" for k, v in by_landmark.items())
  )
  argv = ["train", "--config", "tiny_cpu", "--workdir", str(tmp_path / "w2"), "max_steps=1"]
  assert main([*argv, f"data.clean_csv={clean}"]) == 0
  assert "first round" not in capsys.readouterr().out
  # A step of `landmark-jax recipe`, which runs the next commands itself: nothing to add.
  monkeypatch.setenv("LANDMARK_JAX_RECIPE_STEP", "round1/train")
  argv = ["train", "--config", "tiny_cpu", "--workdir", str(tmp_path / "w3"), "max_steps=1"]
  assert main(argv) == 0
  assert "first round" not in capsys.readouterr().out
