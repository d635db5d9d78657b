"""Adding landmarks to a built index from their photos, without retraining.

The new landmarks' photos are embedded with the index's model, cleaned and clustered into
per-angle centroids by the same rules as the training set (`cleaning`), and merged into the
index (`landmark_jax.index.editing.add_centroids`). A share of each new landmark's photos
can be held back from the centroids, to measure the new landmarks when η is chosen again
(`add-landmarks --recalibrate`).
"""

from __future__ import annotations

import dataclasses
import os
import zlib
from typing import Callable, Hashable, Mapping, Sequence

import numpy as np

from landmark_jax.cleaning.config import CleaningConfig
from landmark_jax.cleaning.dataset import clean_dataset
from landmark_jax.cleaning.result import CleaningResult
from landmark_jax.data import ImageSource
from landmark_jax.errors import ConfigError, DataError, UsageError
from landmark_jax.eval.calibration import calibrated_index, target_specificity_for
from landmark_jax.index.centroid_index import CentroidIndex
from landmark_jax.index.editing import add_centroids, locked_index, refuse_present
from landmark_jax.index.landmarks import LandmarkInfo, merge_metadata, refuse_unmatched_rows
from landmark_jax.index.provenance import check_same_model
from landmark_jax.index.validation import ValidationSet
from landmark_jax.recognize.embedder import PhotoEmbedder
from landmark_jax.train.checkpoints import TrainedModel

# The share of each new landmark's photos held back to measure it when η is chosen again
# (`add-landmarks --recalibrate`), unless another is given.
HOLD_BACK = 0.25


@dataclasses.dataclass
class Addition:
  """An index with new landmarks, and how they got there."""

  index: CentroidIndex
  cleaning: CleaningResult  # of the photos that made the centroids
  held_back: ValidationSet  # photos kept out of the centroids (and the source's non-landmarks)
  before: CentroidIndex | None = None  # the index as it was (`add_to_index`)
  calibration: dict | None = None  # η chosen again (`add_to_index(recalibrate=True)`)


def held_back_rows(
  landmark_ids: Sequence[Hashable | None], share: float, seed: int = 0
) -> np.ndarray:
  """Which photos to hold back: ⌊share·n⌋ of each landmark's n photos (so a landmark keeps
  at least one for its centroid, and one with fewer than 1/share photos gives none),
  chosen by a generator seeded with the landmark's id — the same photos on every run."""
  if not 0 <= share < 1:
    raise ConfigError(f"the held-back share must be in [0, 1), got {share}")
  held = np.zeros(len(landmark_ids), bool)
  rows: dict[Hashable, list[int]] = {}
  for row, landmark in enumerate(landmark_ids):
    if landmark is not None:
      rows.setdefault(landmark, []).append(row)
  for landmark, members in rows.items():
    count = int(np.floor(share * len(members) + 1e-9))
    if count:
      rng = np.random.default_rng([seed, zlib.crc32(str(landmark).encode())])
      held[rng.choice(members, count, replace=False)] = True
  return held


