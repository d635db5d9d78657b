"""The names users and checks call (DESIGN.md, "Interfaces") exist where promised."""

import subprocess
import sys

import landmark_jax as lj


def test_python_interface_names():
  assert {"resnet50", "resnet101", "resnet152", "resnet200", "wide_resnet50_2",
          "seresnext101_32x4d"} <= set(lj.models.BACKBONES)
  for name in ("LandmarkNet", "get_backbone"):
    assert callable(getattr(lj.models, name))
  for name in ("center_loss", "update_centers"):
    assert callable(getattr(lj.losses, name))
  for name in ("build", "search", "save", "load"):
    assert callable(getattr(lj.index.CentroidIndex, name))
  assert callable(lj.Recognizer.recognize)
  for name in ("Photo", "decode_photo", "calibrate"):  # the front door of inference
    assert callable(getattr(lj, name))
  for name in ("sensitivity_specificity", "gap", "revisited_map"):
    assert callable(getattr(lj.metrics, name))


def test_every_cli_command_has_help():
  commands = ["train", "embed", "clean", "build-index", "calibrate", "recognize", "evaluate",
              "evaluate-revisited", "benchmark", "demo", "serve", "add-landmarks",
              "remove-landmarks", "benchmark compare"]
  for command in commands:
    result = subprocess.run([sys.executable, "-m", "landmark_jax.cli", *command.split(), "--help"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "usage: landmark-jax" in result.stdout
