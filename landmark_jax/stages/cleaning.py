"""Data cleaning and per-shooting-angle centroids (the paper, §3.3).

Per landmark: near-duplicates removed first (a photo whose cosine similarity to a photo
already kept reaches `near_duplicate_similarity` is "redundant", in the paper's word: the
same view uploaded twice, resized or recompressed, which would count twice toward a
cluster's size and pull its centroid); then agglomerative clustering of its L2-normalised
embeddings on cosine distance,
cut at a distance threshold; clusters with at least `min_cluster_size` images are "valid"
(one per shooting angle); images outside valid clusters are removed from the cleaned
dataset; each valid cluster's centroid is its L2-normalised mean embedding, and its medoid
(the member photo nearest that mean direction) is the cluster's reference photo for
recognition (`CleaningResult.references`). A landmark with
no valid cluster at all keeps one centroid of all its images (or, with
`keep_landmarks_without_cluster=False`, is dropped); either way every landmark that lost
images or was kept whole is a row of the report (`CleaningResult.report`), with the reason.

The clustering itself is SciPy's `scipy.cluster.hierarchy` (C implementation, the
reference for agglomerative clustering); this module prepares the distances, bounds the
memory for very large landmarks and runs landmarks in parallel processes.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import logging
import multiprocessing
import os
import sys
import zlib
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from landmark_jax.errors import ConfigError

logger = logging.getLogger(__name__)

# Why a landmark appears in the report (`LandmarkOutcome.reasons`).
OUTSIDE_CLUSTERS = "outside_clusters"  # some photos in no valid cluster, dropped
BELOW_REFERENCE = "below_reference_similarity"  # some photos in clusters far from the references
KEPT_WHOLE = "no_valid_cluster_kept_whole"  # no valid cluster: one centroid of all photos
DROPPED = "no_valid_cluster_dropped"  # no valid cluster: every photo dropped, no centroid
NEAR_DUPLICATE = "near_duplicates"  # some photos repeat a kept photo of the landmark, dropped


LINKAGES = ("average", "complete", "single")


@dataclasses.dataclass(frozen=True)
class CleaningConfig:
  linkage: str = (
    "average"  # "average", "complete" or "single" (cosine distance needs no centroid linkage)
  )
  distance_threshold: float = 0.5  # cut the dendrogram at this cosine distance (1 − cos)
  min_cluster_size: int = 3  # a cluster with fewer images is noise, not a shooting angle
  reference_similarity: float = 0.5  # with reference images: a valid cluster's centroid must
  #                                    reach this cosine similarity to one of them
  max_images_per_landmark: int = 2000  # above: cluster a seeded sample, assign the rest
  num_workers: int = 0  # landmark-parallel processes (0: in this process)
  seed: int = 0
  # A landmark with no valid cluster (too few photos, too spread out, or every cluster far
  # from its reference images) keeps one centroid, the normalised mean of all its photos,
  # and all its photos: dropping them would remove the landmark from the index, which the
  # paper's "images outside valid clusters are noise" never meant for a whole landmark.
  # False: the strict rule, such a landmark loses every photo and gets no centroid.
  keep_landmarks_without_cluster: bool = True
  # Redundant photos: one of two photos of a landmark at this cosine similarity or more is
  # dropped before clustering (the first in the data's order is kept). 0.995 catches resized
  # and recompressed copies and leaves distinct photos of one view (docs/decisions.md).
  remove_near_duplicates: bool = True
  near_duplicate_similarity: float = 0.995

  def __post_init__(self):
    # A value out of range would cluster quietly into nonsense (min_cluster_size=0 makes
    # every photo a "valid cluster"); named here, it is a one-line error on the command line.
    problems = []
    if self.linkage not in LINKAGES:
      problems.append(f"linkage {self.linkage!r} is not one of {', '.join(LINKAGES)}")
    if not 0 < self.distance_threshold <= 2:
      problems.append(
        f"distance_threshold {self.distance_threshold} is not a cosine distance in (0, 2]"
      )
    if self.min_cluster_size < 1:
      problems.append(f"min_cluster_size {self.min_cluster_size} is not ≥ 1")
    if not -1 < self.near_duplicate_similarity <= 1:
      problems.append(
        f"near_duplicate_similarity {self.near_duplicate_similarity} is not a "
        "cosine similarity in (-1, 1]"
      )
    if not -1 <= self.reference_similarity <= 1:
      problems.append(f"reference_similarity {self.reference_similarity} is not in [-1, 1]")
    if self.max_images_per_landmark < 2:
      problems.append(f"max_images_per_landmark {self.max_images_per_landmark} is not ≥ 2")
    if self.num_workers < 0:
      problems.append(f"num_workers {self.num_workers} is not ≥ 0")
    if problems:
      raise ConfigError("cleaning: " + "; ".join(problems))


@dataclasses.dataclass(frozen=True)
class LandmarkOutcome:
  """What cleaning did to one landmark's photos: one row of the cleaning report."""

  landmark: Hashable
  photos: int
  kept: int
  centroids: int
  valid_clusters: int  # clusters that passed every check (0: kept whole or dropped)
  outside_clusters: int = 0  # dropped photos that were in no valid cluster
  below_reference: int = 0  # dropped photos of clusters the reference check rejected
  clusters_below_reference: int = 0  # clusters the reference check rejected
  near_duplicates: int = 0  # dropped photos that repeat a kept photo of the landmark

  @property
  def dropped(self) -> int:
    return self.photos - self.kept

  @property
  def reasons(self) -> tuple[str, ...]:
    """Reason codes; empty when every photo is in a valid cluster."""
    duplicates = (NEAR_DUPLICATE,) if self.near_duplicates else ()
    if self.valid_clusters == 0:
      return ((KEPT_WHOLE,) if self.kept else (DROPPED,)) + duplicates
    return (
      tuple(
        code
        for code, count in (
          (OUTSIDE_CLUSTERS, self.outside_clusters),
          (BELOW_REFERENCE, self.below_reference),
        )
        if count
      )
      + duplicates
    )

  @property
  def reason(self) -> str:
    return "+".join(self.reasons)

  def explain(self, config: CleaningConfig) -> str:
    """The reasons in words that name the settings to change."""
    clusters = (
      f"cluster of min_cluster_size={config.min_cluster_size} or more photos within "
      f"distance_threshold={config.distance_threshold} ({config.linkage} linkage)"
    )
    below = f"below reference_similarity={config.reference_similarity} to its reference photos"
    duplicates = (
      f"; {self.near_duplicates} near-duplicate photo(s) dropped (cosine ≥ "
      f"near_duplicate_similarity={config.near_duplicate_similarity} to a kept one)"
      if self.near_duplicates
      else ""
    )
    if self.valid_clusters == 0:
      why = (
        f"its {self.clusters_below_reference} cluster(s) were all {below}"
        if self.clusters_below_reference
        else f"no {clusters}"
      )
      photos = (
        f"{self.photos - self.near_duplicates} distinct photos"
        if self.near_duplicates
        else f"{self.photos} photos"
      )
      if self.kept:
        return (
          f"no valid cluster ({why}): kept whole as one centroid of all {photos} "
          f"(keep_landmarks_without_cluster=True){duplicates}"
        )
      return (
        f"no valid cluster ({why}): all {photos} dropped, no centroid "
        f"(keep_landmarks_without_cluster=False){duplicates}"
      )
    parts = []
    if self.outside_clusters:
      parts.append(f"{self.outside_clusters} photo(s) outside every {clusters}")
    if self.below_reference:
      parts.append(
        f"{self.below_reference} photo(s) in {self.clusters_below_reference} cluster(s) {below}"
      )
    if self.near_duplicates:
      parts.append(
        f"{self.near_duplicates} near-duplicate photo(s) (cosine ≥ "
        f"near_duplicate_similarity={config.near_duplicate_similarity} to a kept one)"
      )
    return "dropped: " + "; ".join(parts)


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


