"""A model's ``{"params", "batch_stats"}`` as one safetensors file, keys flattened with "/"
(``params/backbone/conv1/kernel``): a format any framework reads, that holds arrays and
nothing executable (a pickle would), and that maps the file instead of unpacking it."""

from __future__ import annotations

import pathlib

import jax
import numpy as np
import safetensors.numpy
from flax import traverse_util

from landmark_jax.bundle.manifest import BundleError

SEPARATOR = "/"


def save_variables(variables: dict, path: pathlib.Path) -> None:
  flat = traverse_util.flatten_dict(jax.device_get(variables), sep=SEPARATOR)
  # Bytes written here, not `save_file`: that one creates the file private (0600), and a
  # service running as another user could not read the bundle.
  path.write_bytes(
    safetensors.numpy.save({key: np.ascontiguousarray(value) for key, value in flat.items()})
  )


def load_variables(path: pathlib.Path, expected: dict) -> dict:
  """The variables saved at `path`, checked against `expected`'s shapes and dtypes (an
  `abstract_variables` tree): a missing, extra or misshapen array is refused by name."""
  try:
    flat = safetensors.numpy.load_file(str(path))
  except Exception as e:  # safetensors reports a damaged header its own way
    raise BundleError(f"damaged bundle file {path}: {type(e).__name__}: {e}") from None
  wanted = traverse_util.flatten_dict(expected, sep=SEPARATOR)
  for key in sorted(wanted.keys() | flat.keys()):
    if key not in flat or key not in wanted:
      where = "missing from" if key not in flat else "not a variable of the model, in"
      raise BundleError(f"{path}: {key} {where} the weights (config.json's model)")
    if flat[key].shape != wanted[key].shape or flat[key].dtype != wanted[key].dtype:
      raise BundleError(
        f"{path}: {key} is {flat[key].dtype}{list(flat[key].shape)}, the model's "
        f"{wanted[key].dtype}{list(wanted[key].shape)}"
      )
  return traverse_util.unflatten_dict(flat, sep=SEPARATOR)
