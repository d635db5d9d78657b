"""A local-feature extractor as plain arrays and JSON settings, and back.

What the DELF-style extractor learns besides the backbone — the attention head and the PCA —
is a few hundred KB. The centroid index keeps it beside its reference photos' local
features (`index.local_features`), so that a query is described exactly as those photos
were, by whoever loads the index: recognition, calibration, the service, a bundle. The
backbone is the recognizer's own, so it is not stored twice.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from flax import traverse_util

from landmark_jax.baselines.delf.config import DelfConfig
from landmark_jax.baselines.delf.features import LocalFeatureExtractor
from landmark_jax.baselines.delf.pca import Pca

ATTENTION_PREFIX = "attention/"


def extractor_arrays(extractor: LocalFeatureExtractor) -> tuple[dict[str, np.ndarray], dict]:
  """(flat name → float32 array, JSON settings) of an extractor with its PCA: the attention
  head's parameters (trained attention only) and the PCA, and the `DelfConfig` it runs."""
  if extractor.pca is None:
    raise ValueError("store an extractor with its PCA: reference photos are described after it")
  arrays = {
    "pca/mean": np.asarray(extractor.pca.mean, np.float32),
    "pca/components": np.asarray(extractor.pca.components, np.float32),
  }
  if extractor.attention_params is not None:
    flat = traverse_util.flatten_dict(extractor.attention_params, sep="/")
    arrays.update(
      {ATTENTION_PREFIX + name: np.asarray(value, np.float32) for name, value in flat.items()}
    )
  return arrays, settings_of(extractor.config)


def settings_of(config: DelfConfig) -> dict[str, Any]:
  """`config` as JSON values (tuples as lists); `config_from_settings` inverts it."""
  return {
    name: list(value) if isinstance(value, tuple) else value
    for name, value in dataclasses.asdict(config).items()
  }


def config_from_settings(settings: dict[str, Any]) -> DelfConfig:
  """The `DelfConfig` that `settings_of` wrote; a field this version does not know is an
  error (it would change how photos are described), a field it lacks takes its default."""
  known = {field.name: field for field in dataclasses.fields(DelfConfig)}
  unknown = sorted(set(settings) - set(known))
  if unknown:
    raise ValueError(f"unknown local-feature settings: {', '.join(unknown)}")
  values = {
    name: tuple(value) if isinstance(value, list) else value for name, value in settings.items()
  }
  return DelfConfig(**values)


def extractor_from_arrays(
  trained, arrays: dict[str, np.ndarray], settings: dict[str, Any], *, batch_size: int = 1
) -> LocalFeatureExtractor:
  """The extractor `extractor_arrays` described, on `trained`'s backbone."""
  config = config_from_settings(settings)
  missing = {"pca/mean", "pca/components"} - set(arrays)
  if missing:
    raise ValueError(f"the stored extractor lacks {', '.join(sorted(missing))}")
  attention = {
    name[len(ATTENTION_PREFIX) :]: np.asarray(value, np.float32)
    for name, value in arrays.items()
    if name.startswith(ATTENTION_PREFIX)
  }
  attention_params = traverse_util.unflatten_dict(attention, sep="/") if attention else None
  pca = Pca(np.asarray(arrays["pca/mean"]), np.asarray(arrays["pca/components"]))
  return LocalFeatureExtractor.from_trained(
    trained, config, attention_params=attention_params, pca=pca, batch_size=batch_size
  )
