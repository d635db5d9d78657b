"""What cleaning did, in figures and words: one `LandmarkOutcome` per landmark (with the
reasons it lost photos, explained by the settings to change) and the `CleaningResult` of a
whole dataset (its report and its train_clean.csv rows)."""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Any, Hashable

import numpy as np

from landmark_jax.cleaning.config import CleaningConfig

logger = logging.getLogger(__name__)

# Why a landmark appears in the report (`LandmarkOutcome.reasons`).
OUTSIDE_CLUSTERS = "outside_clusters"  # some photos in no valid cluster, dropped


BELOW_REFERENCE = "below_reference_similarity"  # some photos in clusters far from the references


KEPT_WHOLE = "no_valid_cluster_kept_whole"  # no valid cluster: one centroid of all photos


DROPPED = "no_valid_cluster_dropped"  # no valid cluster: every photo dropped, no centroid


NEAR_DUPLICATE = "near_duplicates"  # some photos repeat a kept photo of the landmark, dropped


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


def report_order(outcome: LandmarkOutcome) -> tuple:
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
    return sorted((o for o in self.outcomes if o.reasons), key=report_order)

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


def log_summary(result: CleaningResult) -> None:
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