def _normalize(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float64)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _mean_direction(x: np.ndarray) -> np.ndarray:
  return _normalize(x.mean(0, keepdims=True))[0]


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
  return (centroids @ _normalize(references).T).max(axis=1) >= min_similarity


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
  x = _normalize(embeddings)
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


def _clean_one(args):
  return clean_landmark(*args)


def _report_order(outcome: LandmarkOutcome) -> tuple:
  """Landmarks that vanished first, then those kept whole, then the most photos dropped."""
  severity = {DROPPED: 0, KEPT_WHOLE: 1}.get(outcome.reasons[0], 2)
  return severity, -outcome.dropped, str(outcome.landmark)


@dataclasses.dataclass
class CleaningResult:
  ids: np.ndarray  # every input image id
  landmarks: list  # every input image's landmark id
  keep: np.ndarray  # (N,) bool: image kept in the cleaned dataset
  centroids: np.ndarray  # (C, D) L2-normalised
  centroid_landmarks: list  # (C,) landmark id per centroid
  cluster_sizes: np.ndarray  # (C,)
  landmarks_without_cluster: list  # no valid cluster: kept whole, or dropped (see outcomes)
  outcomes: list  # one LandmarkOutcome per landmark, in order of first appearance
  config: CleaningConfig  # the settings, named by the report's explanations
  # Each landmark's reference photos for recognition (the index's class references): the
  # reference photos given to `clean_dataset`, else the medoid of each valid cluster.
  references: np.ndarray = None  # (R, D) L2-normalised
  reference_landmarks: list = dataclasses.field(default_factory=list)  # (R,) landmark ids
  references_given: int = 0  # of them, the reference photos given (the rest are medoids)

  @property
  def landmarks_kept_whole(self) -> list:
    return [o.landmark for o in self.outcomes if o.reasons[:1] == (KEPT_WHOLE,)]

  @property
  def landmarks_dropped(self) -> list:
    """Landmarks that lost every photo and have no centroid."""
    return [o.landmark for o in self.outcomes if o.reasons[:1] == (DROPPED,)]

  def affected(self) -> list[LandmarkOutcome]:
    """Every landmark that lost photos or was kept whole, the most serious first."""
    return sorted((o for o in self.outcomes if o.reasons), key=_report_order)

  def report(self) -> dict[str, Any]:
    per_landmark = collections.Counter(self.centroid_landmarks)
    all_landmarks = {l for l in self.landmarks if l is not None}
    histogram = collections.Counter(per_landmark.get(l, 0) for l in all_landmarks)
    kept_landmarks = set(np.asarray(self.landmarks, dtype=object)[self.keep].tolist())
    images_before = sum(l is not None for l in self.landmarks)
    return {
      "images_before": images_before,
      "images_after": int(self.keep.sum()),
      "images_dropped": images_before - int(self.keep.sum()),
      "near_duplicates_dropped": sum(o.near_duplicates for o in self.outcomes),
      "references": len(self.reference_landmarks),
      "references_given": self.references_given,
      "non_landmark_images": sum(l is None for l in self.landmarks),
      "landmarks_before": len(all_landmarks),
      "landmarks_after": len(kept_landmarks),
      "centroids": int(len(self.centroids)),
      "clusters_per_landmark_histogram": {str(k): v for k, v in sorted(histogram.items())},
      "landmarks_without_valid_cluster": sorted(map(str, self.landmarks_without_cluster)),
      "landmarks_kept_whole": sorted(map(str, self.landmarks_kept_whole)),
      "landmarks_dropped": sorted(map(str, self.landmarks_dropped)),
      "settings": dataclasses.asdict(self.config),
      # One row per landmark that lost photos or was kept whole (dropped.csv's rows).
      "affected_landmarks": [
        {
          "landmark_id": str(o.landmark),
          "photos": o.photos,
          "kept": o.kept,
          "dropped": o.dropped,
          "centroids": o.centroids,
          "reason": o.reason,
          "explanation": o.explain(self.config),
        }
        for o in self.affected()
      ],
    }

  def clean_rows(self) -> list[tuple[Hashable, str]]:
    """``(landmark_id, "id id id")`` rows: GLDv2's train_clean.csv format."""
    kept = collections.defaultdict(list)
    for image_id, landmark, keep in zip(self.ids, self.landmarks, self.keep):
      if keep:
        kept[landmark].append(str(image_id))
    return [(landmark, " ".join(images)) for landmark, images in kept.items()]


