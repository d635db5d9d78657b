"""The PyTorch reference of the train step: torchvision's backbone under the same heads, the
same loss and the same SGD step, the way a PyTorch user trains on a GPU (AMP in bfloat16,
channels_last).

LandmarkNet's heads in PyTorch: pooled features → Linear(·, 512) → BatchNorm1d → Linear(512,
n + 1); cross-entropy in float32 plus λ × the modified center loss on the float32 embedding,
and Wen et al.'s center update, written as `losses.center_loss` / `losses.update_centers`
write them; SGD with momentum 0.9 and coupled weight decay 5e-3 in three learning-rate groups
(backbone, embedding, classifier), as `train.optim` builds it. The uint8 batch sits on the
device and is normalised inside the step, as ours is.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from landmark_jax.models.landmark_net import IMAGENET_MEAN, IMAGENET_STD
from landmark_jax.train.config import LossConfig, OptimConfig


def torch_backbone(name: str, stage_sizes, width_per_group: int):
  """torchvision's `name` without its classifier; a backbone torchvision lacks (the tiny
  ones of `--smoke`) becomes a torchvision bottleneck ResNet of the same depth and width
  ratio, at torchvision's own stem width (the parameter counts in the JSON show it)."""
  import torch
  import torchvision

  if hasattr(torchvision.models, name):
    model = getattr(torchvision.models, name)(weights=None)
  else:
    model = torchvision.models.resnet.ResNet(
      torchvision.models.resnet.Bottleneck, list(stage_sizes), width_per_group=width_per_group
    )
  model.fc = torch.nn.Identity()
  return model


def _num_features(backbone) -> int:
  import torch

  with torch.no_grad():
    return backbone.eval()(torch.zeros(1, 3, 64, 64)).shape[-1]


class TorchTrainStep:
  """An eager PyTorch train step (softmax + center loss) of `backbone` + heads on a fixed
  batch."""

  def __init__(
    self,
    backbone,
    num_classes: int,
    image_size: int,
    batch_size: int,
    embedding_dim: int = 512,
    amp: bool = True,
    channels_last: bool = True,
    seed: int = 0,
  ):
    import torch

    self.torch = torch
    self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(seed)
    num_features = _num_features(backbone)
    torch.backends.cudnn.benchmark = True  # what a PyTorch user sets for fixed shapes
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    self.backbone = backbone.to(self.device, memory_format=memory_format)
    self.embedding = torch.nn.Sequential(
      torch.nn.Linear(num_features, embedding_dim), torch.nn.BatchNorm1d(embedding_dim)
    ).to(self.device)
    self.classifier = torch.nn.Linear(embedding_dim, num_classes + 1).to(self.device)
    rates = OptimConfig()
    self.optimizer = torch.optim.SGD(
      [
        {"params": self.backbone.parameters(), "lr": rates.lr_backbone},
        {"params": self.embedding.parameters(), "lr": rates.lr_embedding},
        {"params": self.classifier.parameters(), "lr": rates.lr_classifier},
      ],
      momentum=rates.momentum,
      weight_decay=rates.weight_decay,
    )
    rng = np.random.default_rng(seed)
    self.images = torch.from_numpy(
      rng.integers(0, 256, (batch_size, 3, image_size, image_size), dtype=np.uint8)
    ).to(self.device)
    self.labels = torch.from_numpy(
      rng.integers(0, num_classes + 1, batch_size).astype(np.int64)
    ).to(self.device)
    self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
    self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
    self.memory_format, self.amp = memory_format, amp
    self.loss = LossConfig()
    self.non_landmark = num_classes
    self.centers = torch.zeros(num_classes, embedding_dim, device=self.device)
    self.backbone_parameters = sum(p.numel() for p in self.backbone.parameters())

  def _step(self) -> Any:
    torch = self.torch
    images = ((self.images.float() - self.mean) / self.std).contiguous(
      memory_format=self.memory_format
    )
    with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
      embedding = self.embedding(self.backbone(images))
      logits = self.classifier(embedding)
    embedding = embedding.float()
    is_landmark = self.labels != self.non_landmark
    rows = torch.where(is_landmark, self.labels, 0)
    squared = 0.5 * ((embedding - self.centers[rows]) ** 2).sum(-1)
    center = (squared * is_landmark).sum() / is_landmark.sum().clamp(min=1)
    loss = (
      torch.nn.functional.cross_entropy(logits.float(), self.labels)
      + self.loss.center_weight * center
    )
    self.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    self.optimizer.step()
    with torch.no_grad():
      same_class = (self.labels[:, None] == self.labels[None, :]) & is_landmark[None, :]
      counts = same_class.sum(1).float()
      step = (
        self.loss.center_alpha * (self.centers[rows] - embedding.detach()) / (1 + counts)[:, None]
      ) * is_landmark[:, None]
      self.centers.index_add_(0, rows, -step)
    return loss

  def _synchronize(self) -> None:
    if self.device.type == "cuda":
      self.torch.cuda.synchronize()

  def run(self, steps: int = 1) -> float:
    """Seconds for `steps` consecutive steps, synchronised at the end only."""
    self.backbone.train(), self.embedding.train()
    start = time.perf_counter()
    for _ in range(steps):
      self._step()
    self._synchronize()
    return time.perf_counter() - start

  def release(self) -> None:
    """Frees the device memory PyTorch holds, so that JAX can have it."""
    del self.backbone, self.embedding, self.classifier, self.optimizer, self.images
    del self.centers
    if self.device.type == "cuda":
      self.torch.cuda.empty_cache()
