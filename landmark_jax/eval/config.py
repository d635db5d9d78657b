"""The calibration section of a run's config: the specificity η is chosen for."""

from __future__ import annotations

import dataclasses

from landmark_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class CalibrationConfig:
  target_specificity: float = 0.99  # η is chosen so this share of non-landmarks is rejected

  def __post_init__(self):
    if not 0 < self.target_specificity <= 1:
      raise ConfigError(
        f"calibration.target_specificity must be in (0, 1], got {self.target_specificity}"
      )
