"""Orbax checkpoints of the train state plus the data iterator's position.

Each checkpoint holds three items: ``state`` (the whole `TrainState` pytree), ``data`` (the
grain iterator state, JSON) and ``meta`` (stage and class count, JSON — read first on
resume, so the state can be restored into the right shapes). Orbax writes each checkpoint
to a temporary directory and renames it when complete, so a killed run leaves only whole
checkpoints; the last `keep` are kept.
"""

from __future__ import annotations

import pathlib
from typing import Any

import orbax.checkpoint as ocp


class Checkpointer:
  def __init__(self, directory: str | pathlib.Path, keep: int = 3, async_save: bool = True):
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, enable_async_checkpointing=async_save, create=True)
    self._manager = ocp.CheckpointManager(
        pathlib.Path(directory).absolute(), options=options,
        item_names=("state", "data", "meta"))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any, data_state: dict, meta: dict) -> None:
    self._manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_state),
        meta=ocp.args.JsonSave(meta)))

  def restore_meta(self, step: int) -> dict:
    return self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict, dict]:
    """The state restored into `abstract_state`'s shapes and shardings, the data state, meta."""
    restored = self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore(),
        meta=ocp.args.JsonRestore()))
    return restored["state"], restored["data"], restored["meta"]

  def wait_until_finished(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
