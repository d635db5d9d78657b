"""The one decision rule between "a landmark" and "no landmark" (the paper, §3.4).

A photo shows a landmark when the similarity of its best centroid reaches the threshold η:
``score ≥ η``. Scores are float32 (`CentroidIndex.search` computes them the same way for a
photo alone or in any batch), and η is compared as float32 too, so that calibration, which
chooses η from scores, and recognition, which applies it, can never disagree about a photo:
an η given as a decimal (``--eta 0.9``) means the float32 nearest to it.
"""

from __future__ import annotations

import numpy as np


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