def _log_summary(result: CleaningResult) -> None:
  # One line: the details are the report's rows, which a log would bury.
  kept_whole, dropped = result.landmarks_kept_whole, result.landmarks_dropped
  if kept_whole or dropped:
    logger.warning(
      "%d of %d landmarks have no valid cluster: %d kept whole as one centroid "
      "of all their photos, %d dropped; the cleaning report lists them",
      len(kept_whole) + len(dropped),
      len(result.outcomes),
      len(kept_whole),
      len(dropped),
    )


# `clean_dataset` reads the embeddings one chunk of whole landmarks at a time (at least this
# many photos, ~128 MB of 512-d float32): memory stays bounded, and a worker gets enough
# work per task that sending the task costs nothing by comparison.
CHUNK_PHOTOS = 65_536


def group_rows(landmarks: Sequence[Hashable]) -> list[tuple[Hashable, np.ndarray]]:
  """``(landmark, its rows in input order)`` per landmark, in order of first appearance;
  non-landmark rows (None) are left out. One stable argsort, not a list per landmark."""
  first_seen = dict.fromkeys(landmarks)  # insertion order: first appearance
  first_seen.pop(None, None)
  code = {landmark: i for i, landmark in enumerate(first_seen)}
  codes = np.fromiter(
    map(code.get, landmarks, itertools.repeat(-1)), np.int64, count=len(landmarks)
  )
  order = np.argsort(codes, kind="stable")
  counts = np.bincount(codes[codes >= 0], minlength=len(code))
  order = order[len(order) - int(counts.sum()) :]  # the -1s (None) sort first
  return list(zip(first_seen, np.split(order, np.cumsum(counts)[:-1])))


