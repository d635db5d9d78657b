"""Choosing the band of verified answers and its inlier threshold k together (issue 32), on
validation photos: the most sensitivity at the target specificity, verifying at most a
budget's share of the photos.

As in `calibration._reference_calibration`, the candidates are the values where the rule
changes (quantiles of them beyond `max_candidates`), and "off" is always one, so the rule
chosen never does worse on the validation photos than today's. RANSAC is the costly part:
`photos_to_verify` names the only photos a band within the budget can hold, and the caller
computes inliers for those alone.
"""

from __future__ import annotations

import math

import numpy as np

from landmark_jax.errors import ConfigError, DataError
from landmark_jax.index import threshold
from landmark_jax.index.verify_rule import MAX_OFFSET, VerifyBand, in_band


def photos_to_verify(scores, eta: float, verifiable, budget: float) -> np.ndarray:
  """Indices (ascending) of the only validation photos a band verifying at most ⌊budget·N⌋
  photos can hold: at most that many verifiable photos nearest below η, and as many nearest
  at or above it (fewer where ties at the cut would take the band past the budget)."""
  scores = np.asarray(scores, np.float32)
  most = _most_verified(budget, len(scores))
  below, above = _reachable(scores, eta, np.asarray(verifiable, bool), most)
  return np.sort(np.concatenate([below, above]))


def choose_band(
  scores,
  eta: float,
  base_accept,
  base_correct,
  verifiable,
  inliers,
  verified_correct,
  is_non_landmark,
  target_specificity: float,
  budget: float,
  *,
  max_candidates: int = 64,
  candidates: int = 1,
) -> dict:
  """The band and k with the most validation sensitivity (landmark photos accepted with the
  right landmark) among those verifying at most `budget` of the photos whose validation
  specificity (non-landmark photos rejected) reaches the target; ties go to the lower
  verified share, then the higher specificity, the higher k, the smaller `below`, the
  smaller `above`.

  Band candidates: (0, 0), which is today's rule, and the edges at each verifiable score of
  `photos_to_verify` (lo at a score below η, hi just above one at or above it); k: each
  inlier count among those photos and one above them all (verified photos all rejected).
  Off reports k = 0. When no candidate reaches the target (today's η was calibrated
  elsewhere), the answer is off, with ``target_met`` False. `inliers` are read only at
  `photos_to_verify`."""
  scores = np.asarray(scores, np.float32)
  n = len(scores)
  base_accept, base_correct, verifiable, non_landmark = (
    _flags(a, n) for a in (base_accept, base_correct, verifiable, is_non_landmark)
  )
  inliers, verified_correct = _per_candidate(inliers, verified_correct, n)
  landmark = ~non_landmark
  if not landmark.any() or not non_landmark.any():
    raise DataError("verification calibration needs validation photos with and without landmarks")
  if not 0 < target_specificity <= 1:
    raise ConfigError(f"target specificity must be in (0, 1], got {target_specificity}")
  if max_candidates < 1:
    raise ConfigError(f"max_candidates must be at least 1, got {max_candidates}")
  most = _most_verified(budget, n)
  # The project's rounding for a target count (`threshold.eta_for_specificity`).
  allowed_alarms = int(non_landmark.sum()) - math.ceil(
    target_specificity * int(non_landmark.sum()) - 1e-9
  )
  base_hits = int((landmark & base_accept & base_correct).sum())
  base_alarms = int((non_landmark & base_accept).sum())
  below, above, ks, count, hits, alarms = _grid(
    scores,
    eta,
    verifiable,
    inliers,
    most,
    max_candidates,
    verified_correct=verified_correct & landmark[:, None],
    base_hit=landmark & base_accept & base_correct,
    non_landmark=non_landmark,
    base_alarm=non_landmark & base_accept,
  )
  hits, alarms = hits + base_hits, alarms + base_alarms
  feasible = (count <= most)[None] & (alarms <= allowed_alarms)
  if feasible.any():
    k, b, a = np.nonzero(feasible)
    best = np.lexsort((a, b, -ks[k], alarms[k, b, a], count[b, a], -hits[k, b, a]))[0]
    k, b, a = k[best], b[best], a[best]
  else:  # not even today's rule reaches the target, nor any band: off
    k, b, a = 0, 0, 0
  off = a == b == 0
  band = VerifyBand(below[b], above[a], 0 if off else int(ks[k]), candidates)
  hits, alarms = int(hits[k, b, a]), int(alarms[k, b, a])  # at (0, 0): today's, at any k
  n_landmark, n_non = int(landmark.sum()), int(non_landmark.sum())
  return {
    "below": band.below,
    "above": band.above,
    "min_inliers": band.min_inliers,
    "candidates": band.candidates,
    "budget": float(budget),
    "verified_share": float(count[b, a] / n),
    "sensitivity": hits / n_landmark,
    "specificity": (n_non - alarms) / n_non,
    "sensitivity_without": base_hits / n_landmark,
    "specificity_without": (n_non - base_alarms) / n_non,
    "target_specificity": float(target_specificity),
    "target_met": alarms <= allowed_alarms,
    "validation_photos": n,
  }


