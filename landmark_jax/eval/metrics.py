"""Evaluation metrics, NumPy only.

- `sensitivity_specificity`: the paper's measures (§4): sensitivity = share of landmark
  photos whose predicted landmark is correct; specificity = share of non-landmark photos
  predicted non-landmark; with breakdowns by rare/frequent landmark and by category, each
  with the photo counts it rests on and a 95 % Wilson interval (`wilson_interval`).
- `gap`: Global Average Precision of the Google Landmark Recognition challenge (micro AP
  over all test images; a prediction on a non-landmark image is a false positive).
- `revisited_map`: mAP and mP@k of the Revisited Oxford/Paris protocols (Radenović et al.
  2018), matching the official `revisitop` evaluation: trapezoidal AP after removing junk.
"""

from __future__ import annotations

import collections
import math
import os
import pickle
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from landmark_jax.errors import DataError


def _share(part: int, total: int) -> float:
  return part / total if total else math.nan


def _rate(hits: int, count: int) -> float:
  return hits / count if count else math.nan


# z of a two-sided 95 % interval: the 0.975 quantile of the standard normal.
Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
  """The Wilson score interval of a proportion `successes` / `n` (Newcombe 1998, method 3).

  The π solving (p − π)² = z²·π(1 − π)/n, with p = successes/n:
  centre (p + z²/2n) / (1 + z²/n), half-width z·√(p(1 − p)/n + z²/4n²) / (1 + z²/n).
  Unlike p ± z·√(p(1 − p)/n) it stays within [0, 1] and does not collapse to a point at
  p = 0 or 1, which is where small evaluation sets land (1 of 1 photos recognised). (nan, nan)
  for n = 0: no photos, no figure.
  """
  if n < 0 or not 0 <= successes <= n:
    raise ValueError(f"need 0 ≤ successes ≤ n, got {successes} of {n}")
  if n == 0:
    return math.nan, math.nan
  p = successes / n
  z2n = z * z / n
  centre = (p + z2n / 2) / (1 + z2n)
  half = z * math.sqrt(p * (1 - p) / n + z2n / (4 * n)) / (1 + z2n)
  # At p = 0 (or 1) the bound is exactly 0 (or 1); rounding would leave ±1e-17 there.
  low = 0.0 if successes == 0 else max(0.0, centre - half)
  high = 1.0 if successes == n else min(1.0, centre + half)
  return low, high


def sensitivity_specificity(
  predictions: Sequence[Hashable | None],
  truth: Sequence[Hashable | None],
  *,
  train_counts: Mapping[Hashable, int] | None = None,
  rare_threshold: int = 10,
  categories: Mapping[Hashable, str] | None = None,
) -> dict[str, Any]:
  """Sensitivity/specificity with breakdowns, each with its counts and 95 % Wilson interval.

  Args:
    predictions: per photo, the predicted landmark id, or None for "no landmark".
    truth: per photo, the true landmark id, or None.
    train_counts: training images per landmark; landmarks with fewer than
      `rare_threshold` are "rare", the others "frequent".
    categories: landmark id → category, for the per-category breakdown.

  Returns ``sensitivity`` = ``recognised`` / ``landmark_images`` (recognised: the predicted
  landmark is the photo's own), ``specificity`` = ``rejected`` / ``non_landmark_images``,
  ``sensitivity_ci`` and ``specificity_ci`` as (low, high), and ``landmark_share``. A rate
  over no photos is nan, its interval (nan, nan). Each breakdown entry has ``sensitivity``,
  ``sensitivity_ci``, ``recognised``, ``images`` (its n) and ``share``: the paper's "part
  from total number", the share of the test set's landmark photos that the group holds (not
  of all photos: at a 2 % landmark share that would read 50× smaller).
  """
  if len(predictions) != len(truth):
    raise ValueError(f"{len(predictions)} predictions for {len(truth)} photos")
  total = len(truth)
  landmark = [(p, t) for p, t in zip(predictions, truth) if t is not None]
  non_landmark = [p for p, t in zip(predictions, truth) if t is None]
  recognised = sum(p == t for p, t in landmark)
  rejected = sum(p is None for p in non_landmark)
  result = {
    "sensitivity": _rate(recognised, len(landmark)),
    "sensitivity_ci": wilson_interval(recognised, len(landmark)),
    "specificity": _rate(rejected, len(non_landmark)),
    "specificity_ci": wilson_interval(rejected, len(non_landmark)),
    "recognised": recognised,
    "landmark_images": len(landmark),
    "rejected": rejected,
    "non_landmark_images": len(non_landmark),
    "landmark_share": _share(len(landmark), total),
  }

  def breakdown(group_of) -> dict[str, dict[str, Any]]:
    groups = collections.defaultdict(list)
    for p, t in landmark:
      groups[group_of(t)].append(p == t)
    return {
      name: {
        "sensitivity": _rate(sum(hits), len(hits)),
        "sensitivity_ci": wilson_interval(sum(hits), len(hits)),
        "recognised": sum(hits),
        "images": len(hits),
        "share": _share(len(hits), len(landmark)),
      }
      for name, hits in sorted(groups.items())
    }

  if train_counts is not None:
    result["by_frequency"] = breakdown(
      lambda t: "rare" if train_counts.get(t, 0) < rare_threshold else "frequent"
    )
    result["rare_threshold"] = rare_threshold
  if categories:
    result["by_category"] = breakdown(lambda t: categories.get(t, "unknown"))
  return result


