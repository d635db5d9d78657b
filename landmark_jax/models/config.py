"""The model section of a run's config (`ModelConfig`). Plain data: the backbone's name is
checked against the registry where the whole config is assembled (`landmark_jax.config`)."""

from __future__ import annotations

import dataclasses

from landmark_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  backbone: str = "wide_resnet50_2"  # a name from landmark_jax.models.BACKBONES
  embedding_dim: int = 512  # the paper: 512
  dtype: str = "float32"  # compute dtype: "bfloat16" on accelerators; params stay float32
  # False: a classifier without bias (docs/decisions.md, "Why the demo rejected most landmarks")
  classifier_bias: bool = True
  # The backbone weights to start from: "torchvision" (its ImageNet weights of `backbone`),
  # "timm:NAME" (e.g. timm:resnet50.a1_in1k), both through the library's own cache
  # (models/pretrained_sources.py), or a torchvision/timm .pth/.safetensors file; "none":
  # from scratch, said explicitly (a `fine_tune` config refuses to train with this left empty)
  pretrained: str = ""
  # The config's rates assume a pretrained backbone (its α1 = 0.01 < α2, α3; the values are
  # ours, the paper gives none): training refuses to start without model.pretrained
  # (train/recipe.py)
  fine_tune: bool = False

  def __post_init__(self):
    if self.embedding_dim < 1:
      raise ConfigError(f"model.embedding_dim must be positive, got {self.embedding_dim}")
    if self.dtype not in ("float32", "bfloat16", "float16"):
      raise ConfigError(f"model.dtype must be float32, bfloat16 or float16, got {self.dtype!r}")

  @property
  def pretrained_weights(self) -> str | None:
    """The backbone checkpoint to start from, or None (from scratch)."""
    return None if self.pretrained in ("", "none") else self.pretrained
