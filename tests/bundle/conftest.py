"""The tiny model and its index exported once per session, and a copy to damage."""

import pathlib
import shutil

import pytest


@pytest.fixture(scope="session")
def bundle(tiny_trained, index_dir, tmp_path_factory) -> pathlib.Path:
  """`export_bundle` of the session's model and index (without the `jax.export` program,
  which one test exports: it needs flatbuffers, and only that test should fail without)."""
  from landmark_jax.bundle import export_bundle

  out = tmp_path_factory.mktemp("bundle") / "bundle"
  export_bundle(tiny_trained[0], index_dir / "index", out)
  return out


@pytest.fixture
def bundle_copy(bundle, tmp_path) -> pathlib.Path:
  """A copy of the bundle this test may damage or edit."""
  return pathlib.Path(shutil.copytree(bundle, tmp_path / "bundle"))
