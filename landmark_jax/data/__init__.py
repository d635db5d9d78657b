"""Data: sources (GLDv2 files or packed ArrayRecord shards, image folders, TFDS),
decoding/augmentation, grain pipelines.

Names are imported on first use (as in the top-level package), so that a config or the model
can be loaded where grain, ArrayRecord or TFDS are not installed (`benchmark device` on an
accelerator machine).
"""

import importlib

# Public name → the module that defines it.
_EXPORTS = {
  "DataConfig": "catalog",
  "source_for": "catalog",
  "REGIONS": "labels",
  "LabelMap": "labels",
  "PackedImages": "packed",
  "pack_folder": "packed",
  "DeviceIterator": "pipeline",
  "PipelineConfig": "pipeline",
  "SkippedImages": "pipeline",
  "eval_dataset": "pipeline",
  "train_dataset": "pipeline",
  "GLDv2Source": "sources",
  "ImageFolderSource": "sources",
  "ImageSource": "sources",
  "TfdsSource": "sources",
  "ImageConfig": "transforms",
  "ImageDecodeError": "transforms",
  "open_image": "transforms",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
  if name not in _EXPORTS:
    raise AttributeError(f"module 'landmark_jax.data' has no attribute {name!r}")
  value = getattr(importlib.import_module(f"landmark_jax.data.{_EXPORTS[name]}"), name)
  globals()[name] = value  # later lookups skip __getattr__
  return value
