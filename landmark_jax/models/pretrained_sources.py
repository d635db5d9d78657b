"""Named pretrained starts: ``model.pretrained=torchvision`` and ``model.pretrained=timm:NAME``.

The weights come through each library's own download and cache (torch hub's
``<TORCH_HOME>/hub/checkpoints``; the Hugging Face cache of ``HF_HOME`` / ``HF_HUB_CACHE``), so
a file fetched once by torchvision or timm, by us or by any other program, is reused, and
our code downloads nothing itself. Offline with an empty cache, the error names the file and
the folder it belongs in (docs/decisions.md, "Named pretrained weights").
"""

from __future__ import annotations

import os
from typing import Any, Mapping
from urllib.parse import urlparse

import numpy as np

from landmark_jax.errors import ConfigError, MissingFileError, UsageError, UserError

TORCHVISION = "torchvision"
TIMM_PREFIX = "timm:"
# The registry's backbones that torchvision builds under the same name with ImageNet weights
# (tests/models/test_pretrained_sources.py checks this against torchvision).
TORCHVISION_BACKBONES = ("resnet50", "resnet101", "resnet152", "wide_resnet50_2")
_TORCH_EXTRA = "pip install 'landmark-jax[torch]' (in a checkout: pip install -e '.[torch]')"


class MissingExtraError(UserError, ImportError):
  """A named pretrained start needs PyTorch, torchvision or timm, and they are not installed."""


def is_named_source(spec: str) -> bool:
  """Whether ``model.pretrained`` names a library's weights rather than a file (a file
  called ``torchvision`` is given as ``./torchvision``)."""
  return spec == TORCHVISION or spec.startswith(TIMM_PREFIX)


def check_named_source(spec: str, backbone_name: str | None) -> None:
  """The config mistakes a name can hold, found without importing a library or the network."""
  if spec == TORCHVISION and backbone_name is None:
    raise UsageError(
      "model.pretrained=torchvision picks the weights by the backbone's name: pass backbone_name"
    )
  if spec == TORCHVISION and backbone_name not in TORCHVISION_BACKBONES:
    raise ConfigError(
      f"model.pretrained=torchvision: torchvision has no weights for backbone {backbone_name}, "
      f"only for {', '.join(TORCHVISION_BACKBONES)}; for another backbone give "
      "model.pretrained=timm:NAME (e.g. timm:seresnext101_32x4d.gluon_in1k), a .pth or "
      ".safetensors file, or none"
    )
  if spec == TIMM_PREFIX:
    raise ConfigError(
      "model.pretrained=timm: needs a timm model name, e.g. timm:resnet50.a1_in1k "
      "(timm.list_pretrained('resnet*') lists them)"
    )


def check_libraries(spec: str) -> None:
  """The libraries a named source loads its weights with are installed (looked up, not
  imported): said before a run, not when its first step loads the weights."""
  import importlib.util

  needed = ("torch", "torchvision") if spec == TORCHVISION else ("torch", "timm")
  if all(importlib.util.find_spec(name) is not None for name in needed):
    return
  libraries = "PyTorch and torchvision" if spec == TORCHVISION else "PyTorch and timm"
  raise MissingExtraError(f"model.pretrained={spec} needs {libraries}: {_TORCH_EXTRA}")


def named_state_dict(spec: str, backbone_name: str | None) -> dict[str, np.ndarray]:
  """The state dict of ``torchvision`` (for `backbone_name`) or ``timm:NAME``."""
  check_named_source(spec, backbone_name)
  if spec == TORCHVISION:
    return torchvision_state_dict(backbone_name)
  return timm_state_dict(spec.removeprefix(TIMM_PREFIX))