def gap(
  predictions: Mapping[Hashable, tuple[Hashable, float]],
  solution: Mapping[Hashable, Sequence[Hashable]],
  *,
  ignore_non_landmarks: bool = False,
) -> float:
  """Global Average Precision (micro AP), as the Google Landmark Recognition challenge.

  GAP = (1/M) Σ_i P(i)·rel(i) over all predictions sorted by descending score, where M is
  the number of test images with a landmark, P(i) the precision at rank i and rel(i) = 1 if
  prediction i is one of its image's landmarks. A prediction on an image without a landmark
  is a false positive (rel = 0, but it takes a rank) — unless `ignore_non_landmarks`, which
  drops such images' predictions from the ranking.

  Args:
    predictions: image → (landmark, score); at most one per image, images may be absent.
    solution: image → its landmarks (empty for a non-landmark image); every test image.
  """
  expected = sum(1 for landmarks in solution.values() if len(landmarks))
  if expected == 0:
    raise ValueError("GAP needs at least one test image with a landmark")
  unknown = [image for image in predictions if image not in solution]
  if unknown:
    raise KeyError(f"predictions for images not in the solution: {unknown[:5]}")
  ranked = sorted(predictions.items(), key=lambda item: -item[1][1])
  rank = correct = 0
  total = 0.0
  for image, (landmark, _) in ranked:
    truth = solution[image]
    if ignore_non_landmarks and not len(truth):
      continue
    rank += 1
    if landmark in truth:
      correct += 1
      total += correct / rank
  return total / expected


def top1_accuracy(
  predictions: Mapping[Hashable, tuple[Hashable, float]],
  solution: Mapping[Hashable, Sequence[Hashable]],
) -> float:
  """Correct predictions over the images that have a landmark."""
  expected = sum(1 for landmarks in solution.values() if len(landmarks))
  correct = sum(1 for image, (landmark, _) in predictions.items() if landmark in solution[image])
  return correct / expected


# Revisited Oxford / Paris -----------------------------------------------------------------

PROTOCOLS = ("easy", "medium", "hard")


def protocol_ground_truth(query: Mapping[str, Any], protocol: str) -> tuple[np.ndarray, np.ndarray]:
  """(positives, junk) of one query under a protocol, as the official evaluation defines:
  Easy: positives easy, junk junk+hard; Medium: positives easy+hard, junk junk;
  Hard: positives hard, junk junk+easy."""
  easy = np.asarray(query.get("easy", []), np.int64)
  hard = np.asarray(query.get("hard", []), np.int64)
  junk = np.asarray(query.get("junk", []), np.int64)
  if protocol == "easy":
    return easy, np.concatenate([junk, hard])
  if protocol == "medium":
    return np.concatenate([easy, hard]), junk
  if protocol == "hard":
    return hard, np.concatenate([junk, easy])
  raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")


def average_precision(
  ranking: np.ndarray, positives: np.ndarray, junk: np.ndarray
) -> tuple[float, np.ndarray]:
  """Trapezoidal AP of one ranked list with junk images removed from it.

  Returns the AP and the 0-based positions of the positives in the junk-free list. With
  positives at positions r_0 < r_1 < … (j-th positive at r_j) and n positives in all:
  AP = Σ_j (1/n)·(P_before + P_at)/2, where P_at = (j + 1)/(r_j + 1) and
  P_before = j / r_j (1 when r_j = 0) — the area under the precision-recall curve by
  trapezoids.
  """
  positives_set, junk_set = set(positives.tolist()), set(junk.tolist())
  kept_positions = []
  position = 0
  for item in ranking.tolist():
    if item in junk_set:
      continue
    if item in positives_set:
      kept_positions.append(position)
    position += 1
  positions = np.asarray(kept_positions, np.int64)
  n = len(positives)
  ap = 0.0
  for j, r in enumerate(positions):
    before = 1.0 if r == 0 else j / r
    at = (j + 1) / (r + 1)
    ap += (before + at) / (2 * n)
  return ap, positions


