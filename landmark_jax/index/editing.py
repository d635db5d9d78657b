"""Adding and removing landmarks in a built index, without retraining.

New landmarks' photos are embedded with the index's model, cleaned and clustered into
per-angle centroids by the same rules as the training set, and merged into the index; the
index is then rebuilt with its own configuration (a rebuild keeps ScaNN's partitions and
recall as good as a fresh build, which an in-place insert into a trained tree would not).
The label map grows by appending, so existing labels keep their meaning, and the manifest
records every edit.
"""

from __future__ import annotations

import time
from typing import Hashable, Iterable, Mapping

import numpy as np

from landmark_jax.data import ImageSource, LabelMap
from landmark_jax.index.centroid_index import CentroidIndex
from landmark_jax.index.cleaning import CleaningConfig, clean_dataset
from landmark_jax.index.landmarks import LandmarkInfo


def _edited(index: CentroidIndex, centroids, labels, sizes, label_map, landmarks, edit
            ) -> CentroidIndex:
  metadata = {k: v for k, v in index.metadata.items() if k != "created"}
  metadata["edits"] = [*index.metadata.get("edits", []),
                       {**edit, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]
  return CentroidIndex.build(centroids, labels, index.config, cluster_sizes=sizes,
                             label_map=label_map, metadata=metadata, landmarks=landmarks)


def add_landmarks(index: CentroidIndex, embed_source, source: ImageSource,
                  cleaning: CleaningConfig = CleaningConfig(),
                  landmarks: Mapping[Hashable, LandmarkInfo] | None = None) -> CentroidIndex:
  """A new index with the landmarks of `source` added.

  Args:
    embed_source: source → (ids, dense labels, unit embeddings), e.g.
      `PhotoEmbedder(trained).embed_source` with the index's own model.
    source: photos of the new landmarks (its non-landmark photos, if any, are ignored).
    landmarks: names/coordinates of the new landmarks.

  Raises:
    ValueError: a landmark that the index already has (remove it first), or one whose photos
      form no valid cluster.
  """
  if index.label_map is None:
    raise ValueError("the index has no label map; rebuild it with `build-index`")
  ids, labels, embeddings = embed_source(source)
  landmark_ids = source.label_map.to_landmark_ids(labels)
  present = set(index.label_map.to_landmark_ids(np.unique(index.labels)))
  clash = sorted({str(l) for l in landmark_ids if l is not None and l in present})
  if clash:
    raise ValueError(f"landmark(s) already in the index: {', '.join(clash)}; remove them first")
  result = clean_dataset(ids, landmark_ids, embeddings, cleaning)
  if result.landmarks_without_cluster:
    raise ValueError("no valid cluster (too few similar photos under the cleaning rules) for: "
                     + ", ".join(map(str, result.landmarks_without_cluster)))
  new_ids = [l for l in dict.fromkeys(result.centroid_landmarks)
             if l not in index.label_map.landmark_ids]
  label_map = LabelMap(index.label_map.landmark_ids + tuple(new_ids),
                       index.label_map.stage_sizes + ((index.label_map.num_classes + len(new_ids),)
                                                      if new_ids else ()))
  new_labels = np.array([label_map.to_label(l) for l in result.centroid_landmarks], np.int64)
  merged = {**index.landmarks, **(landmarks or {})}
  return _edited(index, np.concatenate([index.centroids, result.centroids]),
                 np.concatenate([index.labels, new_labels]),
                 np.concatenate([index.cluster_sizes, result.cluster_sizes]), label_map, merged,
                 {"op": "add", "landmarks": [str(l) for l in dict.fromkeys(result.centroid_landmarks)],
                  "centroids": int(len(result.centroids)), "images": int(result.keep.sum())})


def remove_landmarks(index: CentroidIndex, landmark_ids: Iterable[Hashable]) -> CentroidIndex:
  """A new index without the centroids (and metadata) of `landmark_ids`. Their labels stay
  reserved in the label map, so every other label keeps its meaning."""
  if index.label_map is None:
    raise ValueError("the index has no label map; rebuild it with `build-index`")
  landmark_ids = list(landmark_ids)
  labels = {index.label_map.to_label(l) for l in landmark_ids}  # KeyError names unknown ids
  keep = ~np.isin(index.labels, list(labels))
  if keep.all():
    raise ValueError(f"no centroids for landmark(s) {landmark_ids} in the index")
  if not keep.any():
    raise ValueError("removing these landmarks would leave the index empty")
  landmarks = {k: v for k, v in index.landmarks.items() if k not in set(landmark_ids)}
  return _edited(index, index.centroids[keep], index.labels[keep], index.cluster_sizes[keep],
                 index.label_map, landmarks,
                 {"op": "remove", "landmarks": [str(l) for l in landmark_ids],
                  "centroids": int((~keep).sum())})