def add_landmarks(
  index: CentroidIndex,
  embed_source: Callable,
  source: ImageSource,
  cleaning: CleaningConfig = CleaningConfig(),
  landmarks: Mapping[Hashable, LandmarkInfo] | None = None,
  *,
  update_metadata: bool = False,
  hold_back: float = 0.0,
  ignore_unmatched: bool = False,
  csv_name: str = "the landmarks CSV",
  trained: TrainedModel | None = None,
) -> Addition:
  """The index with the landmarks of `source` added.

  Args:
    embed_source: source → its embedded photos (``.ids``, ``.landmark_ids()``, unit
      ``.embeddings``), e.g. `PhotoEmbedder(trained).embed_source` with the index's model.
    source: photos of the new landmarks; its non-landmark photos, if any, join the held-back
      set (they make no centroid).
    landmarks: names/coordinates of the new landmarks, by id or by name
      (`index.landmarks.merge_metadata`); existing landmarks' rows apply only with
      `update_metadata`.
    hold_back: the share of each landmark's photos kept out of its centroids
      (`held_back_rows`) and returned for calibration.
    ignore_unmatched: let rows of `landmarks` that describe no landmark (neither new nor in
      the index, by id or by name) pass with a warning, instead of refusing them
      (`refuse_unmatched_rows`; `csv_name` names the file in both).
    trained: the index's model; when the index stores local features (verified answers),
      the new landmarks' reference photos are described with the stored extractor on its
      backbone and join the store (`new_local_features`). Without it they join nothing,
      and answers for the new landmarks are never verified.

  Every landmark gets at least one centroid: one whose photos form no valid cluster keeps
  one centroid of all its photos (`CleaningConfig`), and the cleaning result says so.

  Raises:
    DataError: a landmark that the index already has; rows of `landmarks` that match no
      landmark (without `ignore_unmatched`).
  """
  # Before embedding, the slow part: a clash, a row for no landmark or a CSV that would
  # give two landmarks one name fails now, not after it.
  new_ids = [l for l in dict.fromkeys(source.landmark_ids()) if l is not None]
  refuse_present(index, new_ids)
  merge = merge_metadata(
    index.landmarks,
    index.label_map.to_landmark_ids(np.unique(index.labels)),
    new_ids,
    landmarks,
    update_existing=update_metadata,
  )
  refuse_unmatched_rows(merge.unused, csv_name, ignore_unmatched=ignore_unmatched)
  embedded = embed_source(source)
  landmark_ids = embedded.landmark_ids()
  held = held_back_rows(landmark_ids, hold_back, cleaning.seed)
  non_landmark = np.array([landmark is None for landmark in landmark_ids], bool)
  used = ~held & ~non_landmark
  result = clean_dataset(
    embedded.ids[used],
    [landmark_ids[i] for i in np.flatnonzero(used)],
    embedded.embeddings[used],
    cleaning,
  )
  validation_rows = np.flatnonzero(held | non_landmark)
  held_back = ValidationSet(
    tuple(str(embedded.ids[i]) for i in validation_rows),
    tuple(landmark_ids[i] for i in validation_rows),
    embedded.embeddings[validation_rows],
  )
  edited = add_centroids(
    index,
    result.centroids,
    result.centroid_landmarks,
    result.cluster_sizes,
    landmarks,
    {
      "centroids": int(len(result.centroids)),
      "images": int(result.keep.sum()),
      "held_back": int(held.sum()),
    },
    update_metadata=update_metadata,
    reference_vectors=result.references,
    reference_landmarks=result.reference_landmarks,
    **new_local_features(index, trained, result, source, embedded, np.flatnonzero(used)),
  )
  return Addition(edited, result, held_back)


def new_local_features(
  index: CentroidIndex,
  trained: TrainedModel | None,
  result: CleaningResult,
  source: ImageSource,
  embedded,
  rows: np.ndarray,
) -> dict:
  """`add_centroids`' local-feature arguments for new landmarks (none when the index stores
  no local features or no model is given): their reference photos chosen as
  `local-features` chooses them (`stages.local_features.reference_photos`), as many per
  landmark as the index stores at most, described with the index's stored extractor."""
  store = index.local_features
  if store is None or trained is None or not len(result.centroids):
    return {}
  from landmark_jax.baselines.delf.retrieval import extract_source
  from landmark_jax.baselines.delf.stored import extractor_from_arrays
  from landmark_jax.embedding import EmbeddedPhotos
  from landmark_jax.index.local_features import LocalFeatureStore
  from landmark_jax.index.references import References
  from landmark_jax.stages.local_features import reference_photos

  # The new landmarks as an index of their own, labelled 0..n-1, to choose photos in.
  landmarks = list(dict.fromkeys(result.centroid_landmarks))
  label_of = {landmark: label for label, landmark in enumerate(landmarks)}
  references = None
  if result.references is not None and len(result.references):
    references = References(
      result.references, np.array([label_of[l] for l in result.reference_landmarks])
    )
  new = CentroidIndex.build(
    result.centroids,
    np.array([label_of[l] for l in result.centroid_landmarks]),
    cluster_sizes=result.cluster_sizes,
    references=references,
  )
  photo_landmarks = [embedded.landmark_ids()[i] for i in rows]
  photos = EmbeddedPhotos(
    embedded.ids[rows], embedded.labels[rows], embedded.embeddings[rows], embedded.label_map, []
  )
  labels = np.array([label_of.get(l, -1) for l in photo_landmarks], np.int64)
  per_landmark = max((len(store.photos_of(l)) for l in np.unique(store.photo_labels)), default=4)
  chosen = reference_photos(new, photos, labels, per_landmark)
  position = {str(record_id): i for i, record_id in enumerate(source.ids)}
  extractor = extractor_from_arrays(trained, store.extractor, store.settings, batch_size=8)
  described, features, _ = extract_source(
    extractor,
    source.subset([position[str(photos.ids[row])] for row, _ in chosen]),
    desc="local features",
    progress=False,
  )
  if not features:
    return {}
  return {
    "local_features": LocalFeatureStore.from_float(
      [f.keypoints for f in features],
      [f.descriptors for f in features],
      [chosen[p][1] for p in described],
      [str(photos.ids[chosen[p][0]]) for p in described],
      store.extractor,
      store.settings,
    ),
    "local_feature_landmarks": [landmarks[chosen[p][1]] for p in described],
  }


