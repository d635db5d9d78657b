"""The names users and checks call (DESIGN.md, "Interfaces") exist where promised."""

import json
import subprocess
import sys
import textwrap

import pytest

import landmark_jax as lj
from landmark_jax.errors import MissingFileError
from landmark_jax.train import checkpoints


def test_python_interface_names():
  assert {
    "resnet50",
    "resnet101",
    "resnet152",
    "resnet200",
    "wide_resnet50_2",
    "seresnext101_32x4d",
  } <= set(lj.models.BACKBONES)
  for name in ("LandmarkNet", "get_backbone"):
    assert callable(getattr(lj.models, name))
  for name in ("center_loss", "update_centers"):
    assert callable(getattr(lj.losses, name))
  for name in ("build", "search", "save", "load"):
    assert callable(getattr(lj.index.CentroidIndex, name))
  assert callable(lj.Recognizer.recognize)
  assert callable(lj.Decision.predict)  # the device-free half of the recognizer
  for name in ("Photo", "decode_photo", "calibrate"):  # the front door of inference
    assert callable(getattr(lj, name))
  for name in ("sensitivity_specificity", "gap", "revisited_map"):
    assert callable(getattr(lj.metrics, name))


def test_a_trained_model_loads_from_the_top_level(tmp_path):
  assert lj.load_trained is checkpoints.load_trained
  assert lj.TrainedModel is checkpoints.TrainedModel
  assert {"load_trained", "TrainedModel"} <= set(dir(lj))
  with pytest.raises(MissingFileError, match="training workdir not found"):
    lj.load_trained(tmp_path / "absent")


def test_load_trained_from_the_top_level_loads_no_training_loop():
  # The name is resolved on first use: reaching it must stay as light as the recognizer.
  script = textwrap.dedent("""
      import json, sys
      import landmark_jax as lj
      lj.load_trained
      print(json.dumps(sorted(sys.modules)))
      """)
  result = subprocess.run(
    [sys.executable, "-c", script], capture_output=True, text=True, check=False
  )
  assert result.returncode == 0, result.stderr
  loaded = set(json.loads(result.stdout.strip().splitlines()[-1]))
  assert "landmark_jax.train.checkpoints" in loaded  # positive control
  assert not {"landmark_jax.train.loop", "landmark_jax.train.optim", "optax"} & loaded


def test_every_cli_command_has_help(capsys):
  # One real process for the entry point (`python -m landmark_jax.cli`); the commands' help
  # in this one (the same parser), since a process per command costs ~3 s of imports each.
  result = subprocess.run(
    [sys.executable, "-m", "landmark_jax.cli", "train", "--help"],
    capture_output=True,
    text=True,
    check=False,
  )
  assert result.returncode == 0, result.stderr
  assert "usage: landmark-jax train" in result.stdout
  from landmark_jax.cli.main import main

  commands = [
    "train",
    "embed",
    "clean",
    "build-index",
    "calibrate",
    "recognize",
    "evaluate",
    "evaluate-revisited",
    "benchmark",
    "demo",
    "serve",
    "add-landmarks",
    "remove-landmarks",
    "benchmark compare",
    "prepare gldv2",
    "regions",
    "benchmark gldv2-dry-run",
    "recipe",
  ]
  for command in commands:
    with pytest.raises(SystemExit) as exit_:
      main([*command.split(), "--help"])
    assert exit_.value.code == 0, command
    assert f"usage: landmark-jax {command}" in capsys.readouterr().out
