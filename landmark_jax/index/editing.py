"""Editing a built index: adding new landmarks' centroids, removing landmarks.

The index is rebuilt with its own configuration (a rebuild keeps ScaNN's partitions and
recall as good as a fresh build, which an in-place insert into a trained tree would not).
The label map grows by appending, so existing labels keep their meaning, and the manifest
records every edit. Turning photos into centroids is an offline stage
(`landmark_jax.stages.new_landmarks`). Every edit of a saved index (add, remove, storing a
calibrated η) goes through `locked_index`, so concurrent editors take turns and none loses
another's change.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from typing import Callable, Hashable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from landmark_jax.data import LabelMap
from landmark_jax.errors import DataError
from landmark_jax.folders import exclusive_writer
from landmark_jax.index.centroid_index import CentroidIndex
from landmark_jax.index.landmarks import LandmarkInfo


def _to_stderr(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def locked_index(directory: str | os.PathLike, *, expected_dim: int | None = None,
                 timeout: float | None = None,
                 on_wait: Callable[[str], None] | None = _to_stderr) -> Iterator[CentroidIndex]:
  """The index at `directory`, loaded under its write lock, which is held until the block
  ends: save the edited index inside the block.

  A second editor waits (saying so through `on_wait`) and then reads the first one's
  result, so both edits land. `timeout` bounds the wait (`folders.FolderBusyError`).
  """
  with exclusive_writer(directory, timeout=timeout, on_wait=on_wait):
    yield CentroidIndex.load(directory, expected_dim=expected_dim)


def _edited(index: CentroidIndex, centroids, labels, sizes, label_map, landmarks, edit
            ) -> CentroidIndex:
  metadata = {k: v for k, v in index.metadata.items() if k != "created"}
  metadata["edits"] = [*index.metadata.get("edits", []),
                       {**edit, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]
  return CentroidIndex.build(centroids, labels, index.config, cluster_sizes=sizes,
                             label_map=label_map, metadata=metadata, landmarks=landmarks)


def add_centroids(index: CentroidIndex, centroids: np.ndarray, centroid_landmarks: Sequence,
                  cluster_sizes: np.ndarray, landmarks: Mapping[Hashable, LandmarkInfo] | None,
                  edit: dict) -> CentroidIndex:
  """A new index with centroids of new landmarks added (`centroid_landmarks`: each
  centroid's landmark id); unknown ids are appended to the label map.

  Raises:
    DataError: a landmark that the index already has (remove it first).
  """
  if index.label_map is None:
    raise DataError("the index has no label map; rebuild it with `build-index`")
  present = set(index.label_map.to_landmark_ids(np.unique(index.labels)))
  clash = sorted({str(l) for l in centroid_landmarks if l in present})
  if clash:
    raise DataError(f"landmark(s) already in the index: {', '.join(clash)}; remove them first")
  new_ids = [l for l in dict.fromkeys(centroid_landmarks)
             if l not in index.label_map.landmark_ids]
  label_map = LabelMap(index.label_map.landmark_ids + tuple(new_ids),
                       index.label_map.stage_sizes + ((index.label_map.num_classes + len(new_ids),)
                                                      if new_ids else ()))
  new_labels = np.array([label_map.to_label(l) for l in centroid_landmarks], np.int64)
  merged = {**index.landmarks, **(landmarks or {})}
  return _edited(index, np.concatenate([index.centroids, centroids]),
                 np.concatenate([index.labels, new_labels]),
                 np.concatenate([index.cluster_sizes, cluster_sizes]), label_map, merged,
                 {"op": "add", "landmarks": [str(l) for l in dict.fromkeys(centroid_landmarks)],
                  **edit})


def remove_landmarks(index: CentroidIndex, landmark_ids: Iterable[Hashable]) -> CentroidIndex:
  """A new index without the centroids (and metadata) of `landmark_ids`. Their labels stay
  reserved in the label map, so every other label keeps its meaning."""
  if index.label_map is None:
    raise DataError("the index has no label map; rebuild it with `build-index`")
  landmark_ids = list(landmark_ids)
  labels = {index.label_map.to_label(l) for l in landmark_ids}  # KeyError names unknown ids
  keep = ~np.isin(index.labels, list(labels))
  if keep.all():
    raise DataError(f"no centroids for landmark(s) {landmark_ids} in the index")
  if not keep.any():
    raise DataError("removing these landmarks would leave the index empty")
  landmarks = {k: v for k, v in index.landmarks.items() if k not in set(landmark_ids)}
  return _edited(index, index.centroids[keep], index.labels[keep], index.cluster_sizes[keep],
                 index.label_map, landmarks,
                 {"op": "remove", "landmarks": [str(l) for l in landmark_ids],
                  "centroids": int((~keep).sum())})
