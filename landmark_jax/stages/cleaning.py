"""Data cleaning and per-shooting-angle centroids (the paper, §3.3).

Per landmark: agglomerative clustering of its L2-normalised embeddings on cosine distance,
cut at a distance threshold; clusters with at least `min_cluster_size` images are "valid"
(one per shooting angle); images outside valid clusters are removed from the cleaned
dataset; each valid cluster's centroid is its L2-normalised mean embedding.

The clustering itself is SciPy's `scipy.cluster.hierarchy` (C implementation, the
reference for agglomerative clustering); this module prepares the distances, bounds the
memory for very large landmarks and runs landmarks in parallel processes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import zlib
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CleaningConfig:
  linkage: str = "average"  # "average", "complete" or "single" (cosine distance needs no centroid linkage)
  distance_threshold: float = 0.5  # cut the dendrogram at this cosine distance (1 − cos)
  min_cluster_size: int = 3  # a cluster with fewer images is noise, not a shooting angle
  reference_similarity: float = 0.5  # with reference images: a valid cluster's centroid must
  #                                    reach this cosine similarity to one of them
  max_images_per_landmark: int = 2000  # above: cluster a seeded sample, assign the rest
  num_workers: int = 0  # landmark-parallel processes (0: in this process)
  seed: int = 0


@dataclasses.dataclass
class LandmarkClusters:
  """The outcome for one landmark: a cluster id per image (-1 = removed) and centroids."""

  landmark: Hashable
  assignment: np.ndarray  # (m,) int, -1 for removed images
  centroids: np.ndarray  # (v, D) L2-normalised
  sizes: np.ndarray  # (v,) images per valid cluster


def _normalize(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def cluster_embeddings(embeddings: np.ndarray, linkage: str, threshold: float) -> np.ndarray:
  """Flat agglomerative clusters (1-based ids) on cosine distance, cut at `threshold`."""
  x = _normalize(embeddings)
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


def clean_landmark(landmark: Hashable, embeddings: np.ndarray, config: CleaningConfig,
                   references: np.ndarray | None = None) -> LandmarkClusters:
  """Valid clusters of one landmark's images, their centroids, and which images survive."""
  m = len(embeddings)
  x = _normalize(embeddings)
  sample = np.arange(m)
  if m > config.max_images_per_landmark:
    # Memory is O(sample²): cluster a seeded sample, then give every other image to the
    # nearest valid centroid if it lies within the threshold.
    rng = np.random.default_rng([config.seed, zlib.crc32(str(landmark).encode())])
    sample = np.sort(rng.choice(m, config.max_images_per_landmark, replace=False))
  flat = cluster_embeddings(x[sample], config.linkage, config.distance_threshold)
  ids, counts = np.unique(flat, return_counts=True)
  valid = [cid for cid, count in zip(ids, counts) if count >= config.min_cluster_size]
  centroids = [_normalize(x[sample][flat == cid].mean(0, keepdims=True))[0] for cid in valid]
  if references is not None and len(references) and centroids:
    similarity = np.stack(centroids) @ _normalize(references).T
    keep = similarity.max(axis=1) >= config.reference_similarity
    valid = [cid for cid, k in zip(valid, keep) if k]
    centroids = [c for c, k in zip(centroids, keep) if k]
  assignment = np.full(m, -1, np.int64)
  for new_id, cid in enumerate(valid):
    assignment[sample[flat == cid]] = new_id
  if len(sample) < m and centroids:
    rest = np.setdiff1d(np.arange(m), sample)
    similarity = x[rest] @ np.stack(centroids).T
    nearest = similarity.argmax(axis=1)
    close = 1.0 - similarity[np.arange(len(rest)), nearest] <= config.distance_threshold
    assignment[rest[close]] = nearest[close]
  if not centroids:
    return LandmarkClusters(landmark, assignment, np.zeros((0, x.shape[1]), np.float32),
                            np.zeros(0, np.int64))
  # Final centroids from every member (sampled and assigned), normalised.
  final = np.stack([_normalize(x[assignment == j].mean(0, keepdims=True))[0]
                    for j in range(len(centroids))])
  sizes = np.bincount(assignment[assignment >= 0], minlength=len(centroids))
  return LandmarkClusters(landmark, assignment, final.astype(np.float32), sizes)


