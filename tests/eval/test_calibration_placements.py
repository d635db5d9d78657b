"""One `landmark-jax calibrate` places the model's weights on the devices once, and not at all
when the photos it calibrates on are already embedded (the index keeps them): choosing η is
the decision's work, on embeddings, and needs no model.

The weights reach the devices through `sharding.replicate` (an `Embedder` replicates them
over its mesh when it is made); the test counts its calls while the real function runs, and
XLA compilations of the forward pass with `jax.monitoring`, in the CLI run in this process.
"""

import shutil

import jax.monitoring
import pytest

from landmark_jax import sharding
from landmark_jax.cli.main import main
from landmark_jax.index import CentroidIndex

COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


@pytest.fixture
def placements(monkeypatch):
  """The trees `sharding.replicate` placed on the devices, in order."""
  placed = []
  real = sharding.replicate

  def counting(tree, mesh):
    placed.append(tree)
    return real(tree, mesh)

  monkeypatch.setattr(sharding, "replicate", counting)
  return placed


@pytest.fixture
def forward_compilations():
  compiled = []

  def listener(event, duration_secs, **kwargs):
    if event == COMPILE_EVENT and kwargs.get("fun_name") == "jit(_forward)":
      compiled.append(duration_secs)

  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    yield compiled
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)


def test_calibrate_places_the_weights_once_and_not_for_stored_photos(
  tiny_trained, index_dir, tmp_path, placements, forward_compilations, capsys
):
  index = tmp_path / "index"
  shutil.copytree(index_dir / "index", index)
  assert "eta" not in CentroidIndex.load(index).metadata  # nothing stored yet
  # The first calibration embeds the checkpoint's validation split: one placement, and the
  # forward compiled for the batch sizes it meets (at most one program per bucket).
  argv = ["calibrate", "--checkpoint", str(tiny_trained[0]), "--index", str(index)]
  assert main(argv) == 0
  assert len(placements) == 1, f"the weights were placed {len(placements)} times"
  assert 1 <= len(forward_compilations) <= 4
  stored = CentroidIndex.load(index)
  assert stored.validation is not None and len(stored.validation) > 0
  # Again, with the photos the index now keeps: η is chosen on their embeddings alone.
  placements.clear()
  forward_compilations.clear()
  assert main(argv) == 0
  assert placements == [] and forward_compilations == []
  assert "calibrated on the validation photos stored with the index" in capsys.readouterr().out
  # The same η: the same embeddings, scored by the same decision.
  assert CentroidIndex.load(index).metadata["eta"] == stored.metadata["eta"]