def tensors_to_numpy(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """A state dict of PyTorch tensors as NumPy arrays (floating point as float32)."""
  return {
    k: v.detach().float().numpy() if v.is_floating_point() else v.numpy() for k, v in state.items()
  }


def torchvision_state_dict(backbone_name: str) -> dict[str, np.ndarray]:
  """torchvision's ``DEFAULT`` ImageNet weights of `backbone_name`, from torch hub's cache
  (torch hub downloads them into it when they are missing)."""
  try:
    import torch.hub
    import torchvision
  except ImportError:
    raise MissingExtraError(
      f"model.pretrained=torchvision needs PyTorch and torchvision: {_TORCH_EXTRA}"
    ) from None
  weights = torchvision.models.get_model_weights(backbone_name).DEFAULT
  try:
    # check_hash as torchvision's own builders: a download must match the hash in its name.
    state = weights.get_state_dict(progress=False, check_hash=True, weights_only=True)
  except OSError as error:  # URLError, a timeout, a refused connection, an unwritable cache
    file_name = os.path.basename(urlparse(weights.url).path)
    raise _not_cached(
      TORCHVISION,
      f"{file_name} ({type(weights).__name__}.{weights.name})",
      _torch_hub_cache(torch.hub),
      f"download {weights.url} into that folder (TORCH_HOME sets it), or give "
      "model.pretrained=<the file's path>",
      error,
    ) from None
  return tensors_to_numpy(state)


def timm_state_dict(model_name: str) -> dict[str, np.ndarray]:
  """timm's pretrained weights of `model_name` (``resnet50.a1_in1k``; without a tag, timm's
  default), loaded by timm from the Hugging Face cache (downloaded into it when missing)."""
  try:
    import timm
  except ImportError:
    raise MissingExtraError(
      f"model.pretrained=timm:{model_name} needs PyTorch and timm: {_TORCH_EXTRA}"
    ) from None
  cfg = _timm_pretrained_cfg(timm, model_name)
  try:
    model = timm.create_model(model_name, pretrained=True)
  except OSError as error:  # huggingface_hub's LocalEntryNotFoundError and HTTP errors, URLError
    raise _timm_not_cached(model_name, cfg, error) from None
  return tensors_to_numpy(model.state_dict())


def _timm_pretrained_cfg(timm, model_name: str):
  spec = f"model.pretrained=timm:{model_name}"
  if not timm.is_model(model_name):
    raise ConfigError(
      f"{spec}: timm has no model {model_name!r} (timm.list_pretrained('resnet*') lists them)"
    )
  try:
    cfg = timm.models.get_pretrained_cfg(model_name)
  except RuntimeError as error:  # a tag the architecture does not have
    raise ConfigError(f"{spec}: {error}") from None
  # Without weights, timm would start from its random initialisation: refuse instead.
  if cfg is None or not (cfg.hf_hub_id or cfg.url):
    raise ConfigError(
      f"{spec}: timm has no pretrained weights for {model_name} "
      "(timm.list_pretrained('resnet*') lists the names that have)"
    )
  return cfg


def _timm_not_cached(model_name: str, cfg, error: OSError) -> MissingFileError:
  spec = f"timm:{model_name}"
  if not cfg.hf_hub_id:  # older weights at a URL: timm fetches them through torch hub
    import torch.hub

    file_name = os.path.basename(urlparse(cfg.url).path)
    fix = f"download {cfg.url} into that folder (TORCH_HOME sets it), or give "
    fix += "model.pretrained=<the file's path>"
    return _not_cached(spec, file_name, _torch_hub_cache(torch.hub), fix, error)

  from huggingface_hub import constants

  if constants.is_offline_mode():  # rather than huggingface_hub's paragraph on connections
    error = OSError("HF_HUB_OFFLINE is set")
  # timm reads model.safetensors, falling back to pytorch_model.bin, unless the cfg names one.
  file_name = cfg.hf_hub_filename or "model.safetensors"
  return _not_cached(
    spec,
    f"{file_name} of the Hugging Face repo {cfg.hf_hub_id}",
    f"the Hugging Face cache {constants.HF_HUB_CACHE}",
    f"fill it with `hf download {cfg.hf_hub_id} {file_name}` (HF_HOME or HF_HUB_CACHE set "
    f"the folder), or download https://huggingface.co/{cfg.hf_hub_id}/resolve/main/"
    f"{file_name} and give model.pretrained=<the file's path>",
    error,
  )


def _torch_hub_cache(hub) -> str:
  return f"torch hub's cache {os.path.join(hub.get_dir(), 'checkpoints')}"


def _not_cached(spec: str, file: str, cache: str, fix: str, error: OSError) -> MissingFileError:
  reason = " ".join(str(error).split()).split(". ")[0] or type(error).__name__
  if len(reason) > 120:
    reason = reason[:119] + "…"
  return MissingFileError(
    f"model.pretrained={spec}: {file} is not in {cache} and could not be downloaded "
    f"({reason}); {fix}"
  )
