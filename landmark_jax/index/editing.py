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
from landmark_jax.index.landmarks import (
  COLUMNS,
  LandmarkInfo,
  describe,
  find_landmark,
  merge_metadata,
  refuse_unmatched_rows,
)
from landmark_jax.index.local_features import LocalFeatureStore
from landmark_jax.index.references import References


def _to_stderr(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def locked_index(
  directory: str | os.PathLike,
  *,
  expected_dim: int | None = None,
  timeout: float | None = None,
  on_wait: Callable[[str], None] | None = _to_stderr,
) -> Iterator[CentroidIndex]:
  """The index at `directory`, loaded under its write lock, which is held until the block
  ends: save the edited index inside the block.

  A second editor waits (saying so through `on_wait`) and then reads the first one's
  result, so both edits land. `timeout` bounds the wait (`folders.FolderBusyError`).
  """
  with exclusive_writer(directory, timeout=timeout, on_wait=on_wait):
    yield CentroidIndex.load(directory, expected_dim=expected_dim)


def edit_index(
  directory: str | os.PathLike, edit: Callable[[CentroidIndex], CentroidIndex]
) -> tuple[CentroidIndex, CentroidIndex]:
  """The index at `directory` edited by `edit` and saved, under its write lock from loading
  to saving (`locked_index`); returns it as it was and as it is now."""
  with locked_index(directory) as index:
    edited = edit(index)
    if edited is not index:  # `edit` found nothing to change: no new version
      edited.save(directory)
  return index, edited


def _edited(
  index: CentroidIndex,
  centroids,
  labels,
  sizes,
  label_map,
  landmarks,
  edit,
  validation,
  references: References | None,
  local_features: LocalFeatureStore | None,
) -> CentroidIndex:
  metadata = {k: v for k, v in index.metadata.items() if k != "created"}
  metadata["edits"] = [
    *index.metadata.get("edits", []),
    {**edit, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
  ]
  return CentroidIndex.build(
    centroids,
    labels,
    index.config,
    cluster_sizes=sizes,
    label_map=label_map,
    metadata=metadata,
    landmarks=landmarks,
    references=references,
    local_features=local_features,
  ).with_validation(validation)


def refuse_present(index: CentroidIndex, landmark_ids: Iterable[Hashable]) -> None:
  """Raises DataError if any of `landmark_ids` already has centroids in the index."""
  if index.label_map is None:
    raise DataError("the index has no label map; rebuild it with `build-index`")
  present = set(index.label_map.to_landmark_ids(np.unique(index.labels)))
  clash = [l for l in dict.fromkeys(landmark_ids) if l is not None and l in present]
  if clash:
    raise DataError(
      f"the index already has landmark(s) {', '.join(describe(l, index.landmarks) for l in clash)}"
      ": give the new landmarks ids the index does not use (their folder names, or the "
      "landmark_id column); to replace a landmark's photos, remove it first"
    )


def add_centroids(
  index: CentroidIndex,
  centroids: np.ndarray,
  centroid_landmarks: Sequence,
  cluster_sizes: np.ndarray,
  landmarks: Mapping[Hashable, LandmarkInfo] | None,
  edit: dict,
  *,
  update_metadata: bool = False,
  reference_vectors: np.ndarray | None = None,
  reference_landmarks: Sequence = (),
  local_features: LocalFeatureStore | None = None,
  local_feature_landmarks: Sequence = (),
) -> CentroidIndex:
  """A new index with centroids of new landmarks added (`centroid_landmarks`: each
  centroid's landmark id); unknown ids are appended to the label map. `landmarks` (a
  landmarks CSV) describes the new landmarks by id or by name; existing landmarks keep
  their metadata unless `update_metadata` (`index.landmarks.merge_metadata`). The new
  landmarks' class references (`reference_vectors`, one landmark id each in
  `reference_landmarks`) join the index's, when it keeps references. Their photos' local
  features (`local_features`, one landmark id per photo in `local_feature_landmarks`,
  which replace the store's own labels) join the index's store, or become it.

  Raises:
    DataError: a landmark that the index already has; local features of a landmark
      without centroids, or of another extractor than the index's.
  """
  refuse_present(index, centroid_landmarks)
  new_ids = [l for l in dict.fromkeys(centroid_landmarks) if l not in index.label_map.landmark_ids]
  label_map = LabelMap(
    index.label_map.landmark_ids + tuple(new_ids),
    index.label_map.stage_sizes
    + ((index.label_map.num_classes + len(new_ids),) if new_ids else ()),
  )
  new_labels = np.array([label_map.to_label(l) for l in centroid_landmarks], np.int64)
  merge = merge_metadata(
    index.landmarks,
    index.label_map.to_landmark_ids(np.unique(index.labels)),
    dict.fromkeys(centroid_landmarks),
    landmarks,
    update_existing=update_metadata,
  )
  references = index.references
  if references is not None and reference_vectors is not None and len(reference_vectors):
    references = references.joined(
      References(reference_vectors, [label_map.to_label(l) for l in reference_landmarks])
    )
  return _edited(
    index,
    np.concatenate([index.centroids, centroids]),
    np.concatenate([index.labels, new_labels]),
    np.concatenate([index.cluster_sizes, cluster_sizes]),
    label_map,
    merge.landmarks,
    {
      "op": "add",
      "landmarks": [str(l) for l in dict.fromkeys(centroid_landmarks)],
      **edit,
      "metadata": merge.summary(),
    },
    index.validation,
    references,
    _joined_local_features(index, label_map, new_labels, local_features, local_feature_landmarks),
  )


def _joined_local_features(
  index: CentroidIndex,
  label_map: LabelMap,
  new_labels: np.ndarray,
  store: LocalFeatureStore | None,
  photo_landmarks: Sequence,
) -> LocalFeatureStore | None:
  """The index's store with `store`'s photos after its own, labelled as the new centroids
  are (by landmark id, through the grown label map)."""
  if store is None:
    return index.local_features
  if len(photo_landmarks) != len(store):
    raise ValueError(f"{len(photo_landmarks)} landmark ids for {len(store)} photos' local features")
  labels = np.array([label_map.to_label(l) for l in photo_landmarks], np.int64)
  stray = np.setdiff1d(labels, np.concatenate([index.labels, new_labels]))
  if len(stray):
    raise DataError(
      f"local features of landmark(s) "
      f"{', '.join(map(str, label_map.to_landmark_ids(stray)))}, which have no centroids"
    )
  store = store.relabelled(labels)
  if index.local_features is None:
    return store
  try:
    return index.local_features.joined(store)
  except ValueError as e:
    raise DataError(
      f"the new landmarks' local features do not fit the index's ({e}): extract them with "
      "the extractor the index keeps"
    ) from None


def remove_landmarks(index: CentroidIndex, landmarks: Iterable[Hashable]) -> CentroidIndex:
  """A new index without the centroids (and metadata) of `landmarks`, each named by its id
  or its name (`index.landmarks.find_landmark`). Their labels stay reserved in the label
  map, so every other label keeps its meaning; their photos leave the stored validation
  set (neither a known landmark nor a non-landmark photo any more).

  Raises:
    DataError: a name or id the index does not have (with the closest ones), or removing
      every landmark.
  """
  if index.label_map is None:
    raise DataError("the index has no label map; rebuild it with `build-index`")
  present = index.label_map.to_landmark_ids(np.unique(index.labels))
  landmark_ids = list(
    dict.fromkeys(find_landmark(str(l), present, index.landmarks) for l in landmarks)
  )
  labels = [index.label_map.to_label(l) for l in landmark_ids]
  keep = ~np.isin(index.labels, labels)
  if not keep.any():
    raise DataError("removing these landmarks would leave the index empty")
  removed = set(landmark_ids)
  kept_metadata = {k: v for k, v in index.landmarks.items() if k not in removed}
  validation = index.validation
  if validation is not None:
    validation = validation.without_landmarks(removed)
  references = index.references
  if references is not None:
    references = references.without_labels(labels)
  local_features = index.local_features
  if local_features is not None:
    local_features = local_features.without_labels(labels)
  return _edited(
    index,
    index.centroids[keep],
    index.labels[keep],
    index.cluster_sizes[keep],
    index.label_map,
    kept_metadata,
    {"op": "remove", "landmarks": [str(l) for l in landmark_ids], "centroids": int((~keep).sum())},
    validation,
    references,
    local_features,
  )


def update_landmarks(
  index: CentroidIndex,
  landmarks: Mapping[Hashable, LandmarkInfo],
  *,
  ignore_unmatched: bool = False,
  csv_name: str = "the landmarks CSV",
  fields: Sequence[str] = COLUMNS[1:],
) -> CentroidIndex:
  """The index with its landmarks' names, coordinates and categories replaced by the rows
  of `landmarks` that describe them (`merge_metadata`: by a folder landmark's id as name,
  else by id); centroids, labels and η are untouched, so nothing is rebuilt. A row that
  describes no landmark of the index is refused, or left out with a warning with
  `ignore_unmatched` (`refuse_unmatched_rows`, naming `csv_name`). `fields`: the
  `LandmarkInfo` fields the CSV has columns for; the others are kept. When every row says
  what its landmark already holds, the index itself is returned (nothing to save).

  Raises:
    DataError: a row describes no landmark of the index (without `ignore_unmatched`), no
      row describes one, or two landmarks would share a name.
  """
  if index.label_map is None:
    raise DataError("the index has no label map; rebuild it with `build-index`")
  present = index.label_map.to_landmark_ids(np.unique(index.labels))
  merge = merge_metadata(
    index.landmarks, present, [], landmarks, update_existing=True, fields=fields
  )
  refuse_unmatched_rows(merge.unused, csv_name, ignore_unmatched=ignore_unmatched)
  if not merge.updated and merge.unchanged:
    return index  # every row says what its landmark already holds: rerunning is harmless
  if not merge.updated:
    raise DataError(
      "no row of the landmarks CSV describes a landmark of the index (by its id, "
      "or by its name for a landmark added from a folder)"
    )
  edit = {
    "op": "metadata",
    "landmarks": [str(l) for l in merge.updated],
    "metadata": merge.summary(),
    "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
  }
  return index.with_landmarks(merge.landmarks).with_metadata(
    edits=[*index.metadata.get("edits", []), edit]
  )