def _grid(
  scores,
  eta,
  verifiable,
  inliers,
  most,
  max_candidates,
  *,
  verified_correct,
  base_hit,
  non_landmark,
  base_alarm,
):
  """Every candidate band and k: the offsets `below` (B) and `above` (A), each with 0 first;
  the k values (K); how many photos each band verifies (B, A); and how many hits and false
  alarms it adds to today's (K, B, A). `inliers` and `verified_correct` are (N, C): per
  photo and verified candidate, best first; at k the answer is the first candidate reaching
  k (`Verifier`'s rule), a hit when that candidate is the photo's landmark."""
  below_rows, above_rows = _reachable(scores, eta, verifiable, most)
  below = np.concatenate([[0.0], _below_offsets(eta, _at_most(scores[below_rows], max_candidates))])
  above = np.concatenate([[0.0], _above_offsets(eta, _at_most(scores[above_rows], max_candidates))])
  # Which verifiable photos each half-band holds (below: [lo, η), above: [η, hi)), all of
  # them for the counts, so that a band reaching past `photos_to_verify` is over budget.
  held_below = np.array([in_band(scores, eta, VerifyBand(b, 0.0, 0)) for b in below]) & verifiable
  held_above = np.array([in_band(scores, eta, VerifyBand(0.0, a, 0)) for a in above]) & verifiable
  count = held_below.sum(1)[:, None] + held_above.sum(1)[None, :]
  rows = np.concatenate([below_rows, above_rows])
  reached = inliers[rows]  # (R, C)
  ks = np.unique(np.concatenate([reached.ravel(), [reached.max(initial=-1) + 1]]))
  ks = np.unique(np.maximum(ks, 0))
  reaches = reached[None, :, :] >= ks[:, None, None]  # (K, R, C)
  passes = reaches.any(axis=2)  # (K, R): some candidate reaches k
  first = reaches.argmax(axis=2)  # the first that does (0 where none: masked by `passes`)
  right = np.take_along_axis(verified_correct[rows][None].repeat(len(ks), 0), first[..., None], 2)
  hits_if = passes & right[..., 0]
  sums = []
  for if_accepted, today in ((hits_if, base_hit), (passes & non_landmark[rows], base_alarm)):
    gain = if_accepted.astype(np.float64) - today[rows]
    sums.append(_band_sums(gain, held_below[:, rows], held_above[:, rows]))
  return below, above, ks, count, *sums


def _per_candidate(inliers, verified_correct, n: int) -> tuple[np.ndarray, np.ndarray]:
  """`inliers` and `verified_correct` as (N, C) arrays: one column (one candidate verified)
  when given per photo."""
  inliers = np.asarray(inliers, np.int64)
  correct = np.asarray(verified_correct, bool)
  if inliers.ndim == 1:
    inliers = inliers[:, None]
  if correct.ndim == 1:
    correct = correct[:, None]
  if inliers.ndim != 2 or len(inliers) != n or correct.shape != inliers.shape:
    raise DataError(
      f"inlier counts {inliers.shape} and correctness {correct.shape}: one row per validation "
      f"photo ({n}), one column per verified candidate"
    )
  return inliers, correct


def _flags(values, n: int) -> np.ndarray:
  flags = np.asarray(values, bool)
  if flags.shape != (n,):
    raise DataError(f"one flag per validation photo: {flags.shape} for {n} photos")
  return flags


def _most_verified(budget: float, n: int) -> int:
  """The most photos of `n` a band may verify: share ≤ budget, read as a count so that a
  product such as 0.29·100 = 28.999… does not lose a photo."""
  if not 0 <= budget <= 1:
    raise ConfigError(f"verification budget is a share of the queries in [0, 1], got {budget}")
  return math.floor(budget * n + 1e-9)


def _reachable(scores, eta, verifiable, most) -> list[np.ndarray]:
  """The verifiable photos below η and those at or above it, each nearest η first, that a
  band verifying at most `most` photos can hold: holding one, a band holds every verifiable
  photo between it and η, ties included."""
  accepted = threshold.accepted(scores, eta)
  sides = []
  for side, sign in ((verifiable & ~accepted, -1), (verifiable & accepted, 1)):
    rows = np.flatnonzero(side)
    distance = sign * scores[rows]  # ascending: nearest η first; float32 negation is exact
    order = np.argsort(distance, kind="stable")
    rows, distance = rows[order], distance[order]
    held = np.searchsorted(distance, distance, side="right")
    sides.append(rows[held <= most])
  return sides


def _at_most(values: np.ndarray, count: int) -> np.ndarray:
  values = np.unique(values)
  if len(values) > count:
    values = np.unique(np.quantile(values, np.linspace(0, 1, count), method="nearest"))
  return values


def _below_offsets(eta: float, values: np.ndarray) -> np.ndarray:
  """For each score below η, an offset whose lo (`band_edges`) is that score: η − s, stepped
  up (in float64) while rounding the edge to float32 would leave the score out."""
  offsets = float(eta) - values.astype(np.float64)
  for _ in range(64):
    out = (float(eta) - offsets).astype(np.float32) > values
    if not out.any():
      break
    offsets = np.where(out, np.nextafter(offsets, np.inf), offsets)
  return np.sort(offsets[offsets <= MAX_OFFSET])


