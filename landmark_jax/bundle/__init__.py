"""The inference bundle (`landmark-jax export`): one folder holding what recognition needs
and nothing else — the weights as safetensors, the run's config, the label map, a copy of
the index, optionally the embedding function as a `jax.export` program — under one
checksummed manifest, ``bundle.json`` (docs/decisions.md, "The inference bundle")."""

from landmark_jax.bundle.export import ExportedBundle, embedding_program, export_bundle
from landmark_jax.bundle.load import (
  BundledModel,
  check_model_args,
  editing,
  load_bundle,
  model_and_index,
)
from landmark_jax.bundle.manifest import BundleError, editing_index, verified_manifest

__all__ = [
  "BundleError",
  "BundledModel",
  "ExportedBundle",
  "check_model_args",
  "editing",
  "editing_index",
  "embedding_program",
  "export_bundle",
  "load_bundle",
  "model_and_index",
  "verified_manifest",
]
