"""A trained model for inference, restored from a training workdir."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax

from landmark_jax import sharding
from landmark_jax.config import TrainConfig, from_dict
from landmark_jax.data import LabelMap
from landmark_jax.models import LandmarkNet
from landmark_jax.train import optim
from landmark_jax.train.checkpoints import Checkpointer
from landmark_jax.train.loop import CONFIG_FILE, LABEL_MAP_FILE, abstract_train_state, make_model


@dataclasses.dataclass
class TrainedModel:
  model: LandmarkNet
  variables: dict  # {"params", "batch_stats"} on the host
  label_map: LabelMap
  config: TrainConfig
  step: int
  workdir: pathlib.Path

  @property
  def checkpoint_id(self) -> str:
    """Recorded in index manifests: which model's embedding space an index lives in."""
    return f"{self.workdir.resolve()}@{self.step}"


def load_trained(workdir: str | pathlib.Path, step: int | None = None) -> TrainedModel:
  """The model, weights and label map of a training run (its latest checkpoint by default).

  Raises FileNotFoundError naming what is missing when `workdir` holds no finished
  checkpoint, config or label map.
  """
  workdir = pathlib.Path(workdir)
  for name in (CONFIG_FILE, LABEL_MAP_FILE):
    if not (workdir / name).is_file():
      raise FileNotFoundError(f"{workdir / name} not found: is {workdir} a training workdir?")
  config = from_dict(TrainConfig, json.loads((workdir / CONFIG_FILE).read_text()))
  label_map = LabelMap.load(workdir / LABEL_MAP_FILE)
  checkpointer = Checkpointer(workdir / "checkpoints")
  step = checkpointer.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {workdir / 'checkpoints'}")
  meta = checkpointer.restore_meta(step)
  model = make_model(config, meta["num_classes"])
  mesh = sharding.make_data_mesh(jax.local_devices()[:1])
  tx = optim.make_optimizer(config.optim, [])  # only its state's shapes matter here
  state, _, _ = checkpointer.restore(step, abstract_train_state(config, model, tx, mesh))
  variables = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
  checkpointer.close()
  return TrainedModel(model, variables, label_map, config, step, workdir)