def _chunks(jobs: Sequence[tuple], chunk_photos: int) -> list[slice]:
  """Consecutive runs of whole landmarks (jobs: landmark, rows, …) of at least
  `chunk_photos` photos (the last one may have fewer)."""
  chunks, start, photos = [], 0, 0
  for i, job in enumerate(jobs):
    photos += len(job[1])
    if photos >= chunk_photos:
      chunks.append(slice(start, i + 1))
      start, photos = i + 1, 0
  if start < len(jobs):
    chunks.append(slice(start, len(jobs)))
  return chunks


def _clean_chunk(
  embeddings: np.ndarray, jobs: Sequence[tuple], config: CleaningConfig
) -> list[tuple[LandmarkClusters, np.ndarray]]:
  """`clean_landmark` of each ``(landmark, rows, references)``, with its medoids' embeddings
  (so the caller never reads them back from a memory map), the chunk's rows read from
  `embeddings` (a memory map, say) in one sorted pass."""
  rows = np.concatenate([job[1] for job in jobs])
  order = np.argsort(rows, kind="stable")
  block = np.empty((len(rows), embeddings.shape[1]), embeddings.dtype)
  block[order] = embeddings[rows[order]]
  results, start = [], 0
  for landmark, landmark_rows, references in jobs:
    stop = start + len(landmark_rows)
    found = clean_landmark(landmark, block[start:stop], config, references)
    results.append((found, block[start:stop][found.medoids]))
    start = stop
  return results


# A worker process's view of the embeddings, opened once by `_open_in_worker`.
_WORKER: dict[str, Any] = {}


class _FileRows:
  """Rows of a C-order ``.npy`` read with `os.preadv`, one call per run of consecutive rows:
  unlike a memory map, reading leaves no file pages in the worker's resident memory (the
  kernel maps 64 KB around every faulting row, so scattered rows would map the whole
  file)."""

  def __init__(self, path: str, offset: int, shape: tuple[int, int], dtype: np.dtype):
    self._fd = os.open(path, os.O_RDONLY)
    self._offset, self.shape, self.dtype = offset, shape, dtype
    self._row_bytes = shape[1] * dtype.itemsize

  def __getitem__(self, rows: np.ndarray) -> np.ndarray:
    """The rows at sorted indices `rows`."""
    out = np.empty((len(rows), self.shape[1]), self.dtype)
    view = memoryview(out).cast("B")
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
      wanted = (stop - start) * self._row_bytes
      got = os.preadv(
        self._fd,
        [view[start * self._row_bytes : stop * self._row_bytes]],
        self._offset + int(rows[start]) * self._row_bytes,
      )
      if got != wanted:
        raise OSError(f"short read of embeddings: {got} of {wanted} bytes")
    return out


def _shared_handle(embeddings: np.ndarray):
  """How a worker opens `embeddings` without receiving a copy: a memory-mapped ``.npy``
  by its file, else one copy in shared memory (returned, to be released by the caller)."""
  if isinstance(embeddings, np.memmap) and embeddings.filename and embeddings.flags.c_contiguous:
    return (
      "file",
      str(embeddings.filename),
      embeddings.offset,
      embeddings.shape,
      embeddings.dtype.str,
    ), None
  from multiprocessing import shared_memory

  array = np.ascontiguousarray(embeddings)
  memory = shared_memory.SharedMemory(create=True, size=max(1, array.nbytes))
  np.ndarray(array.shape, array.dtype, buffer=memory.buf)[...] = array
  return ("shared", memory.name, 0, array.shape, array.dtype.str), memory


def _open_in_worker(handle) -> None:
  kind, name, offset, shape, dtype = handle
  if kind == "file":
    _WORKER["embeddings"] = _FileRows(name, offset, tuple(shape), np.dtype(dtype))
  else:
    from multiprocessing import shared_memory

    # track=False: the parent created the block and unlinks it; a worker that registered it
    # too would have the resource tracker unlink it (or warn) when the worker exits.
    memory = (
      shared_memory.SharedMemory(name=name, track=False)
      if sys.version_info >= (3, 13)
      else shared_memory.SharedMemory(name=name)
    )
    _WORKER["memory"] = memory  # keeps the mapping alive
    _WORKER["embeddings"] = np.ndarray(tuple(shape), np.dtype(dtype), buffer=memory.buf)


