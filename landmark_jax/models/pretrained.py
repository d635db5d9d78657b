"""Import torchvision / timm ResNet-family checkpoints into Flax variables.

The weights are a checkpoint file (a torchvision ``.pth`` state dict, or a timm ``.pth`` /
``.safetensors`` file) or a library's name for them (``torchvision``, ``timm:NAME``, fetched
through that library's cache: `pretrained_sources`). `ResNet` names its layers after the
PyTorch modules (``layer1_0/downsample_0`` is ``layer1.0.downsample.0``), so the mapping is
mechanical and every key is accounted for: a missing, extra or wrongly-shaped tensor raises
an error that names it.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from landmark_jax.errors import MissingFileError, UserError
from landmark_jax.models.pretrained_sources import (
  is_named_source,
  named_state_dict,
  tensors_to_numpy,
)
from landmark_jax.models.resnet import ResNet

# The classifier is removed (the paper replaces it by the embedding and landmark heads), and
# BN's step counter has no Flax counterpart.
IGNORED_KEY_PATTERNS = (re.compile(r"^fc\.(weight|bias)$"), re.compile(r"\.num_batches_tracked$"))
_WRAPPER_KEYS = ("state_dict", "model", "state_dict_ema")
_LEAF_TO_TORCH = {
  ("params", "kernel"): "weight",
  ("params", "scale"): "weight",
  ("params", "bias"): "bias",
  ("batch_stats", "mean"): "running_mean",
  ("batch_stats", "var"): "running_var",
}


class CheckpointMismatchError(UserError, ValueError):
  """The checkpoint does not fit the backbone: the message names the offending keys."""


def load_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a PyTorch state dict as NumPy arrays.

  ``.safetensors`` files are read with `safetensors` alone (no PyTorch needed); ``.pth`` /
  ``.pt`` / ``.bin`` files need PyTorch and are loaded with ``weights_only=True``, so a
  checkpoint cannot execute code. Wrappers such as ``{"state_dict": …}`` and the
  ``module.`` prefix of DataParallel checkpoints are removed.
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise MissingFileError(f"checkpoint not found: {path}")
  if path.endswith(".safetensors"):
    from safetensors.numpy import load_file

    state = load_file(path)
  else:
    try:
      import torch
    except ImportError:
      raise ImportError(
        f"reading {path} needs PyTorch: `pip install 'landmark-jax[torch]'`, or convert the "
        "checkpoint to .safetensors, which loads without it"
      ) from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    for key in _WRAPPER_KEYS:
      if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
        state = state[key]
        break
    state = tensors_to_numpy(state)
  return {k.removeprefix("module."): np.asarray(v) for k, v in state.items()}


def _torch_key(collection: str, path: tuple[str, ...]) -> str:
  modules = [re.sub(r"_(\d+)$", r".\1", name) for name in path[:-1]]
  return ".".join([*modules, _LEAF_TO_TORCH[(collection, path[-1])]])


def _to_flax_layout(array: np.ndarray) -> np.ndarray:
  if array.ndim == 4:  # conv (out, in/groups, kh, kw) → (kh, kw, in/groups, out)
    return array.transpose(2, 3, 1, 0)
  if array.ndim == 2:  # linear (out, in) → (in, out)
    return array.T
  return array


def backbone_variables_from_state_dict(
  state_dict: Mapping[str, np.ndarray], backbone: ResNet
) -> dict[str, Any]:
  """Converts a torchvision/timm state dict into ``{"params", "batch_stats"}`` for `backbone`.

  Raises:
    CheckpointMismatchError: naming the keys the backbone needs but the checkpoint lacks,
      the keys the checkpoint has that the backbone does not use, or a tensor whose shape
      differs (a checkpoint of another architecture).
  """
  template = jax.eval_shape(
    lambda: backbone.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3), jnp.float32))
  )
  flat_template = traverse_util.flatten_dict(dict(template))
  wanted = {_torch_key(path[0], path[1:]): path for path in flat_template}

  usable = {k for k in state_dict if not any(p.search(k) for p in IGNORED_KEY_PATTERNS)}
  missing = sorted(set(wanted) - usable)
  unexpected = sorted(usable - set(wanted))
  if missing or unexpected:
    parts = []
    if missing:
      parts.append(f"missing keys: {', '.join(missing[:10])}" + (" …" if len(missing) > 10 else ""))
    if unexpected:
      parts.append(
        f"unexpected keys: {', '.join(unexpected[:10])}" + (" …" if len(unexpected) > 10 else "")
      )
    raise CheckpointMismatchError(
      f"checkpoint does not match the backbone ({len(missing)} missing, "
      f"{len(unexpected)} unexpected); " + "; ".join(parts)
    )

  flat, wrong_shapes = {}, []
  for torch_key, path in sorted(wanted.items()):
    value = _to_flax_layout(np.asarray(state_dict[torch_key], dtype=np.float32))
    expected = tuple(flat_template[path].shape)
    if value.shape != expected:
      wrong_shapes.append(
        f"{torch_key} (checkpoint {tuple(np.shape(state_dict[torch_key]))} "
        f"→ Flax {value.shape}, backbone needs {expected})"
      )
    else:
      flat[path] = jnp.asarray(value)
  if wrong_shapes:
    raise CheckpointMismatchError(
      f"shape mismatch for {len(wrong_shapes)} tensors, is this checkpoint another "
      f"architecture? {'; '.join(wrong_shapes[:5])}" + (" …" if len(wrong_shapes) > 5 else "")
    )
  return traverse_util.unflatten_dict(flat)


def resolve_pretrained(
  spec: str | os.PathLike, backbone_name: str | None = None
) -> dict[str, np.ndarray]:
  """The state dict that ``model.pretrained`` names: ``torchvision`` (the ImageNet weights of
  `backbone_name`), ``timm:NAME``, or a checkpoint file."""
  if isinstance(spec, str) and is_named_source(spec):
    return named_state_dict(spec, backbone_name)
  return load_state_dict(spec)


def load_pretrained_backbone(
  spec: str | os.PathLike, backbone: ResNet, backbone_name: str | None = None
) -> dict[str, Any]:
  """`resolve_pretrained` + `backbone_variables_from_state_dict`; ``torchvision`` needs
  `backbone_name` (a registry name) to pick its weights."""
  return backbone_variables_from_state_dict(resolve_pretrained(spec, backbone_name), backbone)


def with_pretrained_backbone(
  variables: Mapping[str, Any], backbone_variables: Mapping[str, Any]
) -> dict[str, Any]:
  """Returns LandmarkNet `variables` with the backbone's params and BN statistics replaced."""
  out = {collection: dict(tree) for collection, tree in variables.items()}
  for collection, tree in backbone_variables.items():
    out[collection]["backbone"] = tree
  return out
