"""Model zoo: residual backbones, LandmarkNet heads, pretrained-weight import."""

from landmark_jax.models.landmark_net import (
  LandmarkNet,
  l2_normalize,
  model_variables,
  normalize_images,
)
from landmark_jax.models.resnet import BACKBONES, ResNet, get_backbone

__all__ = [
  "BACKBONES",
  "LandmarkNet",
  "ResNet",
  "get_backbone",
  "l2_normalize",
  "model_variables",
  "normalize_images",
]