def _above_offsets(eta: float, values: np.ndarray) -> np.ndarray:
  """For each score at or above η, an offset whose hi is the next float32 above it, so the
  band holds the score: stepped up while the edge would not."""
  values = values.astype(np.float32)
  offsets = np.nextafter(values, np.float32(np.inf)).astype(np.float64) - float(eta)
  for _ in range(64):
    short = (float(eta) + offsets).astype(np.float32) <= values
    if not short.any():
      break
    offsets = np.where(short, np.nextafter(offsets, np.inf), offsets)
  return np.sort(offsets[offsets <= MAX_OFFSET])


def _band_sums(gain: np.ndarray, held_below: np.ndarray, held_above: np.ndarray) -> np.ndarray:
  """(K, B, A) integer sums of `gain` (K, R) over each band's photos: the two half-bands are
  disjoint, so a band's sum is theirs. Float matmuls (BLAS) of 0/±1 are exact here."""
  return np.rint(
    (gain @ held_below.T.astype(np.float64))[:, :, None]
    + (gain @ held_above.T.astype(np.float64))[:, None, :]
  ).astype(np.int64)


DEFAULT_BUDGET = 0.3  # docs/benchmarks.md, "Verified answers": where the demo's gain levels off
DEFAULT_CANDIDATES = 2  # the second candidate rescues photos the centroids ranked wrong


def calibrate_verification(
  trained,
  decision,
  sources,
  target_specificity: float,
  budget: float = DEFAULT_BUDGET,
  *,
  candidates: int = DEFAULT_CANDIDATES,
  progress: bool = False,
) -> dict:
  """The band and k for `decision`'s index (which stores local features) on the validation
  photos of `sources` (one `ImageSource` or several: landmark and non-landmark photos):
  `choose_band` on their scores, today's answers (η and ρ as `decision` applies them) and,
  for `photos_to_verify` only, the inliers `Verifier.check` finds for each of the
  `candidates` best candidates (no early stop: every k is tried). Queries are described
  exactly as recognition describes them."""
  from tqdm import tqdm

  from landmark_jax.data.transforms import record_data
  from landmark_jax.index.verify_rule import VerifyBand
  from landmark_jax.recognize.decision import public_landmark_id
  from landmark_jax.recognize.embedder import PhotoEmbedder
  from landmark_jax.recognize.verifier import Verifier

  if not isinstance(sources, (list, tuple)):
    sources = [sources]
  embedder = PhotoEmbedder(trained)
  embeddings, truth, records = [], [], []
  for source in sources:
    embedded = embedder.embed_source(source, read_exif=False)
    position = {str(record_id): i for i, record_id in enumerate(source.ids)}
    non_landmark = embedded.labels == source.label_map.non_landmark_label
    embeddings.append(embedded.embeddings)
    truth += [
      None if none else public_landmark_id(landmark)
      for none, landmark in zip(non_landmark, embedded.landmark_ids())
    ]
    records += [(source, position[str(record_id)]) for record_id in embedded.ids]
  # Any k: `check` without an early stop reports every candidate's best count.
  verifier = Verifier(trained, decision, VerifyBand(0.0, 0.0, 0, candidates))
  predictions = decision.predict(np.concatenate(embeddings))
  scores = np.array([p.score for p in predictions], np.float32)
  base_accept = np.array([p.is_landmark for p in predictions])
  base_correct = np.array(
    [p.landmark_id is not None and p.landmark_id == t for p, t in zip(predictions, truth)]
  )
  verifiable = np.array(
    [any(label is not None for label in verifier.candidate_labels(p)) for p in predictions]
  )
  inliers = np.full((len(predictions), candidates), -1, np.int64)
  correct = np.zeros((len(predictions), candidates), bool)
  rows = photos_to_verify(scores, decision.eta, verifiable, budget)
  for row in tqdm(rows, desc="verify", disable=not progress, dynamic_ncols=True):
    source, position = records[row]
    prediction = predictions[row]
    check = verifier.check(verifier.describe(record_data(source[position])), prediction, stop=False)
    for j, (candidate, most) in enumerate(zip(prediction.candidates, check.per_candidate)):
      inliers[row, j] = -1 if most is None else most
      correct[row, j] = candidate.landmark_id == truth[row]
  result = choose_band(
    scores,
    decision.eta,
    base_accept,
    base_correct,
    verifiable,
    inliers,
    correct,
    np.array([t is None for t in truth]),
    target_specificity,
    budget,
    candidates=candidates,
  )
  band = VerifyBand(result["below"], result["above"], result["min_inliers"], candidates)
  held = in_band(scores, decision.eta, band) & verifiable
  return {
    **result,
    "photos_verified_to_calibrate": int(len(rows)),
    # What k rests on: the non-landmark photos the band verifies (few: k is a guess).
    "non_landmark_photos_in_band": int((held & np.array([t is None for t in truth])).sum()),
  }
