"""The DELF-style recognizer: every database photo's local descriptors in one index; a query's
descriptors vote for database photos; the best-voted photos are verified geometrically; the
answer is the landmark of the photo with the most inliers, or "no landmark" below a
threshold on them.

Decisions where DELF (a retrieval system) is silent on recognition are ours and documented
in docs/decisions.md: shortlist by votes, the inlier threshold calibrated like η.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Hashable, Sequence

import numpy as np
from tqdm import tqdm

from landmark_jax.baselines.delf.attention import train_attention
from landmark_jax.baselines.delf.config import DelfConfig
from landmark_jax.baselines.delf.features import (
  LocalFeatureExtractor,
  LocalFeatures,
  backbone_variables,
)
from landmark_jax.baselines.delf.pca import Pca
from landmark_jax.baselines.delf.verification import Verification, verify_with
from landmark_jax.data import ImageSource
from landmark_jax.data.transforms import ImageDecodeError, record_data
from landmark_jax.index import CentroidIndex, IndexConfig
from landmark_jax.index.threshold import eta_for_specificity

logger = logging.getLogger(__name__)


def extract_source(
  extractor: LocalFeatureExtractor, source: ImageSource, *, desc: str, progress: bool
) -> tuple[list[int], list[LocalFeatures], list[str]]:
  """(record positions, features, unreadable ids) of every record, in fixed-size batches."""
  positions, features, skipped = [], [], []
  bar = tqdm(total=len(source), desc=desc, unit="img", disable=not progress, dynamic_ncols=True)
  pending: list[tuple[int, np.ndarray, tuple[int, int]]] = []

  def flush():
    if pending:
      features.extend(
        extractor.extract_prepared(
          np.stack([p for _, p, _ in pending]), np.array([hw for *_, hw in pending])
        )
      )
      positions.extend(i for i, _, _ in pending)
      bar.update(len(pending))
      pending.clear()

  for i in range(len(source)):
    try:
      pending.append((i, *extractor.prepare(record_data(source[i]))))
    except ImageDecodeError as e:
      skipped.append(str(source.ids[i]))
      logger.warning("skipping unreadable image %s: %s", source.ids[i], e)
      bar.update()
    if len(pending) == extractor.batch_size:
      flush()
  flush()
  bar.close()
  return positions, features, skipped


@dataclasses.dataclass
class DelfDatabase:
  """All database photos' local features, rows grouped by photo (photo p owns rows
  ``offsets[p]:offsets[p + 1]``), and a nearest-neighbour index over the descriptors whose
  labels are photo numbers."""

  descriptors: np.ndarray  # (M, d) float32 unit rows
  keypoints: np.ndarray  # (M, 2) float32
  offsets: np.ndarray  # (P + 1,) int64
  image_ids: np.ndarray  # (P,) str
  landmark_ids: list[Hashable]  # (P,)
  index: CentroidIndex
  skipped: list[str] = dataclasses.field(default_factory=list)

  @classmethod
  def from_features(
    cls,
    features: Sequence[LocalFeatures],
    image_ids: Sequence[str],
    landmark_ids: Sequence[Hashable],
    config: DelfConfig,
  ) -> "DelfDatabase":
    if not features:
      raise ValueError("a DELF database needs at least one photo")
    counts = np.array([len(f) for f in features], np.int64)
    descriptors = np.concatenate([f.descriptors for f in features])
    owner = np.repeat(np.arange(len(features)), counts)
    index = CentroidIndex.build(descriptors, owner, IndexConfig(backend=config.index_backend))
    return cls(
      descriptors,
      np.concatenate([f.keypoints for f in features]),
      np.concatenate([[0], np.cumsum(counts)]),
      np.asarray(image_ids, str),
      list(landmark_ids),
      index,
    )

  def __len__(self) -> int:
    return len(self.image_ids)

  @property
  def nbytes(self) -> int:
    """Bytes held for search and verification: descriptors, keypoints, owners, offsets."""
    return (
      self.descriptors.nbytes
      + self.keypoints.nbytes
      + self.index.labels.nbytes
      + self.offsets.nbytes
    )

  def photo_features(self, photo: int) -> LocalFeatures:
    rows = slice(self.offsets[photo], self.offsets[photo + 1])
    return LocalFeatures(
      self.keypoints[rows],
      self.descriptors[rows],
      np.zeros(rows.stop - rows.start, np.float32),
      np.zeros(rows.stop - rows.start, np.float32),
    )

  def shortlist(self, query: LocalFeatures, config: DelfConfig) -> tuple[np.ndarray, np.ndarray]:
    """(photos, votes), most votes first: a photo gets one vote per query descriptor that
    has one of its descriptors among its `neighbors` nearest within the match distance."""
    if not len(query):
      return np.zeros(0, np.int64), np.zeros(0, np.int64)
    photos, similarity, _ = self.index.search(query.descriptors, config.neighbors)
    min_similarity = 1.0 - config.max_descriptor_distance**2 / 2  # ‖a−b‖² = 2 − 2a·b
    rows, _ = np.nonzero(similarity >= min_similarity)
    # One vote per (query descriptor, photo): several neighbours in one photo count once.
    pairs = np.unique(np.stack([rows, photos[similarity >= min_similarity]], axis=1), axis=0)
    voted, votes = np.unique(pairs[:, 1], return_counts=True)
    order = np.lexsort((voted, -votes))[: config.num_candidates]
    return voted[order], votes[order]

  def verify(
    self, query: LocalFeatures, photos: Sequence[int], config: DelfConfig
  ) -> list[Verification]:
    return [verify_with(query, self.photo_features(int(p)), config) for p in photos]


@dataclasses.dataclass(frozen=True)
class DelfPrediction:
  landmark_id: Hashable | None  # None: "no landmark"
  inliers: int  # of the best verified database photo (the score η is compared with)
  nearest: Hashable | None  # that photo's landmark, whatever the decision
  image_id: str | None  # that photo

  @property
  def is_landmark(self) -> bool:
    return self.landmark_id is not None


class DelfRecognizer:
  """A `LocalFeatureExtractor` (with its PCA) and a `DelfDatabase` built with it."""

  def __init__(self, extractor: LocalFeatureExtractor, database: DelfDatabase, config: DelfConfig):
    self.extractor = extractor
    self.database = database
    self.config = config

  @property
  def min_inliers(self) -> float:
    return -math.inf if self.config.min_inliers is None else self.config.min_inliers

  def with_min_inliers(self, min_inliers: float) -> "DelfRecognizer":
    return DelfRecognizer(
      self.extractor, self.database, dataclasses.replace(self.config, min_inliers=min_inliers)
    )

  def best_match(
    self, verifications: Sequence[Verification], photos: Sequence[int]
  ) -> DelfPrediction:
    """The decision from a query's verified shortlist (ties: the better-voted photo)."""
    if not len(photos):
      return DelfPrediction(None, 0, None, None)
    best = int(np.argmax([v.inliers for v in verifications]))
    photo, inliers = int(photos[best]), verifications[best].inliers
    nearest = self.database.landmark_ids[photo]
    return DelfPrediction(
      nearest if inliers >= self.min_inliers else None,
      inliers,
      nearest,
      str(self.database.image_ids[photo]),
    )

  def predict_features(self, query: LocalFeatures) -> DelfPrediction:
    photos, _ = self.database.shortlist(query, self.config)
    return self.best_match(self.database.verify(query, photos, self.config), photos)

  def recognize(self, images: Sequence[Any]) -> list[DelfPrediction]:
    """Photos (paths, bytes, PIL images or uint8 arrays) → predictions."""
    return [self.predict_features(f) for f in self.extractor.extract(images)]

  def predict_source(
    self, source: ImageSource, *, progress: bool = False
  ) -> tuple[list[str], list[Hashable | None], list[DelfPrediction]]:
    """(ids, true landmark ids, predictions) of every readable record."""
    positions, features, _ = extract_source(
      self.extractor, source, desc="DELF query", progress=progress
    )
    truth = source.landmark_ids()
    return (
      [str(source.ids[i]) for i in positions],
      [truth[i] for i in positions],
      [self.predict_features(f) for f in features],
    )


