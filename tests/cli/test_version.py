"""``landmark-jax --version`` and ``python -m landmark_jax``."""

import subprocess
import sys
from importlib import metadata

import pytest

from landmark_jax.cli import main


def test_version_prints_the_installed_version(capsys):
  with pytest.raises(SystemExit) as exited:
    main(["--version"])
  assert exited.value.code == 0
  assert capsys.readouterr().out == f"landmark-jax {metadata.version('landmark-jax')}\n"


def test_python_dash_m_runs_the_command_line():
  done = subprocess.run(
    [sys.executable, "-m", "landmark_jax", "--version"], capture_output=True, text=True
  )
  assert (done.returncode, done.stdout) == (0, f"landmark-jax {metadata.version('landmark-jax')}\n")
  # A mistake is the command line's: one line, status 2.
  done = subprocess.run(
    [sys.executable, "-m", "landmark_jax", "remove-landmarks", "--index", "/nowhere", "x"],
    capture_output=True,
    text=True,
  )
  assert done.returncode == 2 and done.stderr.startswith("landmark-jax remove-landmarks: error:")
