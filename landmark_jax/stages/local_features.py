"""``landmark-jax local-features``: store, in an index, the local features of a few reference
photos per landmark and the extractor that described them, so that recognition can verify
the answers whose score is uncertain (`recognize.verifier`).

Which photos: per landmark, those that stand for it best and differently — the photo of each
class reference first (the cleaning's medoid of each shooting angle: a reference is a
photo's embedding, so its photo is the one whose embedding equals it), then the photo
nearest each centroid not yet taken, then the rest by their similarity to the landmark's
centroids — up to `per_landmark` photos (4 by default: the measurement in
docs/benchmarks.md, "Verified answers"). The extractor is the DELF-style one
(`baselines.delf`): its attention head trained and its PCA fitted on the landmark photos
of the training source, on the recognizer's own backbone.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from landmark_jax.baselines.delf.config import DelfConfig
from landmark_jax.baselines.delf.retrieval import extract_source, fit_extractor, landmark_photos
from landmark_jax.baselines.delf.stored import extractor_arrays
from landmark_jax.data import ImageSource
from landmark_jax.embedding import EmbeddedPhotos
from landmark_jax.errors import DataError
from landmark_jax.index.centroid_index import CentroidIndex
from landmark_jax.index.editing import locked_index
from landmark_jax.index.local_features import LocalFeatureStore
from landmark_jax.index.provenance import check_same_model

logger = logging.getLogger(__name__)

DEFAULT_PER_LANDMARK = 4


def reference_photos(
  index: CentroidIndex, embedded: EmbeddedPhotos, index_labels: np.ndarray, per_landmark: int
) -> list[tuple[int, int]]:
  """(row of `embedded`, index label) of the photos to store, each landmark's best first (see
  the module); `index_labels` gives each embedded photo's index label (-1: not in the
  index)."""
  if per_landmark < 1:
    raise ValueError(f"store at least one photo per landmark, got {per_landmark}")
  chosen = []
  for label in np.unique(index.labels):
    rows = np.flatnonzero(index_labels == label)
    if not len(rows):
      continue
    vectors = embedded.embeddings[rows].astype(np.float32)
    centroids = index.centroids[index.labels == label].astype(np.float32)
    anchors = []  # the vectors whose nearest photo comes first, in order
    if index.references is not None:
      anchors += list(index.references.vectors[index.references.labels == label])
    sizes = getattr(index, "cluster_sizes", None)
    order = np.argsort(-sizes[index.labels == label], kind="stable") if sizes is not None else None
    anchors += list(centroids if order is None else centroids[order])
    taken: list[int] = []
    for anchor in anchors:
      similarity = vectors @ np.asarray(anchor, np.float32)
      similarity[taken] = -np.inf
      if len(taken) < len(rows):
        taken.append(int(np.argmax(similarity)))
    rest = np.argsort(-(vectors @ centroids.T).max(axis=1), kind="stable")
    taken += [int(r) for r in rest if int(r) not in taken]
    chosen += [(int(rows[r]), int(label)) for r in taken[:per_landmark]]
  return chosen


def build_local_features(
  trained,
  index: CentroidIndex,
  source: ImageSource,
  config: DelfConfig,
  *,
  per_landmark: int = DEFAULT_PER_LANDMARK,
  embedded: EmbeddedPhotos | None = None,
  seed: int = 0,
  progress: bool = True,
) -> LocalFeatureStore:
  """The local-feature store for `index` from the landmark photos of `source` (the
  training photos): the extractor learnt from them, and `reference_photos` described."""
  from landmark_jax.recognize.embedder import PhotoEmbedder

  photos = landmark_photos(source)
  label_map = index.label_map or trained.label_map
  if embedded is None:
    embedded = PhotoEmbedder(trained).embed_source(photos, read_exif=False)
  known = {public: label for label, public in _index_landmarks(index, label_map).items()}
  index_labels = np.array([known.get(str(l), -1) for l in embedded.landmark_ids()], np.int64)
  if not (index_labels >= 0).any():
    raise DataError(
      "none of the photos is of a landmark of the index: give the photos the index was "
      "built from (its training photos)"
    )
  chosen = reference_photos(index, embedded, index_labels, per_landmark)
  extractor, *_ = fit_extractor(trained, photos, config, progress=progress, seed=seed)
  position = {str(record_id): i for i, record_id in enumerate(photos.ids)}
  wanted = [position[str(embedded.ids[row])] for row, _ in chosen]
  positions, features, skipped = extract_source(
    extractor, photos.subset(wanted), desc="local features", progress=progress
  )
  if skipped:
    logger.warning("%d reference photos could not be read: %s", len(skipped), ", ".join(skipped))
  arrays, settings = extractor_arrays(extractor)
  return LocalFeatureStore.from_float(
    [f.keypoints for f in features],
    [f.descriptors for f in features],
    [chosen[p][1] for p in positions],
    [str(embedded.ids[chosen[p][0]]) for p in positions],
    arrays,
    settings,
  )


def add_local_features(
  index_dir: str | os.PathLike,
  trained,
  source: ImageSource,
  config: DelfConfig,
  *,
  per_landmark: int = DEFAULT_PER_LANDMARK,
  embedded: EmbeddedPhotos | None = None,
  allow_other_model: bool = False,
  seed: int = 0,
  progress: bool = True,
) -> LocalFeatureStore:
  """`build_local_features` stored in the index at `index_dir` (replacing any store it
  has). The photos are described outside the index's lock (minutes); the store is saved
  under it, and only if the index still has the landmarks it was built for."""
  index = CentroidIndex.load(index_dir, expected_dim=trained.model.embedding_dim)
  check_same_model(
    index.metadata.get("checkpoint"),
    trained.checkpoint_id,
    allow_other_model=allow_other_model,
    index=index_dir,
  )
  store = build_local_features(
    trained,
    index,
    source,
    config,
    per_landmark=per_landmark,
    embedded=embedded,
    seed=seed,
    progress=progress,
  )
  with locked_index(index_dir, expected_dim=trained.model.embedding_dim) as current:
    if _index_landmarks(current, current.label_map or trained.label_map) != _index_landmarks(
      index, index.label_map or trained.label_map
    ):
      raise DataError(
        f"{index_dir} gained or lost landmarks while their photos were described: run "
        "`landmark-jax local-features` again"
      )
    # A band calibrated with another store's photos means nothing with these.
    current.with_local_features(store).without_metadata("verification").save(index_dir)
  return store


def _index_landmarks(index: CentroidIndex, label_map) -> dict[int, str]:
  """Index label → its landmark id as answers give it."""
  from landmark_jax.recognize.decision import public_landmark_id

  return {
    int(label): public_landmark_id(label_map.to_landmark_id(int(label)))
    for label in np.unique(index.labels)
  }
