"""Loading a bundle: a `TrainedModel` from its safetensors and config (no orbax restore, no
training workdir), and its index folder; and which model and index a command names."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
from typing import Iterator

from landmark_jax.bundle import manifest as layout
from landmark_jax.bundle.weights import load_variables
from landmark_jax.config import TrainConfig, from_dict
from landmark_jax.data.labels import LabelMap
from landmark_jax.errors import UsageError
from landmark_jax.train.checkpoints import (
  TrainedModel,
  abstract_variables,
  load_trained,
  make_model,
)


@dataclasses.dataclass
class BundledModel(TrainedModel):
  """A `TrainedModel` read from a bundle (`workdir` is the bundle). Its `checkpoint_id` is
  the one its index was built from (the exported model's, recorded at export), so that the
  other-model check (`index.provenance`) knows the pair for what it is."""

  built_from: str = ""
  model_id: str = ""  # the bundle's own id: its weights' and config's checksums

  @property
  def checkpoint_id(self) -> str:
    return self.built_from


def load_bundle(folder: str | os.PathLike) -> tuple[BundledModel, pathlib.Path]:
  """The model of the bundle at `folder` and its index folder, after every file was checked
  against the manifest (`manifest.verified_manifest`; `BundleError` naming the file)."""
  folder = pathlib.Path(folder).absolute()
  manifest = layout.verified_manifest(folder)
  config = from_dict(TrainConfig, json.loads((folder / layout.CONFIG).read_text()))
  label_map = LabelMap.load(folder / layout.LABEL_MAP)
  model = make_model(config, manifest["num_classes"])
  variables = load_variables(
    folder / layout.WEIGHTS, abstract_variables(model, config.pipeline.image.crop_size)
  )
  trained = BundledModel(
    model,
    variables,
    label_map,
    config,
    manifest["step"],
    folder,
    built_from=manifest["checkpoint"],
    model_id=manifest["model_id"],
  )
  return trained, folder / layout.INDEX_DIR


def check_model_args(checkpoint, index, bundle, *, model: bool = True) -> None:
  """A command names a bundle, or a checkpoint (if it needs the `model`) and an index: one
  of the two, whole. Raises `UsageError` saying which."""
  pair = "--checkpoint and --index" if model else "--index"
  if bundle is not None and (checkpoint is not None or index is not None):
    raise UsageError(f"--bundle holds the model and its index: give it without {pair}")
  if bundle is None and (index is None or (model and checkpoint is None)):
    raise UsageError(f"give --bundle, or {pair}")


def model_and_index(
  checkpoint, index, bundle, *, model: bool = True
) -> tuple[TrainedModel | None, pathlib.Path]:
  """The model (if `model`) and the index folder that a command names (`check_model_args`)."""
  check_model_args(checkpoint, index, bundle, model=model)
  if bundle is not None:
    if not model:
      return None, pathlib.Path(bundle).absolute() / layout.INDEX_DIR
    return load_bundle(bundle)
  return (load_trained(checkpoint) if model else None), pathlib.Path(index)


@contextlib.contextmanager
def editing(bundle) -> Iterator[None]:
  """Around an edit of a command's index: a bundle's manifest is refreshed after it
  (`manifest.editing_index`); a plain index folder needs nothing."""
  if bundle is None:
    yield
    return
  with layout.editing_index(bundle):
    yield
