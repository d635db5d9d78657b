"""A training workdir and its orbax checkpoints; restoring a trained model for inference.

Workdir layout::

    config.json        the run's config (`TrainConfig`), written at the start
    label_map.json     dense label ↔ landmark id; fixed at the first start, reused on resume
    checkpoints/<step>/{state,data,meta}
    metrics.jsonl, tensorboard/, holdout.json

Each checkpoint holds three items: ``state`` (the whole `TrainState` pytree), ``data`` (the
grain iterator state of every process, one JSON file each: each process reads its own part
of the data) and ``meta`` (stage and class count, JSON — read first on resume, so the state
can be restored into the right shapes). Orbax writes each checkpoint
to a temporary directory and renames it when complete, so a killed run leaves only whole
checkpoints; the last `keep` are kept.

Inference (`load_trained`) restores only ``params`` and ``batch_stats`` from the state: no
optimizer is built, and the optimizer's buffers are never read from disk.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from landmark_jax.config import TrainConfig, from_dict
from landmark_jax.data import LabelMap
from landmark_jax.errors import ConfigError, MissingFileError
from landmark_jax.models import LandmarkNet, model_variables

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
LABEL_MAP_FILE = "label_map.json"
CHECKPOINTS_DIR = "checkpoints"


class ProcessStateHandler(ocp.CheckpointHandler):
  """Each process's own JSON state (its data iterator's position) in
  ``process_<i>-of-<n>.json``, as grain's orbax handler stores iterators, for any JSON
  value. Orbax's JSON handler writes from process 0 only, which would lose the others'."""

  LEGACY_FILE = "metadata"  # one-process checkpoints written before multi-host training

  def save(self, directory, args: "ProcessStateSave"):
    (pathlib.Path(directory) / _process_file(jax.process_index(), jax.process_count())).write_text(
      json.dumps(args.state)
    )

  def restore(self, directory, args: "ProcessStateRestore | None" = None):
    directory = pathlib.Path(directory)
    path = directory / _process_file(jax.process_index(), jax.process_count())
    if path.is_file():
      return json.loads(path.read_text())
    if jax.process_count() == 1 and (directory / self.LEGACY_FILE).is_file():
      return json.loads((directory / self.LEGACY_FILE).read_text())
    written = sorted(
      {
        p.name.split("-of-")[-1].removesuffix(".json")
        for p in directory.glob("process_*-of-*.json")
      }
    ) or ["1"]
    raise ConfigError(
      f"{directory.parent} was written by {' or '.join(written)} process(es), and this run "
      f"has {jax.process_count()}: resume with --num-processes {written[0]} (each process "
      "continues its own part of the data)"
    )

  def metadata(self, directory):
    return None

  def finalize(self, directory):
    pass

  def close(self):
    pass


def _process_file(index: int, count: int) -> str:
  return f"process_{index}-of-{count}.json"


@ocp.args.register_with_handler(ProcessStateHandler, for_save=True)
@dataclasses.dataclass
class ProcessStateSave(ocp.args.CheckpointArgs):
  state: Any


@ocp.args.register_with_handler(ProcessStateHandler, for_restore=True)
@dataclasses.dataclass
class ProcessStateRestore(ocp.args.CheckpointArgs):
  pass


class Checkpointer:
  def __init__(self, directory: str | pathlib.Path, keep: int = 3, async_save: bool = True):
    # orbax writes into a temporary folder and renames it when done; one left over is a
    # write that was killed, which orbax passes over without a word.
    unfinished = sorted(pathlib.Path(directory).glob("*.orbax-checkpoint-tmp*"))
    if unfinished:
      logger.warning(
        "%s: %s, checkpoint writes that were interrupted, are ignored (the run resumes from "
        "the last complete one)",
        directory,
        ", ".join(p.name for p in unfinished),
      )
    options = ocp.CheckpointManagerOptions(
      max_to_keep=keep, enable_async_checkpointing=async_save, create=True
    )
    self._manager = ocp.CheckpointManager(
      pathlib.Path(directory).absolute(), options=options, item_names=("state", "data", "meta")
    )

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_state: dict, meta: dict) -> None:
    self._manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        data=ProcessStateSave(data_state),
        meta=ocp.args.JsonSave(meta),
      ),
    )

  def restore_meta(self, step: int) -> dict:
    return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict, dict]:
    """The state restored into `abstract_state`'s shapes and shardings, the data state, meta."""
    restored = self._manager.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state),
        data=ProcessStateRestore(),
        meta=ocp.args.JsonRestore(),
      ),
    )
    return restored["state"], restored["data"], restored["meta"]

  def restore_subtree(self, step: int, abstract_subtree: dict) -> dict:
    """Only the state's entries named in `abstract_subtree` (e.g. params and batch
    statistics), each restored into its shapes; nothing else of the state is read."""
    restored = self._manager.restore(
      step,
      args=ocp.args.Composite(
        state=ocp.args.PyTreeRestore(
          abstract_subtree,
          restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_subtree),
          partial_restore=True,
        )
      ),
    )
    return restored["state"]

  def wait_until_finished(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()


def make_model(config: TrainConfig, num_classes: int) -> LandmarkNet:
  """The `LandmarkNet` a config describes, with `num_classes` landmark classes."""
  return LandmarkNet(
    config.model.backbone,
    num_classes=num_classes,
    embedding_dim=config.model.embedding_dim,
    dtype=jnp.dtype(config.model.dtype),
    classifier_bias=config.model.classifier_bias,
  )


def abstract_variables(model: LandmarkNet, image_size: int, sharding=None) -> dict:
  """Shapes and dtypes of a model's params and batch statistics (an orbax restore target)."""
  shapes = jax.eval_shape(
    lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, image_size, image_size, 3), jnp.uint8))
  )
  return jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
    model_variables(shapes["params"], shapes["batch_stats"]),
  )


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


