"""The cleaning section of a run's config (`CleaningConfig`): how each landmark's photos are
clustered into shooting angles. Plain data: it imports nothing of the package but its errors."""

from __future__ import annotations

import dataclasses

from landmark_jax.errors import ConfigError

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
