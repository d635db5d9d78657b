"""Choosing ScaNN's search settings for a recall target (`build-index --target-recall`).

A tree + asymmetric-hashing searcher has two settings that change at search time, without a
rebuild: the partitions probed per query (`leaves_to_search`) and the candidates re-scored
exactly after hashing (`reorder`, ScaNN's ``pre_reorder_num_neighbors``). The number of
partitions (`num_leaves`) is fixed when the tree is trained and stays at √n (ScaNN's
guidance): trying others would rebuild the index each time (70 s at 1 M centroids).

Recall@1 is measured against exact search, on two sets of queries: all of them, and those
whose best exact score clears the index's threshold η — the queries that matter, since a
photo whose nearest centroid scores below η is answered "no landmark" whatever an
approximate search finds (it can only find lower scores). The target applies to the second
set when η is known, else to the first.

Of the settings meeting the target, the cheapest is kept. Cost is the bytes a query reads
(`search_cost`): its share of the hashed codes (4 bits per block of `dims_per_block`
dimensions) for the probed leaves, plus a float32 row per re-scored candidate. At 512-d
one re-scored candidate costs as much as 16 hashed ones; on this machine a measured ratio
was ~24, close enough to rank settings the same way, and unlike a timing it gives the same
choice on every run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Callable, Sequence

import numpy as np

from landmark_jax.index.centroid_index import CentroidIndex
from landmark_jax.index.config import SearchSetting

logger = logging.getLogger(__name__)

# The probed share of the leaves, and the re-scored candidates, that the ladder combines.
LEAF_SHARES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
# At least 20: a recognizer fetches top_k × 4 = 20 neighbours, and those beyond the
# re-scored ones would come in hashed order.
REORDERS = (20, 50, 100, 200, 500)
# Queries made from centroids when no embedded photos are at hand: each at this cosine
# similarity to its centroid (photos within a cleaned cluster sit around 0.5-0.9 of it).
PERTURBED_SIMILARITY = 0.7


@dataclasses.dataclass(frozen=True)
class Measurement:
  setting: SearchSetting | None  # None: the searcher has no settings (brute force, exact)
  recall: float  # recall@1 on all queries
  recall_above_eta: float | None  # on those whose best exact score ≥ η (None: no η, or none)
  cost: float  # `search_cost`, bytes read per query

  def target_recall(self) -> float:
    """The recall the target applies to (see the module docstring)."""
    return self.recall if self.recall_above_eta is None else self.recall_above_eta


@dataclasses.dataclass(frozen=True)
class Tuning:
  chosen: Measurement
  reached: bool  # False: no setting met the target; `chosen` is the best found
  measured: tuple[Measurement, ...]  # every setting measured, in the order measured
  queries_above_eta: int | None = None  # of the queries measured (None: no η given)


def recall_at_1(
  found: np.ndarray,
  truth: np.ndarray,
  found_scores: np.ndarray | None = None,
  true_scores: np.ndarray | None = None,
  mask: np.ndarray | None = None,
) -> float | None:
  """The share of queries whose found nearest neighbour is the exact one.

  `found`, `truth`: (q,) neighbour ids. With scores (each computed the same way, exactly),
  a found neighbour that ties the exact best also counts: two equal centroids are equally
  right. `mask` (q,) bool keeps a subset; None when it (or the whole set) is empty.
  """
  hit = np.asarray(found) == np.asarray(truth)
  if found_scores is not None and true_scores is not None:
    hit |= np.asarray(found_scores) >= np.asarray(true_scores)
  if mask is not None:
    hit = hit[np.asarray(mask, bool)]
  return float(hit.mean()) if hit.size else None


def settings_ladder(
  num_leaves: int, leaf_shares: Sequence[float] = LEAF_SHARES, reorders: Sequence[int] = REORDERS
) -> list[SearchSetting]:
  """Every combination of probed leaves (shares of `num_leaves`, at least 1) and re-scored
  candidates, sorted."""
  leaves = sorted({min(num_leaves, max(1, round(num_leaves * share))) for share in leaf_shares})
  return sorted(SearchSetting(l, r) for l in leaves for r in sorted(set(reorders)))


def search_cost(
  setting: SearchSetting, *, num_vectors: int, num_leaves: int, dim: int, dims_per_block: int
) -> float:
  """Bytes one query reads: hashed codes of the probed leaves' vectors (4 bits per block),
  then a float32 row per re-scored candidate."""
  hashed = num_vectors * min(1.0, setting.leaves_to_search / num_leaves)
  return hashed * math.ceil(dim / dims_per_block) / 2 + setting.reorder * dim * 4


def choose_setting(
  ladder: Sequence[SearchSetting],
  measure: Callable[[SearchSetting], Measurement],
  target: float,
  cost: Callable[[SearchSetting], float],
) -> Tuning:
  """The cheapest setting of `ladder` (by `cost`) whose measured recall meets `target`.

  Recall grows with both settings, so the most generous setting is measured first: if even
  it misses the target, no other can meet it, and it is the best there is (`reached` False).
  Then settings are tried cheapest first, skipping any that probes no more leaves and
  re-scores no more candidates than one that already failed; the first to meet the target
  is the cheapest that does.
  """
  if not ladder:
    raise ValueError("no settings to choose from")
  measured: list[Measurement] = []
  generous = max(ladder, key=lambda s: (s.leaves_to_search, s.reorder))
  measured.append(measure(generous))
  if measured[0].target_recall() < target:
    return Tuning(measured[0], False, tuple(measured))
  failed: list[SearchSetting] = []
  for setting in sorted(ladder, key=lambda s: (cost(s), s)):
    if setting == generous:
      break
    if any(
      setting.leaves_to_search <= f.leaves_to_search and setting.reorder <= f.reorder
      for f in failed
    ):
      continue
    measured.append(measure(setting))
    if measured[-1].target_recall() >= target:
      return Tuning(measured[-1], True, tuple(measured))
    failed.append(setting)
  return Tuning(measured[0], True, tuple(measured))


def perturbed_queries(
  centroids: np.ndarray,
  count: int,
  rng: np.random.Generator,
  similarity: float = PERTURBED_SIMILARITY,
) -> np.ndarray:
  """`count` unit vectors, each at cosine `similarity` to a centroid drawn at random: the
  centroid scaled, plus a random direction orthogonal to it."""
  sources = centroids[
    np.sort(rng.choice(len(centroids), min(count, len(centroids)), replace=False))
  ].astype(np.float64)
  sources /= np.linalg.norm(sources, axis=1, keepdims=True)
  noise = rng.standard_normal(sources.shape)
  noise -= np.sum(noise * sources, axis=1, keepdims=True) * sources
  noise /= np.linalg.norm(noise, axis=1, keepdims=True)
  queries = similarity * sources + math.sqrt(1 - similarity**2) * noise
  return queries.astype(np.float32)


def tune(
  index: CentroidIndex,
  queries: np.ndarray,
  target: float,
  *,
  eta: float | None = None,
  ladder: Sequence[SearchSetting] | None = None,
) -> Tuning:
  """Measures `index`'s recall@1 on `queries` against its exact search and chooses the
  cheapest setting of `ladder` (default: `settings_ladder` of its leaves) meeting `target`.

  Only a ScaNN tree has settings to choose; ScaNN's brute force is measured as it is, and
  the exact backend is exact by construction (recall 1, nothing searched).
  """
  _, true_scores, truth = index.search(queries, 1, exact=True)
  above = None if eta is None else true_scores[:, 0] >= eta
  above_count = None if above is None else int(above.sum())
  if above is not None and not above.any():
    above = None  # no query clears η: the target applies to all of them

  def measure(setting: SearchSetting | None) -> Measurement:
    if index.backend == "exact":
      return Measurement(setting, 1.0, None if above is None else 1.0, 0.0)
    extra = (
      {}
      if setting is None
      else {"leaves_to_search": setting.leaves_to_search, "reorder": setting.reorder}
    )
    _, scores, found = index.search(queries, 1, **extra)
    args = (found[:, 0], truth[:, 0], scores[:, 0], true_scores[:, 0])
    return Measurement(
      setting,
      recall_at_1(*args),
      None if above is None else recall_at_1(*args, mask=above),
      0.0 if setting is None else cost(setting),
    )

  info = index.scann_info
  if info.get("mode") != "tree_ah":
    only = measure(None)
    return Tuning(only, only.target_recall() >= target, (only,), above_count)
  num_leaves = info["num_leaves"]

  def cost(setting: SearchSetting) -> float:
    return search_cost(
      setting,
      num_vectors=len(index),
      num_leaves=num_leaves,
      dim=index.dim,
      dims_per_block=index.config.dims_per_block,
    )

  chosen = choose_setting(ladder or settings_ladder(num_leaves), measure, target, cost)
  return dataclasses.replace(chosen, queries_above_eta=above_count)


def tuning_record(
  tuning: Tuning, *, target: float, eta: float | None, queries: int, query_source: str
) -> dict[str, Any]:
  """What the manifest keeps of a tuning (under ``scann.tuning``): the target, the queries,
  the recall of the chosen setting on all of them and above η, and every setting measured."""

  def row(m: Measurement) -> dict[str, Any]:
    setting = {} if m.setting is None else dataclasses.asdict(m.setting)
    return {**setting, "recall_at_1": m.recall, "recall_at_1_above_eta": m.recall_above_eta}

  return {
    "target_recall": target,
    "reached": tuning.reached,
    "queries": queries,
    "query_source": query_source,
    "eta": eta,
    "queries_above_eta": tuning.queries_above_eta,
    **row(tuning.chosen),
    "measured": [row(m) for m in tuning.measured],
  }


def describe(setting: SearchSetting | None, num_leaves: int | None) -> str:
  """``31/316 leaves, reorder 50`` (or ``brute force``)."""
  if setting is None:
    return "brute force"
  return f"{setting.leaves_to_search}/{num_leaves} leaves, reorder {setting.reorder}"


def tuned_index(
  index: CentroidIndex,
  queries: np.ndarray,
  target: float,
  *,
  eta: float | None = None,
  query_source: str = "",
  ladder: Sequence[SearchSetting] | None = None,
) -> tuple[CentroidIndex, Tuning]:
  """`index` searching with the cheapest setting that meets `target` (`tune`), the tuning
  recorded in its manifest. When none meets it, the best setting measured is kept, and a
  warning says so: never a silent shortfall."""
  tuning = tune(index, queries, target, eta=eta, ladder=ladder)
  if not tuning.reached:
    chosen = tuning.chosen
    scope = "all queries" if chosen.recall_above_eta is None else f"the queries above η {eta}"
    logger.warning(
      "recall@1 target %s not reached: the best setting measured (%s) reaches %.4f on %s; "
      "the index keeps it (exact search, backend=exact, has recall 1)",
      target,
      describe(chosen.setting, index.scann_info.get("num_leaves")),
      chosen.target_recall(),
      scope,
    )
  record = tuning_record(
    tuning, target=target, eta=eta, queries=len(queries), query_source=query_source
  )
  return index.with_search_settings(tuning.chosen.setting, record), tuning