def build_delf(
  backbone_model,
  database_source: ImageSource,
  config: DelfConfig,
  *,
  progress: bool = True,
  seed: int = 0,
) -> DelfRecognizer:
  """The DELF-style recognizer over the landmark photos of `database_source`.

  `backbone_model` is a `TrainedModel` (its backbone is used) or a ready
  `LocalFeatureExtractor` without PCA. Trains the attention (``attention="trained"``),
  fits the PCA on the first `pca_fit_images` photos' raw descriptors, and indexes them all.
  """
  source = landmark_photos(database_source)
  extractor, positions, features, skipped = fit_extractor(
    backbone_model, source, config, progress=progress, seed=seed
  )
  fit_count = min(config.pca_fit_images, len(source))
  more_positions, more, more_skipped = extract_source(
    extractor, source.subset(range(fit_count, len(source))), desc="DELF database", progress=progress
  )
  positions += [fit_count + i for i in more_positions]
  features += more
  landmark_ids = source.landmark_ids()
  database = DelfDatabase.from_features(
    features, [str(source.ids[i]) for i in positions], [landmark_ids[i] for i in positions], config
  )
  database.skipped = skipped + more_skipped
  return DelfRecognizer(extractor, database, config)


def landmark_photos(source: ImageSource) -> ImageSource:
  """`source` without its non-landmark photos (what local features are learnt from)."""
  landmark = np.flatnonzero(source.labels != source.label_map.non_landmark_label)
  if not len(landmark):
    raise ValueError("the database source has no landmark photos")
  return source.subset(landmark)


