"""Configuration: plain dataclasses with a comment per field, loaded by name from the
`landmark_jax.configs` package (shipped in the wheel) or from a Python file, each exposing
`get_config()`, then overridden with ``key=value`` strings (``optim.lr_backbone=0.01``,
``pipeline.batch_size=64``, ``curriculum.enabled=False``).

One config describes a whole run, training and the offline steps after it. Each section's
class lives in the ``config`` module of the package that reads it (`DataConfig` in
`data/config.py`, `CleaningConfig` in `cleaning/config.py`, `IndexConfig` in
`index/config.py`, `DelfConfig` in `baselines/delf/config.py`, …): those modules import
nothing of the package but its errors, so this one, which composes them, loads no algorithm.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import pathlib
import pkgutil
import types
import typing
from typing import Any, Sequence

from landmark_jax.baselines.delf.config import DelfConfig
from landmark_jax.cleaning.config import CleaningConfig
from landmark_jax.data.config import DataConfig, ImageConfig, PipelineConfig
from landmark_jax.errors import ConfigError
from landmark_jax.eval.config import CalibrationConfig
from landmark_jax.index.config import IndexConfig
from landmark_jax.models.config import ModelConfig
from landmark_jax.train.config import CurriculumConfig, LossConfig, OptimConfig


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
  # One device's peak in TFLOP/s (dense bfloat16) for the train log's MFU; 0: the table of
  # known chips in train/throughput.py (a CPU has none: no MFU).
  peak_tflops_per_device: float = 0.0
  # Join the processes of a cluster JAX detects (SLURM, Open MPI, TPU pods) even when it finds
  # one; a detected multi-process cluster is joined anyway, and the CLI can name the group
  distributed: bool = False
  # After training: cleaning, the index, η's calibration, the DELF-style comparison.
  cleaning: CleaningConfig = CleaningConfig()
  index: IndexConfig = IndexConfig()
  calibration: CalibrationConfig = CalibrationConfig()
  delf: DelfConfig = DelfConfig()

  def __post_init__(self):
    if self.peak_tflops_per_device < 0:
      raise ConfigError(
        f"peak_tflops_per_device must be ≥ 0 (0: the chip's known peak), got "
        f"{self.peak_tflops_per_device}"
      )
    # Checked here, where the sections meet, so that models/config.py stays plain data; the
    # registry is imported when a config is built, never when this module is.
    from landmark_jax.models.resnet import BACKBONES

    if self.model.backbone not in BACKBONES:
      raise ConfigError(
        f"unknown model.backbone {self.model.backbone!r}: one of {', '.join(sorted(BACKBONES))}"
      )


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


def config_names() -> list[str]:
  """The configs shipped with the library (the modules of `landmark_jax.configs`). Cheap:
  found on disk, nothing imported, so ``landmark-jax --help`` can list them."""
  folder = pathlib.Path(__file__).parent / CONFIGS_PACKAGE.rsplit(".", 1)[1]
  return sorted(m.name for m in pkgutil.iter_modules([str(folder)]) if not m.name.startswith("_"))


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