def revisited_map(
  ranks: np.ndarray,
  gnd: Sequence[Mapping[str, Any]],
  protocol: str,
  kappas: Sequence[int] = (1, 5, 10),
) -> dict[str, Any]:
  """mAP and mP@k over queries for one protocol.

  Args:
    ranks: (database size, queries) — column q lists database indices best first (the
      layout of the official evaluation), or (queries, database size) when it is square-free
      and transposed; pass it as the official code does to be safe.
    gnd: per query a mapping with ``easy``, ``hard``, ``junk`` (0-based database indices).

  Queries without positives under the protocol are skipped (not counted as 0). P@k of a
  query is (positives within the first min(k, last positive position) junk-free results)
  divided by that same number, as the official code computes it.
  """
  ranks = np.asarray(ranks)
  if ranks.shape[1] != len(gnd):
    raise ValueError(
      f"ranks has {ranks.shape[1]} columns for {len(gnd)} queries; expected "
      "(database size, queries)"
    )
  aps, precisions = [], []
  skipped = 0
  for q, query in enumerate(gnd):
    positives, junk = protocol_ground_truth(query, protocol)
    if len(positives) == 0:
      skipped += 1
      aps.append(math.nan)
      precisions.append([math.nan] * len(kappas))
      continue
    ap, positions = average_precision(ranks[:, q], positives, junk)
    aps.append(ap)
    one_based = positions + 1
    row = []
    for k in kappas:
      cutoff = min(int(one_based.max()), k) if len(one_based) else k
      row.append(float((one_based <= cutoff).sum()) / cutoff)
    precisions.append(row)
  aps = np.asarray(aps)
  precisions = np.asarray(precisions, np.float64)
  valid = ~np.isnan(aps)
  return {
    "protocol": protocol,
    "mAP": float(aps[valid].mean()) if valid.any() else math.nan,
    "mP@k": {
      int(k): float(precisions[valid, i].mean()) if valid.any() else math.nan
      for i, k in enumerate(kappas)
    },
    "aps": aps,
    "queries": int(valid.sum()),
    "skipped_queries": skipped,
  }


def refuse_untrusted_pickle(path: str | os.PathLike, trust_pickle: bool) -> None:
  """Raises `DataError` for a ``.pkl`` ground truth the caller has not said it trusts.

  A separate check so that the command line can refuse before it loads a model.
  """
  path = os.fspath(path)
  if path.endswith(".pkl") and not trust_pickle:
    raise DataError(
      f"{path} is a Python pickle, which can run code when loaded: pass --trust-pickle "
      "(trust_pickle=True) if it is the official revisitop download, or use the .mat "
      "ground truth, which needs no trust"
    )


def load_revisited_gnd(path: str | os.PathLike, *, trust_pickle: bool = False) -> dict[str, Any]:
  """Reads an official ground-truth file into ``{"imlist", "qimlist", "gnd"}`` with 0-based
  indices and ``bbx`` as [x1, y1, x2, y2] floats.

  ``.pkl`` files (revisitop's `gnd_roxford5k.pkl`, `gnd_rparis6k.pkl`) are Python pickles:
  unpickling can run code, so they are refused unless `trust_pickle` says the file comes
  from a source you trust (the official download). ``.mat`` files (MATLAB, 1-based indices)
  hold only data; they are read with SciPy and converted.
  """
  path = os.fspath(path)
  refuse_untrusted_pickle(path, trust_pickle)
  try:
    return _read_gnd(path)
  except (KeyError, TypeError, AttributeError, IndexError) as error:
    # A readable file of the wrong shape: say which, instead of a traceback from deep inside.
    raise DataError(
      f"{path} is not a revisitop ground truth (imlist, qimlist, gnd with "
      f"easy/hard/junk/bbx): {type(error).__name__}: {error}"
    ) from error


def _read_gnd(path: str) -> dict[str, Any]:
  if path.endswith(".pkl"):
    with open(path, "rb") as f:
      raw = pickle.load(f)  # the caller vouched for this file: see the docstring
    return {
      "imlist": list(raw["imlist"]),
      "qimlist": list(raw["qimlist"]),
      "gnd": [
        {key: _indices(entry.get(key, []), 0) for key in ("easy", "hard", "junk")}
        | {"bbx": _bbx(entry.get("bbx"))}
        for entry in raw["gnd"]
      ],
    }
  if path.endswith(".mat"):
    from scipy.io import loadmat

    raw = loadmat(path, squeeze_me=True, struct_as_record=False)
    entries = np.atleast_1d(raw["gnd"])
    return {
      "imlist": [str(x) for x in np.atleast_1d(raw["imlist"])],
      "qimlist": [str(x) for x in np.atleast_1d(raw["qimlist"])],
      "gnd": [
        {key: _indices(getattr(entry, key, []), 1) for key in ("easy", "hard", "junk")}
        | {"bbx": _bbx(getattr(entry, "bbx", None))}
        for entry in entries
      ],
    }
  raise DataError(f"ground truth must be a .pkl or .mat file: {path}")


def _indices(values, base: int) -> list[int]:
  return [int(v) - base for v in np.atleast_1d(np.asarray(values)).ravel().tolist()]


def _bbx(value) -> list[float] | None:
  if value is None:
    return None
  values = np.asarray(value, np.float64).ravel()
  return values.tolist() if len(values) == 4 else None


def crop_query(image, bbx: Sequence[float] | None):
  """A query image cropped to its bounding box, as the revisited protocol requires."""
  if bbx is None:
    return image
  x1, y1, x2, y2 = bbx
  return image.crop((int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2))))
