"""The training sections of a run's config: the loss, the optimiser and the curriculum.
Plain data: this module imports nothing of the package but its errors."""

from __future__ import annotations

import dataclasses

from landmark_jax.errors import ConfigError

LOSS_KINDS = ("softmax_center", "softmax", "arcface", "contrastive")


LR_SCHEDULES = ("per_stage", "global")
UNASSIGNED_POLICIES = ("refuse", "last")


@dataclasses.dataclass(frozen=True)
class LossConfig:
  kind: str = "softmax_center"  # "softmax_center", "softmax", "arcface" or "contrastive"
  center_weight: float = 5e-5  # λ (the paper: 5e-5)
  center_alpha: float = 0.5  # α of the center update rule (ours: 0.5, Wen et al.'s value)
  center_reduction: str = "mean"  # "mean" over landmark samples, or "sum"
  arcface_scale: float = 30.0
  arcface_margin: float = 0.3
  contrastive_margin: float = 0.5
  contrastive_weight: float = 1.0  # contrastive: added to the softmax loss with this weight
  # False: train on the landmark photos only, so the non-landmark output is never a target
  # (the ablation's "softmax over n landmarks"; the output stays, so shapes do not change)
  non_landmark_class: bool = True

  def __post_init__(self):
    if self.kind not in LOSS_KINDS:
      raise ConfigError(f"unknown loss.kind {self.kind!r}: one of {', '.join(LOSS_KINDS)}")
    if self.center_weight < 0 or not 0 <= self.center_alpha <= 1:
      raise ConfigError("loss.center_weight must be ≥ 0 and loss.center_alpha in [0, 1]")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
  lr_backbone: float = 0.01  # α1 (ours: the pretrained backbone learns slowest)
  lr_embedding: float = 0.1  # α2: the embedding layer (FC + BN)
  lr_classifier: float = 0.1  # α3: the classification layer
  momentum: float = 0.9  # the paper: 0.9
  weight_decay: float = 5e-3  # the paper: 5e-3, coupled L2 like PyTorch's SGD
  decay_norm_and_bias: bool = True  # False: no weight decay on BN parameters and biases
  lr_decay_epochs: tuple[int, ...] = (12, 24)  # the paper: ÷10 at epochs 12 and 24 of 30
  lr_decay_factor: float = 0.1

  def __post_init__(self):
    for name in (
      "lr_backbone",
      "lr_embedding",
      "lr_classifier",
      "momentum",
      "weight_decay",
      "lr_decay_factor",
    ):
      if not getattr(self, name) >= 0:
        raise ConfigError(f"optim.{name} must be ≥ 0, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class CurriculumConfig:
  enabled: bool = True  # train part by part when the data has regions
  epochs_per_stage: tuple[int, ...] = ()  # () = num_epochs split evenly over the stages
  new_class_init: str = "mean"  # new classifier rows/centers: "mean" embedding or "random"
  # "per_stage": every stage restarts at the base rates and decays at the fractions
  # optim.lr_decay_epochs are of num_epochs (12, 24 of 30: 40 % and 80 %) into its own
  # epochs; "global": optim.lr_decay_epochs counted over the whole run, the paper's literal
  # "÷10 at epochs 12 and 24" (docs/decisions.md)
  lr_schedule: str = "per_stage"
  # Landmarks data.regions_csv gives no region, with the curriculum on: "refuse" to train
  # (the error lists them), or "last": they join the last stage (logged with their count)
  unassigned: str = "refuse"

  def __post_init__(self):
    if self.lr_schedule not in LR_SCHEDULES:
      raise ConfigError(
        f"curriculum.lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}"
      )
    if self.unassigned not in UNASSIGNED_POLICIES:
      raise ConfigError(
        f"curriculum.unassigned must be one of {', '.join(UNASSIGNED_POLICIES)}, "
        f"got {self.unassigned!r}"
      )
