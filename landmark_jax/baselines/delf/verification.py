"""Geometric verification: descriptor matches between two photos → RANSAC affine → inliers.

As DELF's `match_images`: each query descriptor is matched to its nearest descriptor of the
other photo when their L2 distance is below a threshold; an affine transform is fitted to
the matched keypoints with RANSAC (scikit-image), and the number of matches it explains
within `residual_threshold` pixels is the verification score.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from skimage.measure import ransac
from skimage.transform import AffineTransform

AFFINE_MIN_SAMPLES = 3  # an affine map is fixed by three point pairs


@dataclasses.dataclass(frozen=True)
class Verification:
  inliers: int  # matches consistent with `transform`; 0 when none could be fitted
  transform: AffineTransform | None  # query keypoints (x, y) → database keypoints
  matches: np.ndarray  # (m, 2) int: (query feature, database feature) putative pairs
  inlier_mask: np.ndarray  # (m,) bool


def match_descriptors(
  query: np.ndarray, database: np.ndarray, max_distance: float, mutual: bool = False
) -> np.ndarray:
  """(m, 2) pairs (query row, database row): each query descriptor's nearest database
  descriptor, kept when their L2 distance is at most `max_distance` (unit descriptors:
  ‖a − b‖² = 2 − 2 a·b)."""
  if not len(query) or not len(database):
    return np.zeros((0, 2), np.int64)
  similarity = np.asarray(query, np.float32) @ np.asarray(database, np.float32).T
  nearest = np.argmax(similarity, axis=1)
  distance_sq = 2.0 - 2.0 * similarity[np.arange(len(query)), nearest]
  ok = distance_sq <= max_distance**2
  if mutual:
    ok &= np.argmax(similarity, axis=0)[nearest] == np.arange(len(query))
  keep = np.flatnonzero(ok)
  return np.stack([keep, nearest[keep]], axis=1).astype(np.int64)


def _plausible(linear: np.ndarray, max_scale_change: float) -> np.ndarray:
  """Whether affine maps with linear parts (..., 2, 2) could relate two photos of one scene:
  no mirror image, no direction stretched or shrunk beyond `max_scale_change`. Without this
  check RANSAC happily "explains" many matches of an unrelated pair with a map that
  collapses the photo onto a line."""
  singular = np.linalg.svd(linear, compute_uv=False)
  return (
    (np.linalg.det(linear) > 0)
    & (singular[..., -1] >= 1 / max_scale_change)
    & (singular[..., 0] <= max_scale_change)
  )


def _skimage_ransac(source, target, residual_threshold, max_trials, seed, max_scale_change):
  """scikit-image's RANSAC: the reference, one Python-level model fit per trial."""

  def plausible(model, *_):
    return bool(_plausible(model.params[:2, :2], max_scale_change))

  model, inlier_mask = ransac(
    (source, target),
    AffineTransform,
    min_samples=AFFINE_MIN_SAMPLES,
    residual_threshold=residual_threshold,
    max_trials=max_trials,
    rng=seed,
    is_model_valid=plausible,
  )
  if model is None or inlier_mask is None:
    return None, np.zeros(len(source), bool)
  return model, np.asarray(inlier_mask, bool)


def _numpy_ransac(source, target, residual_threshold, max_trials, seed, max_scale_change):
  """The same algorithm as scikit-image's (minimal samples of 3 → affine → inliers within
  the threshold → the hypothesis with most inliers, ties to the first → refit on its
  inliers), with all `max_trials` hypotheses fitted and scored at once as array operations
  instead of one Python-level fit each: a fair baseline should not be slowed down by its
  implementation (speed-up measured in docs/benchmarks.md)."""
  rng = np.random.default_rng(seed)
  count = len(source)
  # Three distinct matches per trial: the indices of the 3 smallest of uniform draws.
  samples = np.argpartition(rng.random((max_trials, count)), AFFINE_MIN_SAMPLES - 1, axis=1)[
    :, :AFFINE_MIN_SAMPLES
  ]
  homogeneous = np.concatenate([source, np.ones((count, 1))], axis=1)  # (m, 3)
  design = homogeneous[samples]  # (T, 3, 3): rows [x, y, 1]
  solvable = np.abs(np.linalg.det(design)) > 1e-9  # collinear samples fix no affine map
  design[~solvable] = np.eye(3)
  maps = np.linalg.solve(design, target[samples])  # (T, 3, 2): [x y 1] @ map = [x' y']
  valid = solvable & _plausible(np.swapaxes(maps[:, :2, :], 1, 2), max_scale_change)
  residuals = np.linalg.norm(homogeneous @ maps - target, axis=-1)  # (T, m)
  inliers = residuals < residual_threshold  # strict, as scikit-image
  support = np.where(valid, inliers.sum(axis=1), -1)
  best = int(np.argmax(support))
  if support[best] < AFFINE_MIN_SAMPLES:
    return None, np.zeros(count, bool)
  mask = inliers[best]
  # The final fit on the inliers is scikit-image's own estimator, as in its `ransac`.
  model = AffineTransform.from_estimate(source[mask], target[mask])
  return (model, mask) if model else (None, np.zeros(count, bool))


RANSAC_BACKENDS = {"numpy": _numpy_ransac, "skimage": _skimage_ransac}


def verify_affine(
  query_keypoints: np.ndarray,
  database_keypoints: np.ndarray,
  matches: np.ndarray,
  *,
  residual_threshold: float,
  max_trials: int = 1000,
  seed: int = 0,
  max_scale_change: float = 4.0,
  backend: str = "numpy",
) -> Verification:
  """RANSAC affine fit to matched keypoints ((x, y) pixels); deterministic for a seed.

  `backend`: "numpy" (vectorised, the default) or "skimage" (scikit-image's `ransac`)."""
  if backend not in RANSAC_BACKENDS:
    raise ValueError(f"unknown RANSAC backend {backend!r}; one of {sorted(RANSAC_BACKENDS)}")
  matches = np.asarray(matches, np.int64).reshape(-1, 2)
  if len(matches) < AFFINE_MIN_SAMPLES:
    return Verification(0, None, matches, np.zeros(len(matches), bool))
  source = np.asarray(query_keypoints, np.float64)[matches[:, 0]]
  target = np.asarray(database_keypoints, np.float64)[matches[:, 1]]
  model, mask = RANSAC_BACKENDS[backend](
    source, target, residual_threshold, max_trials, seed, max_scale_change
  )
  return Verification(int(mask.sum()), model, matches, mask)


def verify_pair(
  query,
  database,
  *,
  max_descriptor_distance: float,
  residual_threshold: float,
  mutual: bool = True,
  max_trials: int = 1000,
  seed: int = 0,
  backend: str = "numpy",
) -> Verification:
  """Two photos' `LocalFeatures` → their geometric verification."""
  matches = match_descriptors(
    query.descriptors, database.descriptors, max_descriptor_distance, mutual
  )
  return verify_affine(
    query.keypoints,
    database.keypoints,
    matches,
    residual_threshold=residual_threshold,
    max_trials=max_trials,
    seed=seed,
    backend=backend,
  )


def verify_with(query, database, config) -> Verification:
  """`verify_pair` with a `DelfConfig`'s matching and RANSAC settings: how the baseline, the
  verifier of uncertain answers and their tests all verify a pair."""
  return verify_pair(
    query,
    database,
    max_descriptor_distance=config.max_descriptor_distance,
    residual_threshold=config.residual_threshold,
    max_trials=config.ransac_trials,
    seed=config.ransac_seed,
    backend=config.ransac_backend,
  )