def _clean_chunk_in_worker(args) -> list[tuple[LandmarkClusters, np.ndarray]]:
  jobs, config = args
  return _clean_chunk(_WORKER["embeddings"], jobs, config)


def _clean_groups(
  embeddings: np.ndarray, jobs: list[tuple], config: CleaningConfig, chunk_photos: int
) -> list[tuple[LandmarkClusters, np.ndarray]]:
  """`clean_landmark` of every job, chunk by chunk, in `config.num_workers` processes (0:
  here). Workers read the embeddings themselves (`_shared_handle`): a task is row indices."""
  chunks = [jobs[part] for part in _chunks(jobs, chunk_photos)]
  if config.num_workers <= 0 or len(chunks) <= 1:
    return [result for chunk in chunks for result in _clean_chunk(embeddings, chunk, config)]
  handle, memory = _shared_handle(embeddings)
  try:
    # Spawned, not forked: a fork of a process running JAX's threads can deadlock, and a
    # forked worker would start out holding (and be measured with) all of this process's
    # memory. A spawned one imports NumPy and this module, and opens the embeddings.
    with concurrent.futures.ProcessPoolExecutor(
      config.num_workers,
      mp_context=multiprocessing.get_context("spawn"),
      initializer=_open_in_worker,
      initargs=(handle,),
    ) as pool:
      return [
        result
        for results in pool.map(_clean_chunk_in_worker, [(chunk, config) for chunk in chunks])
        for result in results
      ]
  finally:
    if memory is not None:
      memory.close()
      memory.unlink()


def clean_dataset(
  ids: Sequence[str],
  landmarks: Sequence[Hashable],
  embeddings: np.ndarray,
  config: CleaningConfig = CleaningConfig(),
  references: Mapping[Hashable, np.ndarray] | None = None,
  *,
  chunk_photos: int = CHUNK_PHOTOS,
) -> CleaningResult:
  """Cleans every landmark (non-landmark images, landmark None, are left out).

  `references`: landmark id → embeddings of its reference photos, checked against each
  valid cluster (`CleaningConfig.reference_similarity`) and kept as the landmark's class
  references; a landmark without any gets its clusters' medoids instead.

  `embeddings` may be a memory map (``np.load(..., mmap_mode="r")``): landmarks are cleaned
  in chunks of about `chunk_photos` photos, each read when its turn comes, so memory holds
  one chunk per process, not a copy of every landmark's photos. With
  `config.num_workers` > 0, chunks go to that many spawned processes, which read the
  memory-mapped file's rows themselves (an in-memory array is put in shared memory once);
  a script that calls this needs the ``if __name__ == "__main__":`` guard spawn requires.
  The result is the same in every case: each landmark is cleaned alone, from the same rows."""
  ids = np.asarray(ids, dtype=object)
  landmarks = list(landmarks)
  groups = group_rows(landmarks)
  jobs = [(landmark, rows, (references or {}).get(landmark)) for landmark, rows in groups]
  cleaned = _clean_groups(embeddings, jobs, config, chunk_photos)
  outcomes = [outcome for outcome, _ in cleaned]
  keep = np.zeros(len(ids), bool)
  centroids, centroid_landmarks, sizes, chosen, chosen_landmarks = [], [], [], [], []
  given_count = 0
  for (landmark, index), (outcome, medoid_embeddings) in zip(groups, cleaned):
    keep[index] = outcome.assignment >= 0
    centroids.append(outcome.centroids)
    centroid_landmarks += [landmark] * len(outcome.centroids)
    sizes.append(outcome.sizes)
    given = (references or {}).get(landmark)
    mine = given if given is not None and len(given) else medoid_embeddings
    if len(outcome.centroids):  # a dropped landmark leaves the index: no references
      chosen.append(_normalize(mine).astype(np.float32))
      chosen_landmarks += [landmark] * len(mine)
      given_count += len(mine) if mine is given else 0
  dim = embeddings.shape[1]
  result = CleaningResult(
    ids,
    landmarks,
    keep,
    np.concatenate(centroids) if centroids else np.zeros((0, dim), np.float32),
    centroid_landmarks,
    np.concatenate(sizes) if sizes else np.zeros(0, np.int64),
    [o.landmark for o in outcomes if o.outcome.valid_clusters == 0],
    [o.outcome for o in outcomes],
    config,
    np.concatenate(chosen) if chosen else np.zeros((0, dim), np.float32),
    chosen_landmarks,
    given_count,
  )
  _log_summary(result)
  return result
