"""Adding landmarks to a built index from their photos, without retraining.

The new landmarks' photos are embedded with the index's model, cleaned and clustered into
per-angle centroids by the same rules as the training set (`cleaning`), and merged into the
index (`landmark_jax.index.editing.add_centroids`).
"""

from __future__ import annotations

from typing import Callable, Hashable, Mapping

from landmark_jax.data import ImageSource
from landmark_jax.errors import DataError
from landmark_jax.index.centroid_index import CentroidIndex
from landmark_jax.index.editing import add_centroids
from landmark_jax.index.landmarks import LandmarkInfo
from landmark_jax.stages.cleaning import CleaningConfig, clean_dataset


def add_landmarks(index: CentroidIndex, embed_source: Callable, source: ImageSource,
                  cleaning: CleaningConfig = CleaningConfig(),
                  landmarks: Mapping[Hashable, LandmarkInfo] | None = None) -> CentroidIndex:
  """A new index with the landmarks of `source` added.

  Args:
    embed_source: source → its embedded photos (``.ids``, ``.landmark_ids()``, unit
      ``.embeddings``), e.g. `PhotoEmbedder(trained).embed_source` with the index's model.
    source: photos of the new landmarks (its non-landmark photos, if any, are ignored).
    landmarks: names/coordinates of the new landmarks.

  Raises:
    DataError: a landmark that the index already has (remove it first), or one whose photos
      form no valid cluster.
  """
  if index.label_map is None:
    raise DataError("the index has no label map; rebuild it with `build-index`")
  present = set(index.label_map.to_landmark_ids(index.labels))
  clash = sorted({str(l) for l in source.landmark_ids() if l is not None and l in present})
  if clash:  # before embedding: it is the slow part
    raise DataError(f"landmark(s) already in the index: {', '.join(clash)}; remove them first")
  embedded = embed_source(source)
  landmark_ids = embedded.landmark_ids()
  result = clean_dataset(embedded.ids, landmark_ids, embedded.embeddings, cleaning)
  if result.landmarks_without_cluster:
    raise DataError(
        "no valid cluster (fewer than min_cluster_size="
        f"{cleaning.min_cluster_size} photos within distance_threshold="
        f"{cleaning.distance_threshold} of each other) for: "
        + ", ".join(map(str, result.landmarks_without_cluster))
        + "; add photos, or loosen the cleaning rules (e.g. min_cluster_size=1)")
  return add_centroids(index, result.centroids, result.centroid_landmarks, result.cluster_sizes,
                       landmarks, {"centroids": int(len(result.centroids)),
                                   "images": int(result.keep.sum())})