def fit_extractor(
  backbone_model, source: ImageSource, config: DelfConfig, *, progress: bool = True, seed: int = 0
) -> tuple[LocalFeatureExtractor, list[int], list[LocalFeatures], list[str]]:
  """The extractor with its PCA, learnt from `source`'s (landmark) photos: the attention
  trained (``attention="trained"``) and the PCA fitted on the first `pca_fit_images` photos'
  raw descriptors. Also returns those photos' positions and projected features (so they are
  not described twice) and the ids it could not read."""
  if isinstance(backbone_model, LocalFeatureExtractor):
    if backbone_model.pca is not None:
      raise ValueError("build_delf fits its own PCA: pass an extractor without one")
    extractor = backbone_model
  else:
    attention = None
    if config.attention == "trained":
      attention = train_attention(
        backbone_model.model.backbone,
        backbone_variables(backbone_model.variables),
        source,
        config,
        seed=seed,
        progress=progress,
      )
    extractor = LocalFeatureExtractor.from_trained(
      backbone_model, config, attention_params=attention
    )
  fit_count = min(config.pca_fit_images, len(source))
  positions, raw, skipped = extract_source(
    extractor, source.subset(range(fit_count)), desc="DELF PCA", progress=progress
  )
  if not raw:
    raise ValueError(
      f"none of the first {fit_count} database photos could be read "
      f"(first: {', '.join(skipped[:3])}): nothing to fit the PCA on"
    )
  pca = Pca.fit(
    np.concatenate([f.descriptors for f in raw]), config.pca_dim, whiten=config.pca_whiten
  )
  # The same projection the device applies to queries, done here on the photos already seen.
  features = [
    dataclasses.replace(f, descriptors=np.asarray(pca.project(f.descriptors))) for f in raw
  ]
  return extractor.with_pca(pca), positions, features, skipped


def min_inliers_for_specificity(
  truth: Sequence[Hashable | None], predictions: Sequence[DelfPrediction], target_specificity: float
) -> dict[str, float]:
  """The inlier threshold for a target specificity, chosen exactly as the centroid
  recognizer's η (`eta_for_specificity`), so the two compare on an equal footing."""
  inliers = np.array([p.inliers for p in predictions], np.float64)
  non_landmark = np.array([t is None for t in truth])
  threshold = eta_for_specificity(inliers[non_landmark], target_specificity)
  correct = np.array([p.nearest == t for p, t in zip(predictions, truth)])
  landmark = ~non_landmark
  return {
    "min_inliers": threshold,
    "target_specificity": target_specificity,
    "specificity": float(np.mean(inliers[non_landmark] < threshold)),
    "sensitivity": float(np.mean(correct[landmark] & (inliers[landmark] >= threshold)))
    if landmark.any()
    else math.nan,
  }


def calibrate_min_inliers(
  recognizer: DelfRecognizer, source: ImageSource, target_specificity: float = 0.99
) -> dict[str, float]:
  """`min_inliers_for_specificity` on a validation source (landmark and non-landmark)."""
  _, truth, predictions = recognizer.predict_source(source)
  return min_inliers_for_specificity(truth, predictions, target_specificity)