def _clean_one(args):
  return clean_landmark(*args)


@dataclasses.dataclass
class CleaningResult:
  ids: np.ndarray  # every input image id
  landmarks: list  # every input image's landmark id
  keep: np.ndarray  # (N,) bool: image kept in the cleaned dataset
  centroids: np.ndarray  # (C, D) L2-normalised
  centroid_landmarks: list  # (C,) landmark id per centroid
  cluster_sizes: np.ndarray  # (C,)
  landmarks_without_cluster: list  # landmarks that lost every image

  def report(self) -> dict[str, Any]:
    per_landmark = collections.Counter(self.centroid_landmarks)
    all_landmarks = {l for l in self.landmarks if l is not None}
    histogram = collections.Counter(per_landmark.get(l, 0) for l in all_landmarks)
    kept_landmarks = set(np.asarray(self.landmarks, dtype=object)[self.keep].tolist())
    return {
        "images_before": sum(l is not None for l in self.landmarks),
        "images_after": int(self.keep.sum()),
        "non_landmark_images": sum(l is None for l in self.landmarks),
        "landmarks_before": len(all_landmarks), "landmarks_after": len(kept_landmarks),
        "centroids": int(len(self.centroids)),
        "clusters_per_landmark_histogram": {str(k): v for k, v in sorted(histogram.items())},
        "landmarks_without_valid_cluster": sorted(map(str, self.landmarks_without_cluster)),
    }

  def clean_rows(self) -> list[tuple[Hashable, str]]:
    """``(landmark_id, "id id id")`` rows: GLDv2's train_clean.csv format."""
    kept = collections.defaultdict(list)
    for image_id, landmark, keep in zip(self.ids, self.landmarks, self.keep):
      if keep:
        kept[landmark].append(str(image_id))
    return [(landmark, " ".join(images)) for landmark, images in kept.items()]


def clean_dataset(ids: Sequence[str], landmarks: Sequence[Hashable], embeddings: np.ndarray,
                  config: CleaningConfig = CleaningConfig(),
                  references: Mapping[Hashable, np.ndarray] | None = None) -> CleaningResult:
  """Cleans every landmark (non-landmark images, landmark None, are left out)."""
  ids = np.asarray(ids, dtype=object)
  landmarks = list(landmarks)
  groups = collections.defaultdict(list)
  for index, landmark in enumerate(landmarks):
    if landmark is not None:
      groups[landmark].append(index)
  jobs = [(landmark, embeddings[index], config, (references or {}).get(landmark))
          for landmark, index in groups.items()]
  if config.num_workers > 0 and len(jobs) > 1:
    with concurrent.futures.ProcessPoolExecutor(config.num_workers) as pool:
      outcomes = list(pool.map(_clean_one, jobs, chunksize=max(1, len(jobs) // (8 * config.num_workers))))
  else:
    outcomes = [_clean_one(job) for job in jobs]
  keep = np.zeros(len(ids), bool)
  centroids, centroid_landmarks, sizes, without = [], [], [], []
  for (landmark, index), outcome in zip(groups.items(), outcomes):
    keep[np.asarray(index)] = outcome.assignment >= 0
    if len(outcome.centroids) == 0:
      without.append(landmark)
    centroids.append(outcome.centroids)
    centroid_landmarks += [landmark] * len(outcome.centroids)
    sizes.append(outcome.sizes)
  if without:
    logger.warning("%d landmarks have no valid cluster and get no centroid (first: %s)",
                   len(without), ", ".join(map(str, without[:5])))
  dim = embeddings.shape[1]
  return CleaningResult(ids, landmarks, keep,
                        np.concatenate(centroids) if centroids else np.zeros((0, dim), np.float32),
                        centroid_landmarks,
                        np.concatenate(sizes) if sizes else np.zeros(0, np.int64), without)