def check_hold_back(hold_back: float | None, recalibrate: bool) -> None:
  """Raises `UsageError` for a held-back share without recalibration, which would keep
  photos out of the centroids for nothing."""
  if hold_back is not None and not recalibrate:
    raise UsageError(
      "--hold-back keeps photos out of the centroids to measure them when η is "
      "chosen again: give it with --recalibrate"
    )


def add_to_index(
  index_dir: str | os.PathLike,
  trained: TrainedModel,
  source: ImageSource,
  cleaning: CleaningConfig,
  landmarks: Mapping[Hashable, LandmarkInfo] | None = None,
  *,
  update_metadata: bool = False,
  recalibrate: bool = False,
  hold_back: float | None = None,
  allow_other_model: bool = False,
  ignore_unmatched: bool = False,
  csv_name: str = "the landmarks CSV",
) -> Addition:
  """Adds the landmarks of `source` to the index at `index_dir` (`add_landmarks`, embedded
  by `trained`, the index's model) and saves it, locked from reading to writing: a
  concurrent add or remove waits, then sees this one.

  With `recalibrate`, η (and ρ) are chosen again for the index's last target, on the
  validation photos it keeps joined by a share of each new landmark's photos held back
  from its centroids (`hold_back`, default `HOLD_BACK`) and the source's non-landmark
  photos; `Addition.calibration` has the figures.

  `allow_other_model`: add to an index built from another model's embeddings
  (`provenance.check_same_model` refuses it otherwise). `ignore_unmatched`, `csv_name`:
  as `add_landmarks`.

  Raises:
    UsageError: `hold_back` without `recalibrate`.
    DataError: `recalibrate` on an index that keeps no validation photos.
    OtherModelError: the index is another model's.
  """
  check_hold_back(hold_back, recalibrate)
  with locked_index(index_dir, expected_dim=trained.model.embedding_dim) as index:
    check_same_model(
      index.metadata.get("checkpoint"),
      trained.checkpoint_id,
      allow_other_model=allow_other_model,
      index=index_dir,
    )
    if recalibrate and index.validation is None:
      raise DataError(
        f"--recalibrate: {index_dir} keeps no validation photos; calibrate it "
        "once with `landmark-jax calibrate --folder … --non-landmark-folder …` "
        "(or --root), then edits can recalibrate"
      )
    share = (HOLD_BACK if hold_back is None else hold_back) if recalibrate else 0.0
    addition = add_landmarks(
      index,
      PhotoEmbedder(trained).embed_source,
      source,
      cleaning,
      landmarks,
      update_metadata=update_metadata,
      hold_back=share,
      ignore_unmatched=ignore_unmatched,
      csv_name=csv_name,
      trained=trained,
    )
    addition.before = index
    if recalibrate:
      target = target_specificity_for(index, trained.config.calibration.target_specificity)
      addition.index, addition.calibration = calibrated_index(
        addition.index,
        index.validation.joined(addition.held_back),
        target,
        "the stored validation photos and photos held back from added landmarks",
        label_map=trained.label_map,
      )
    addition.index.save(index_dir)
  return addition
