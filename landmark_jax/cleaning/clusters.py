"""One landmark's photos → valid clusters (one per shooting angle), their centroids and
medoids: near-duplicates removed, then agglomerative clustering on cosine distance cut at a
threshold (the package docstring has the whole rule)."""

from __future__ import annotations

import dataclasses
import zlib
from typing import Hashable

import numpy as np

from landmark_jax.cleaning.config import CleaningConfig
from landmark_jax.cleaning.result import LandmarkOutcome


@dataclasses.dataclass
class LandmarkClusters:
  """The outcome for one landmark: a cluster id per image (-1 = removed), centroids and the
  reference photo of each (its cluster's medoid)."""

  landmark: Hashable
  assignment: np.ndarray  # (m,) int, -1 for removed images
  centroids: np.ndarray  # (v, D) L2-normalised
  sizes: np.ndarray  # (v,) images per centroid
  outcome: LandmarkOutcome
  medoids: np.ndarray  # (v,) index into the landmark's images of each cluster's medoid


def unit_rows(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _mean_direction(x: np.ndarray) -> np.ndarray:
  return unit_rows(x.mean(0, keepdims=True))[0]


def medoid(x: np.ndarray, members: np.ndarray) -> int:
  """The member (an index into unit rows `x`) with the least summed cosine distance to the
  others. Σ_j (1 − x_i·x_j) = m − x_i·Σ_j x_j, so it is the member nearest the cluster's
  mean direction: O(m·D), no m×m matrix."""
  members = np.asarray(members)
  return int(members[np.argmax(x[members] @ x[members].sum(0))])


def distinct_photos(x: np.ndarray, min_similarity: float) -> np.ndarray:
  """Indices of the photos (unit rows of `x`) kept when near-duplicates go: in order, a
  photo is dropped when its cosine similarity to a photo already kept reaches
  `min_similarity`. O(m · kept · D) time, O(m · D) memory."""
  kept = np.empty_like(x)
  indices = []
  for i, row in enumerate(x):
    n = len(indices)
    if n and float((kept[:n] @ row).max()) >= min_similarity:
      continue
    kept[n] = row
    indices.append(i)
  return np.asarray(indices, np.int64)


def cluster_embeddings(embeddings: np.ndarray, linkage: str, threshold: float) -> np.ndarray:
  """Flat agglomerative clusters (1-based ids) on cosine distance, cut at `threshold`."""
  x = unit_rows(embeddings)
  if len(x) == 1:
    return np.ones(1, np.int64)
  distances = np.clip(1.0 - x @ x.T, 0.0, 2.0)
  np.fill_diagonal(distances, 0.0)
  # Imported here: every run's config names CleaningConfig, and SciPy's clustering takes
  # half a second to import that serving never needs.
  from scipy.cluster import hierarchy
  from scipy.spatial.distance import squareform

  tree = hierarchy.linkage(squareform(distances, checks=False), method=linkage)
  return hierarchy.fcluster(tree, t=threshold, criterion="distance").astype(np.int64)


def _sample(landmark: Hashable, m: int, config: CleaningConfig) -> np.ndarray:
  """The photos to cluster: all, or for a big landmark a sample seeded by its id (memory is
  O(sample²); the same landmark gets the same sample in any process)."""
  if m <= config.max_images_per_landmark:
    return np.arange(m)
  rng = np.random.default_rng([config.seed, zlib.crc32(str(landmark).encode())])
  return np.sort(rng.choice(m, config.max_images_per_landmark, replace=False))


def _size_valid_clusters(
  x: np.ndarray, sample: np.ndarray, config: CleaningConfig
) -> list[np.ndarray]:
  """Member indices (into `x`) of each cluster of `min_cluster_size` or more sampled photos."""
  flat = cluster_embeddings(x[sample], config.linkage, config.distance_threshold)
  ids, counts = np.unique(flat, return_counts=True)
  return [
    sample[flat == cid] for cid, count in zip(ids, counts) if count >= config.min_cluster_size
  ]


def _join_unsampled(
  x: np.ndarray, sample: np.ndarray, clusters: list[np.ndarray], threshold: float
) -> list[np.ndarray]:
  """Each photo left out of the sample joins its nearest cluster when within `threshold`.
  Done before the reference check, so that a photo shares its cluster's fate as it would
  had the whole landmark been clustered."""
  if len(sample) == len(x) or not clusters:
    return clusters
  rest = np.setdiff1d(np.arange(len(x)), sample)
  similarity = x[rest] @ np.stack([_mean_direction(x[c]) for c in clusters]).T
  nearest = similarity.argmax(axis=1)
  close = 1.0 - similarity[np.arange(len(rest)), nearest] <= threshold
  return [
    np.sort(np.concatenate([c, rest[close & (nearest == j)]])) for j, c in enumerate(clusters)
  ]


def _near_references(
  x: np.ndarray, clusters: list[np.ndarray], references: np.ndarray | None, min_similarity: float
) -> np.ndarray:
  """Per cluster: does its centroid reach `min_similarity` to a reference photo?"""
  if references is None or not len(references) or not clusters:
    return np.ones(len(clusters), bool)
  centroids = np.stack([_mean_direction(x[c]) for c in clusters])
  return (centroids @ unit_rows(references).T).max(axis=1) >= min_similarity


def _without_valid_cluster(
  landmark: Hashable, x: np.ndarray, config: CleaningConfig, below_reference: int, rejected: int
) -> LandmarkClusters:
  m = len(x)
  if config.keep_landmarks_without_cluster:
    outcome = LandmarkOutcome(
      landmark, photos=m, kept=m, centroids=1, valid_clusters=0, clusters_below_reference=rejected
    )
    return LandmarkClusters(
      landmark,
      np.zeros(m, np.int64),
      _mean_direction(x)[None].astype(np.float32),
      np.array([m], np.int64),
      outcome,
      np.array([medoid(x, np.arange(m))], np.int64),
    )
  outcome = LandmarkOutcome(
    landmark,
    photos=m,
    kept=0,
    centroids=0,
    valid_clusters=0,
    outside_clusters=m - below_reference,
    below_reference=below_reference,
    clusters_below_reference=rejected,
  )
  return LandmarkClusters(
    landmark,
    np.full(m, -1, np.int64),
    np.zeros((0, x.shape[1]), np.float32),
    np.zeros(0, np.int64),
    outcome,
    np.zeros(0, np.int64),
  )


def _clusters_of_distinct(
  landmark: Hashable, x: np.ndarray, config: CleaningConfig, references: np.ndarray | None
) -> LandmarkClusters:
  """Valid clusters of photos that are all distinct (unit rows `x`)."""
  sample = _sample(landmark, len(x), config)
  clusters = _size_valid_clusters(x, sample, config)
  clusters = _join_unsampled(x, sample, clusters, config.distance_threshold)
  near = _near_references(x, clusters, references, config.reference_similarity)
  accepted = [c for c, ok in zip(clusters, near) if ok]
  below_reference = sum(len(c) for c, ok in zip(clusters, near) if not ok)
  if not accepted:
    return _without_valid_cluster(landmark, x, config, below_reference, int((~near).sum()))
  assignment = np.full(len(x), -1, np.int64)
  for j, members in enumerate(accepted):
    assignment[members] = j
  sizes = np.array([len(c) for c in accepted], np.int64)
  kept = int(sizes.sum())
  outcome = LandmarkOutcome(
    landmark,
    photos=len(x),
    kept=kept,
    centroids=len(accepted),
    valid_clusters=len(accepted),
    outside_clusters=len(x) - kept - below_reference,
    below_reference=below_reference,
    clusters_below_reference=int((~near).sum()),
  )
  centroids = np.stack([_mean_direction(x[c]) for c in accepted]).astype(np.float32)
  medoids = np.array([medoid(x, c) for c in accepted], np.int64)
  return LandmarkClusters(landmark, assignment, centroids, sizes, outcome, medoids)


def clean_landmark(
  landmark: Hashable,
  embeddings: np.ndarray,
  config: CleaningConfig,
  references: np.ndarray | None = None,
) -> LandmarkClusters:
  """Valid clusters of one landmark's images, their centroids and medoids, and which images
  survive (near-duplicates never do)."""
  x = unit_rows(embeddings)
  if not config.remove_near_duplicates:
    return _clusters_of_distinct(landmark, x, config, references)
  distinct = distinct_photos(x, config.near_duplicate_similarity)
  found = _clusters_of_distinct(landmark, x[distinct], config, references)
  # Back to the landmark's own photo order: duplicates are removed (-1).
  assignment = np.full(len(x), -1, np.int64)
  assignment[distinct] = found.assignment
  outcome = dataclasses.replace(
    found.outcome, photos=len(x), near_duplicates=len(x) - len(distinct)
  )
  return LandmarkClusters(
    landmark, assignment, found.centroids, found.sizes, outcome, distinct[found.medoids]
  )