def load_run_config(workdir: str | pathlib.Path) -> TrainConfig:
  """The config a training workdir was trained with."""
  path = pathlib.Path(workdir) / CONFIG_FILE
  if not path.is_file():
    raise MissingFileError(f"{path} not found: is {workdir} a training workdir?")
  return from_dict(TrainConfig, json.loads(path.read_text()))


def load_trained(workdir: str | pathlib.Path, step: int | None = None) -> TrainedModel:
  """The model, weights and label map of a training run (its latest checkpoint by default).

  Raises MissingFileError naming what is missing when `workdir` holds no finished
  checkpoint, config or label map.
  """
  workdir = pathlib.Path(workdir)
  if not workdir.is_dir():
    raise MissingFileError(
      f"{workdir} is a file, not a training workdir"
      if workdir.exists()
      else f"training workdir not found: {workdir}"
    )
  config = load_run_config(workdir)
  if not (workdir / LABEL_MAP_FILE).is_file():
    raise MissingFileError(
      f"{workdir / LABEL_MAP_FILE} not found: is {workdir} a training workdir?"
    )
  label_map = LabelMap.load(workdir / LABEL_MAP_FILE)
  if not (workdir / CHECKPOINTS_DIR).is_dir():
    raise MissingFileError(f"no checkpoint in {workdir / CHECKPOINTS_DIR}: train first")
  checkpointer = Checkpointer(workdir / CHECKPOINTS_DIR)
  try:
    step = checkpointer.latest_step() if step is None else step
    if step is None:
      raise MissingFileError(f"no checkpoint in {workdir / CHECKPOINTS_DIR}: train first")
    meta = checkpointer.restore_meta(step)
    model = make_model(config, meta["num_classes"])
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = abstract_variables(model, config.pipeline.image.crop_size, device)
    variables = jax.device_get(checkpointer.restore_subtree(step, abstract))
  finally:
    checkpointer.close()
  return TrainedModel(model, variables, label_map, config, step, workdir)


def is_training_workdir(path: str | pathlib.Path) -> bool:
  return (pathlib.Path(path) / CONFIG_FILE).is_file()


def backbone_of_workdir(workdir: str | pathlib.Path, backbone: str) -> dict:
  """``{"params", "batch_stats"}`` of the backbone a training workdir trained (its latest
  checkpoint): a start for another run (``model.pretrained=<workdir>``), which must use the
  same `backbone`."""
  trained = load_trained(workdir)
  if trained.config.model.backbone != backbone:
    raise ConfigError(
      f"model.pretrained: {workdir} trained a {trained.config.model.backbone}, not this "
      f"config's {backbone}"
    )
  return {k: trained.variables[k]["backbone"] for k in ("params", "batch_stats")}
