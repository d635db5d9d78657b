"""The rule of verified answers (issue 32): a photo whose best score falls in a band around η
is answered by local features and RANSAC against its candidate's stored photos (a landmark
iff at least k inliers); outside the band, or without stored photos, today's answer stands.

Scores and band edges are compared in float32, as `threshold.accepted` compares η, so that
calibration, which chooses the band from scores, and recognition, which applies it, agree
on every photo.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from landmark_jax.errors import ConfigError

# Cosine scores lie in [-1, 1]: an offset of 2 reaches every score from any η in that range.
MAX_OFFSET = 2.0


@dataclass(frozen=True)
class VerifyBand:
  """Where verification decides, and how. The edges are offsets from η, not scores, so a
  later change of η keeps the band around the new η."""

  below: float  # the band starts at η − below (a score there is verified)
  above: float  # and ends at η + above (a score there is not)
  min_inliers: int  # k: verification answers "landmark" with at least k inliers
  candidates: int = 1  # how many of the best candidates the recognizer verifies

  def __post_init__(self):
    for name in ("below", "above"):
      value = getattr(self, name)
      if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not 0 <= value <= MAX_OFFSET
      ):
        raise ConfigError(
          f"verification band: `{name}` is an offset from η in [0, {MAX_OFFSET}], got {value!r}"
        )
      object.__setattr__(self, name, float(value))
    for name, least in (("min_inliers", 0), ("candidates", 1)):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
        raise ConfigError(
          f"verification band: `{name}` must be an integer ≥ {least}, got {value!r}"
        )
      object.__setattr__(self, name, int(value))

  @property
  def is_off(self) -> bool:
    """Whether this is the empty band (0, 0): nothing is verified, at any η."""
    return self.below == 0 and self.above == 0


OFF = VerifyBand(0.0, 0.0, 0)


def band_edges(eta: float, band: VerifyBand) -> tuple[float, float]:
  """(lo, hi): the band is lo ≤ score < hi, both float32 values (as Python floats, exactly).
  The offsets are applied in float64 and rounded once, the same way here and in
  calibration."""
  eta = float(eta)
  return float(np.float32(eta - band.below)), float(np.float32(eta + band.above))


def in_band(scores, eta: float, band: VerifyBand) -> np.ndarray:
  """Which scores verification decides (elementwise, bool): lo ≤ score < hi in float32. At
  (0, 0) lo = hi, so the band is empty."""
  lo, hi = band_edges(eta, band)
  scores = np.asarray(scores, np.float32)
  return (scores >= np.float32(lo)) & (scores < np.float32(hi))


def verified_accept(inliers, min_inliers: int) -> np.ndarray:
  """Whether verification answers "landmark": inliers ≥ k. -1 (no stored photos) never
  reaches a valid k (≥ 0), though `decide` keeps such photos out of the band anyway."""
  return np.asarray(inliers) >= min_inliers


def decide(
  scores, eta: float, band: VerifyBand, base_accept, verifiable, inliers
) -> tuple[np.ndarray, np.ndarray]:
  """(accept, verified), elementwise: a photo is verified when its score is in the band and
  its candidate(s) have stored photos (`verifiable`); a verified photo is accepted iff its
  inliers reach ``band.min_inliers``, any other keeps `base_accept` (today's η and ρ)."""
  verified = in_band(scores, eta, band) & np.asarray(verifiable, bool)
  accept = np.where(
    verified, verified_accept(inliers, band.min_inliers), np.asarray(base_accept, bool)
  )
  return accept, verified


def stored_band(metadata: dict) -> VerifyBand | None:
  """The band `calibrate --verify-budget` stored in an index's manifest metadata (None:
  never calibrated for verification)."""
  stored = metadata.get("verification")
  if not stored:
    return None
  return VerifyBand(
    stored["below"], stored["above"], int(stored["min_inliers"]), int(stored.get("candidates", 1))
  )
