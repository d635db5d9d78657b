"""Configuration: plain dataclasses with a comment per field, loaded by name from the
`landmark_jax.configs` package (shipped in the wheel) or from a Python file, each exposing
`get_config()`, then overridden with ``key=value`` strings (``optim.lr_backbone=0.01``,
``pipeline.batch_size=64``, ``curriculum.enabled=False``).

One config describes a whole run, training and the offline steps after it: the sections'
classes live beside the code that reads them (`DataConfig` in `data/`, `CleaningConfig` in
`stages/`, `IndexConfig` in `index/`, `DelfConfig` in the baseline) and are composed here.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import pathlib
import types
import typing
from typing import Any, Sequence

from landmark_jax.baselines.delf.config import DelfConfig
from landmark_jax.configs import config_names
from landmark_jax.data.catalog import DataConfig
from landmark_jax.data.pipeline import PipelineConfig
from landmark_jax.data.transforms import ImageConfig
from landmark_jax.errors import ConfigError
from landmark_jax.index.centroid_index import IndexConfig
from landmark_jax.models.resnet import BACKBONES
from landmark_jax.stages.cleaning import CleaningConfig

LOSS_KINDS = ("softmax_center", "softmax", "arcface", "contrastive")
LR_SCHEDULES = ("per_stage", "global")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  backbone: str = "wide_resnet50_2"  # a name from landmark_jax.models.BACKBONES
  embedding_dim: int = 512  # the paper: 512
  dtype: str = "float32"  # compute dtype: "bfloat16" on accelerators; params stay float32
  classifier_bias: bool = True  # False: a classifier without bias (issue 16's probe)
  # torchvision/timm backbone checkpoint (.pth/.safetensors) to start from; "none": from
  # scratch, said explicitly (a `fine_tune` config refuses to train with this left empty)
  pretrained: str = ""
  # The config's rates assume a pretrained backbone (the paper's α1 = 0.01 < α2, α3):
  # training refuses to start without model.pretrained (train/recipe.py)
  fine_tune: bool = False

  def __post_init__(self):
    if self.backbone not in BACKBONES:
      raise ConfigError(
        f"unknown model.backbone {self.backbone!r}: one of {', '.join(sorted(BACKBONES))}"
      )
    if self.embedding_dim < 1:
      raise ConfigError(f"model.embedding_dim must be positive, got {self.embedding_dim}")
    if self.dtype not in ("float32", "bfloat16", "float16"):
      raise ConfigError(f"model.dtype must be float32, bfloat16 or float16, got {self.dtype!r}")

  @property
  def pretrained_weights(self) -> str | None:
    """The backbone checkpoint to start from, or None (from scratch)."""
    return None if self.pretrained in ("", "none") else self.pretrained


@dataclasses.dataclass(frozen=True)
class LossConfig:
  kind: str = "softmax_center"  # "softmax_center", "softmax", "arcface" or "contrastive"
  center_weight: float = 5e-5  # λ (the paper: 5e-5)
  center_alpha: float = 0.5  # α of the center update rule (ours: 0.5, Wen et al.'s value)
  center_reduction: str = "mean"  # "mean" over landmark samples, or "sum"
  arcface_scale: float = 30.0
  arcface_margin: float = 0.3
  contrastive_margin: float = 0.5
  contrastive_weight: float = 1.0  # contrastive: added to the softmax loss with this weight
  # False: train on the landmark photos only, so the non-landmark output is never a target
  # (the ablation's "softmax over n landmarks"; the output stays, so shapes do not change)
  non_landmark_class: bool = True

  def __post_init__(self):
    if self.kind not in LOSS_KINDS:
      raise ConfigError(f"unknown loss.kind {self.kind!r}: one of {', '.join(LOSS_KINDS)}")
    if self.center_weight < 0 or not 0 <= self.center_alpha <= 1:
      raise ConfigError("loss.center_weight must be ≥ 0 and loss.center_alpha in [0, 1]")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  lr_backbone: float = 0.01  # α1 (ours: the pretrained backbone learns slowest)
  lr_embedding: float = 0.1  # α2: the embedding layer (FC + BN)
  lr_classifier: float = 0.1  # α3: the classification layer
  momentum: float = 0.9  # the paper: 0.9
  weight_decay: float = 5e-3  # the paper: 5e-3, coupled L2 like PyTorch's SGD
  decay_norm_and_bias: bool = True  # False: no weight decay on BN parameters and biases
  lr_decay_epochs: tuple[int, ...] = (12, 24)  # the paper: ÷10 at epochs 12 and 24 of 30
  lr_decay_factor: float = 0.1

  def __post_init__(self):
    for name in (
      "lr_backbone",
      "lr_embedding",
      "lr_classifier",
      "momentum",
      "weight_decay",
      "lr_decay_factor",
    ):
      if not getattr(self, name) >= 0:
        raise ConfigError(f"optim.{name} must be ≥ 0, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class CurriculumConfig:
  enabled: bool = True  # train part by part when the data has regions
  epochs_per_stage: tuple[int, ...] = ()  # () = num_epochs split evenly over the stages
  new_class_init: str = "mean"  # new classifier rows/centers: "mean" embedding or "random"
  # "per_stage": every stage restarts at the base rates and decays 40 % and 80 % into its
  # own epochs; "global": optim.lr_decay_epochs counted over the whole run (docs/decisions.md)
  lr_schedule: str = "per_stage"

  def __post_init__(self):
    if self.lr_schedule not in LR_SCHEDULES:
      raise ConfigError(
        f"curriculum.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
      )


@dataclasses.dataclass(frozen=True)
class CalibrationConfig:
  target_specificity: float = 0.99  # η is chosen so this share of non-landmarks is rejected

  def __post_init__(self):
    if not 0 < self.target_specificity <= 1:
      raise ConfigError(
        f"calibration.target_specificity must be in (0, 1], got {self.target_specificity}"
      )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  seed: int = 0  # the one seed: init, data order, augmentation
  num_epochs: int = 30  # the paper: 30
  max_steps: int = 0  # stop after this many steps in all (0 = run every epoch)
  data: DataConfig = DataConfig()
  pipeline: PipelineConfig = PipelineConfig()
  model: ModelConfig = ModelConfig()
  loss: LossConfig = LossConfig()
  optim: OptimConfig = OptimConfig()
  curriculum: CurriculumConfig = CurriculumConfig()
  checkpoint_every_steps: int = 1000
  keep_checkpoints: int = 3  # the last N are kept
  async_checkpointing: bool = True  # write checkpoints in the background
  log_every_steps: int = 50
  # Join the processes of a cluster JAX detects (SLURM, Open MPI, TPU pods) even when it finds
  # one; a detected multi-process cluster is joined anyway, and the CLI can name the group
  distributed: bool = False
  # After training: cleaning, the index, η's calibration, the DELF-style comparison.
  cleaning: CleaningConfig = CleaningConfig()
  index: IndexConfig = IndexConfig()
  calibration: CalibrationConfig = CalibrationConfig()
  delf: DelfConfig = DelfConfig()


def _resolve_type(hint):
  origin = typing.get_origin(hint)
  if origin in (typing.Union, types.UnionType):
    return [a for a in typing.get_args(hint) if a is not type(None)][0]
  return hint


def _coerce(value: Any, hint, key: str):
  target = _resolve_type(hint)
  origin = typing.get_origin(target) or target
  if origin is tuple:
    if not isinstance(value, (list, tuple)):
      value = (value,)
    item_types = typing.get_args(target)
    item = item_types[0] if item_types else None
    return tuple(item(v) if item in (int, float, str) else v for v in value)
  if origin is bool:
    if not isinstance(value, bool):
      raise ConfigError(f"{key} expects True or False, got {value!r}")
    return value
  if origin in (int, float, str):
    if origin is int and isinstance(value, float):
      raise ConfigError(f"{key} expects an integer, got {value!r}")
    try:
      return origin(value)
    except (TypeError, ValueError):
      raise ConfigError(f"{key} expects {origin.__name__}, got {value!r}") from None
  return value


def apply_overrides(config, overrides: Sequence[str]):
  """Returns `config` with each ``dotted.key=value`` applied (values parsed as Python
  literals, falling back to plain strings); unknown keys are an error naming them."""
  for override in overrides:
    if "=" not in override:
      raise ConfigError(f"override {override!r} is not key=value")
    key, raw = override.split("=", 1)
    try:
      value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      value = raw
    config = _replace_path(config, key.strip().split("."), value, key)
  return config


def _replace_path(node, path: list[str], value, full_key: str):
  if not dataclasses.is_dataclass(node):
    raise ConfigError(f"config key {full_key!r}: {path[0]} has no sub-keys")
  fields = {f.name: f for f in dataclasses.fields(node)}
  if path[0] not in fields:
    raise ConfigError(
      f"unknown config key {full_key!r}: {type(node).__name__} has {', '.join(fields)}"
    )
  hints = typing.get_type_hints(type(node))
  if len(path) == 1:
    new_value = _coerce(value, hints[path[0]], full_key)
  else:
    new_value = _replace_path(getattr(node, path[0]), path[1:], value, full_key)
  try:
    return dataclasses.replace(node, **{path[0]: new_value})
  except ConfigError:
    raise
  except (TypeError, ValueError) as e:  # a section's own check (__post_init__) refused it
    raise ConfigError(f"config key {full_key!r}: {e}") from None


CONFIGS_PACKAGE = "landmark_jax.configs"


def _config_module(path_or_name: str):
  path = pathlib.Path(path_or_name)
  if path.suffix == ".py" or path.is_file():
    if not path.is_file():
      raise ConfigError(
        f"config file {path_or_name!r} not found; shipped configs: {', '.join(config_names())}"
      )
    spec = importlib.util.spec_from_file_location(f"landmark_jax_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
  if path_or_name not in config_names():
    raise ConfigError(
      f"unknown config {path_or_name!r}: give a config file or one of {', '.join(config_names())}"
    )
  return importlib.import_module(f"{CONFIGS_PACKAGE}.{path_or_name}")


def load_config(path_or_name: str, overrides: Sequence[str] = ()) -> TrainConfig:
  """`get_config()` of a shipped config (by name: ``"tiny_cpu"``) or of a config file (a
  path ending in ``.py``), with `overrides` applied."""
  return apply_overrides(_config_module(path_or_name).get_config(), overrides)


def to_dict(config) -> dict:
  return dataclasses.asdict(config)


def from_dict(cls, payload: dict):
  """The inverse of `to_dict` (JSON lists become the fields' tuples); unknown keys are an
  error, missing keys take their defaults."""
  hints = typing.get_type_hints(cls)
  fields = {f.name for f in dataclasses.fields(cls)}
  unknown = set(payload) - fields
  if unknown:
    raise ConfigError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
  values = {}
  for name, value in payload.items():
    hint = _resolve_type(hints[name])
    if dataclasses.is_dataclass(hint):
      values[name] = from_dict(hint, value)
    else:
      values[name] = _coerce(value, hint, name) if value is not None else None
  return cls(**values)


__all__ = [
  "CalibrationConfig",
  "CleaningConfig",
  "CurriculumConfig",
  "DataConfig",
  "DelfConfig",
  "ImageConfig",
  "IndexConfig",
  "LossConfig",
  "ModelConfig",
  "OptimConfig",
  "PipelineConfig",
  "TrainConfig",
  "apply_overrides",
  "config_names",
  "load_config",
]
