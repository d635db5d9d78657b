"""LandmarkNet: backbone → global average pool → embedding (FC + BN) → classifier (n + 1).

The paper's heads (Boiarov & Tyantov 2019, §3): the backbone's fc is removed; a fully
connected 2048×512 layer followed by batch normalization gives the embedding, and a fully
connected 512×(n+1) layer classifies it, the last class being "non-landmark".
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from landmark_jax.models.resnet import BN_EPSILON, BN_MOMENTUM, ResNet, get_backbone

# ImageNet statistics in the [0, 255] pixel scale, as every torchvision/timm backbone expects.
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


def normalize_images(images) -> jnp.ndarray:
  """uint8 or float RGB pixels in [0, 255], NHWC → ImageNet-normalised float32."""
  images = jnp.asarray(images).astype(jnp.float32)
  return (images - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)


def model_variables(params, batch_stats) -> dict:
  """What `apply` takes: the two variable collections of a ResNet or `LandmarkNet`."""
  return {"params": params, "batch_stats": batch_stats}


def l2_normalize(x, axis: int = -1, eps: float = 1e-12):
  """x / ‖x‖ (computed in float32), so that dot product = cosine similarity."""
  x = x.astype(jnp.float32)
  return x * jnp.reciprocal(jnp.maximum(jnp.linalg.norm(x, axis=axis, keepdims=True), eps))


class LandmarkNet(nn.Module):
  """Landmark classifier whose embedding layer is the retrieval descriptor.

  Attributes:
    backbone: a registered backbone name (see `resnet.BACKBONES`) or a `ResNet` module.
    num_classes: number of landmark classes n; the classifier has n + 1 outputs and the
      last one (index n) is "non-landmark".
    embedding_dim: width of the embedding layer (the paper: 512).
    dtype: compute dtype of the backbone (``jnp.bfloat16`` on accelerators). Parameters
      stay float32, and the heads always compute in float32: they are cheap, and the center
      loss compares embeddings to running class centers, where bf16 rounding would dominate.

  Calling the module takes images as uint8 or float pixels in [0, 255] (NHWC, RGB) and
  returns ``(embedding, logits)``: the embedding is the BN output (not normalised), the
  input the classifier sees. `embed` returns the L2-normalised embedding for retrieval.
  """

  backbone: str | ResNet
  num_classes: int
  embedding_dim: int = 512
  dtype: Any = jnp.float32
  classifier_bias: bool = True

  def __post_init__(self):
    # A name becomes the module here, before Flax binds attributes, so that the backbone's
    # variables sit under "backbone" whichever way the model was specified.
    if isinstance(self.backbone, str):
      object.__setattr__(self, "backbone", get_backbone(self.backbone, dtype=self.dtype))
    super().__post_init__()

  def setup(self):
    self.embedding_fc = nn.Dense(self.embedding_dim, name="embedding_fc")
    self.embedding_bn = nn.BatchNorm(momentum=BN_MOMENTUM, epsilon=BN_EPSILON)
    self.classifier = nn.Dense(self.num_classes + 1, use_bias=self.classifier_bias)

  def __call__(self, images, train: bool = False):
    pooled = self.backbone(normalize_images(images), train=train)
    embedding = self.embedding_bn(self.embedding_fc(pooled), use_running_average=not train)
    return embedding, self.classifier(embedding)

  def embed(self, images):
    """L2-normalised inference embedding (BN in inference mode), shape (N, embedding_dim)."""
    embedding, _ = self(images, train=False)
    return l2_normalize(embedding)

  @property
  def non_landmark_label(self) -> int:
    return self.num_classes
