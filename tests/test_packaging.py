"""The wheel is the library: built from this checkout, installed into a fresh virtual
environment outside it, it loads the shipped configs by name, carries the service's page and
installs a working `landmark-jax` command.

Everything the editable install in the test environment gets from the checkout (configs found
next to the code, package data, packages without an ``__init__.py``) is exactly what a wheel
can silently lose, so the checks run where only the wheel's copy of `landmark_jax` exists.
"""

import json
import os
import pathlib
import shutil
import site
import subprocess
import sys
import sysconfig
import textwrap
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# What a build reads besides the package itself (pyproject's `readme`, and the files
# setuptools would read if they existed).
BUILD_FILES = ("pyproject.toml", "README.md", "setup.py", "setup.cfg", "MANIFEST.in", "LICENSE")


def run(*command, cwd, env=None):
  result = subprocess.run(
    [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, check=False
  )
  assert result.returncode == 0, (
    f"{' '.join(map(str, command))} exited {result.returncode}:\n"
    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
  )
  return result.stdout


def build_wheel(tmp_path: pathlib.Path) -> pathlib.Path:
  # Built from a copy of the sources, not in place: setuptools reuses ./build/lib between
  # builds, so an in-place wheel would still carry modules deleted since the last build (a
  # restructure's old files), and the build would write build/ and egg-info into the checkout.
  source = tmp_path / "source"
  source.mkdir()
  for name in BUILD_FILES:
    if (REPO / name).is_file():
      shutil.copy2(REPO / name, source / name)
  shutil.copytree(
    REPO / "landmark_jax",
    source / "landmark_jax",
    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
  )
  run(
    sys.executable,
    "-m",
    "pip",
    "wheel",
    "--no-deps",
    "--no-build-isolation",
    "--no-index",
    "-q",
    "-w",
    tmp_path / "wheel",
    source,
    cwd=tmp_path,
  )
  (wheel,) = (tmp_path / "wheel").glob("landmark_jax-*.whl")
  return wheel


def make_venv(tmp_path: pathlib.Path, wheel: pathlib.Path) -> pathlib.Path:
  """A new environment holding only the wheel; the dependencies are the test environment's.

  The wheel goes in first, into an environment that has nothing else, so pip installs it
  whole. Only then does a .pth file make the dependencies importable: it names the test
  environment's site-packages directories, which also hold the editable install of this
  checkout (``__editable__.landmark_jax-*.pth`` and its import finder). That does not leak:
  a directory a .pth line names is only appended to sys.path; Python processes .pth files
  in site directories alone, so the editable finder is never installed, and the checkout is
  not itself on that path. The new site-packages also comes before the appended directories,
  so its `landmark_jax` and its metadata are found first. The test still verifies where
  `landmark_jax` was imported from, and that no editable finder is active."""
  venv = tmp_path / "venv"
  run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
  python = venv / "bin" / "python"
  run(
    sys.executable,
    "-m",
    "pip",
    "--python",
    python,
    "install",
    "--no-deps",
    "--no-index",
    "-q",
    wheel,
    cwd=tmp_path,
  )
  site_packages = pathlib.Path(
    run(
      python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path
    ).strip()
  )
  ours = dict.fromkeys(
    [*(sysconfig.get_paths()[key] for key in ("purelib", "platlib")), *site.getsitepackages()]
  )
  (site_packages / "test-dependencies.pth").write_text("\n".join(ours) + "\n")
  return venv


CHECK = textwrap.dedent("""
    import importlib.metadata, importlib.resources, json, sys
    import landmark_jax
    from landmark_jax.config import config_names, load_config
    config = load_config("tiny_cpu")
    page = importlib.resources.files("landmark_jax.serve").joinpath("page.html")
    print(json.dumps({
        "file": landmark_jax.__file__,
        "configs": config_names(),
        "backbone": config.model.backbone,
        "page": page.is_file() and "/v1/recognize" in page.read_text(),
        "metadata": str(importlib.metadata.distribution("landmark-jax")._path),
        "finders": [getattr(f, "__name__", type(f).__name__) for f in sys.meta_path],
    }))
    """)


@pytest.mark.slow
def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
  wheel = build_wheel(tmp_path)
  names = set(zipfile.ZipFile(wheel).namelist())
  assert "landmark_jax/serve/page.html" in names
  # PEP 561: type checkers read the package's annotations only when this marker ships.
  assert "landmark_jax/py.typed" in names
  # Every module of the source tree, and nothing else of ours: a package without an
  # __init__.py, or a file the build left behind, would show here.
  sources = {
    p.relative_to(REPO).as_posix()
    for p in (REPO / "landmark_jax").rglob("*.py")
    if "__pycache__" not in p.parts
  }
  assert {n for n in names if n.endswith(".py")} == sources

  venv = make_venv(tmp_path, wheel)
  outside = tmp_path / "elsewhere"  # the working directory: not the checkout, nothing in it
  outside.mkdir()
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
  found = json.loads(
    run(venv / "bin" / "python", "-c", CHECK, cwd=outside, env=env).strip().splitlines()[-1]
  )
  assert pathlib.Path(found["file"]).is_relative_to(venv), found["file"]
  assert pathlib.Path(found["metadata"]).is_relative_to(venv), found["metadata"]
  assert not any("Editable" in finder for finder in found["finders"]), found["finders"]
  assert {"default", "tiny_cpu", "wrn50_2_gldv2"} <= set(found["configs"])
  assert found["backbone"] == "wide_resnet_tiny"
  assert found["page"]

  usage = run(venv / "bin" / "landmark-jax", "--help", cwd=outside, env=env)
  assert "usage: landmark-jax" in usage
