"""The one decision rule between "a landmark" and "no landmark" (the paper, §3.4).

A photo shows a landmark when the similarity of its best centroid reaches the threshold η:
``score ≥ η``. Scores are float32 (`CentroidIndex.search` computes them the same way for a
photo alone or in any batch), and η is compared as float32 too, so that calibration, which
chooses η from scores, and recognition, which applies it, can never disagree about a photo:
an η given as a decimal (``--eta 0.9``) means the float32 nearest to it. Here too is how η
is chosen for a target specificity (`eta_for_specificity`), which the DELF-style baseline's
inlier threshold shares.
"""

from __future__ import annotations

import math

import numpy as np

from landmark_jax.errors import ConfigError, DataError


def as_threshold(eta: float) -> float:
  """η as the float32 value every comparison uses (returned as a Python float, exactly)."""
  return float(np.float32(eta))


def accepted(scores, eta: float) -> np.ndarray:
  """Which scores are landmarks at threshold `eta` (elementwise, bool)."""
  return np.asarray(scores, np.float32) >= np.float32(eta)


def is_landmark(score: float, eta: float) -> bool:
  return bool(accepted(score, eta))


def threshold_rejecting(score: float) -> float:
  """The smallest η that rejects `score` and accepts every higher float32 score: the next
  float32 above it."""
  return float(np.nextafter(np.float32(score), np.float32(np.inf)))


def eta_for_specificity(non_landmark_scores: np.ndarray, target: float) -> float:
  """The smallest η with share(score < η) ≥ target among non-landmark photos.

  With m scores sorted ascending, at least ⌈target·m⌉ of them must fall below η, so η is
  just above the ⌈target·m⌉-th smallest score.
  """
  scores = np.sort(np.asarray(non_landmark_scores, np.float64))
  if not len(scores):
    raise DataError("calibration needs non-landmark photos in the validation set")
  if not 0 < target <= 1:
    raise ConfigError(f"target specificity must be in (0, 1], got {target}")
  needed = math.ceil(target * len(scores) - 1e-9)
  return threshold_rejecting(scores[needed - 1])
