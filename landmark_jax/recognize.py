"""`Recognizer`: image → embedding → nearest centroids → landmark (or non-landmark) + score.

The paper (§3.4): the query embedding is compared with every centroid by dot product; if
the best similarity is below a threshold η the photo shows no landmark. η is chosen by
`calibrate` on a validation set to a target specificity and stored in the index manifest.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Any, Hashable, Sequence

import jax
import numpy as np
from PIL import Image

from landmark_jax import sharding
from landmark_jax.data import ImageSource, PipelineConfig, eval_dataset
from landmark_jax.data.transforms import ImageConfig, eval_image
from landmark_jax.embedding import Embedder
from landmark_jax.geo import Location, exif_location, great_circle_km
from landmark_jax.index import CentroidIndex
from landmark_jax.train.trained import TrainedModel, load_trained

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Candidate:
  landmark_id: Hashable
  score: float
  name: str | None = None


@dataclasses.dataclass(frozen=True)
class Prediction:
  """One photo's answer: `landmark_id` is None for "no landmark"."""

  landmark_id: Hashable | None
  score: float  # the best centroid similarity (cosine), whatever the decision
  candidates: tuple[Candidate, ...]  # top-k landmarks, best first (max over their centroids)
  name: str | None = None
  location: Location | None = None  # the photo's location, when it was used to filter

  @property
  def is_landmark(self) -> bool:
    return self.landmark_id is not None

  def to_json(self) -> dict[str, Any]:
    return {"landmark_id": self.landmark_id, "name": self.name, "is_landmark": self.is_landmark,
            "score": self.score,
            "candidates": [dataclasses.asdict(c) for c in self.candidates],
            "location": None if self.location is None else
            {"latitude": self.location.latitude, "longitude": self.location.longitude}}


def image_array(image, config: ImageConfig) -> np.ndarray:
  """A path, bytes, PIL image or HWC uint8 array → the eval crop (resize + center crop)."""
  if isinstance(image, np.ndarray):
    image = Image.fromarray(image.astype(np.uint8))
  if isinstance(image, Image.Image):
    from io import BytesIO
    buffer = BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    image = buffer.getvalue()
  if isinstance(image, os.PathLike):
    image = os.fspath(image)
  return eval_image(image, config)


class PhotoEmbedder:
  """Photos → unit embeddings with a trained model, in padded device batches of a few fixed
  sizes (`buckets`), so a handful of compiled programs serve every call."""

  def __init__(self, trained: TrainedModel, batch_size: int = 8,
               buckets: Sequence[int] | None = None):
    self.trained = trained
    self.image_config = trained.config.pipeline.image
    self.mesh = sharding.make_data_mesh(jax.local_devices())
    devices = len(jax.local_devices())
    round_up = lambda n: max(devices, -(-n // devices) * devices)  # noqa: E731
    self.buckets = sorted({round_up(b) for b in (buckets or (batch_size,))})
    self.batch_size = self.buckets[-1]
    self.embedder = Embedder(trained.model, trained.variables, self.mesh)

  def warm_up(self) -> None:
    """Compiles every bucket now, so that no later call pays for compilation."""
    size = self.image_config.crop_size
    for bucket in self.buckets:
      self.embed_arrays(np.zeros((bucket, size, size, 3), np.uint8))

  def embed_arrays(self, pixels: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 eval crops → (N, D) unit embeddings."""
    out = []
    for start in range(0, len(pixels), self.batch_size):
      chunk = pixels[start:start + self.batch_size]
      bucket = next(b for b in self.buckets if b >= len(chunk))
      padded = np.zeros((bucket, *chunk.shape[1:]), np.uint8)
      padded[:len(chunk)] = chunk
      out.append(self.embedder(padded)[0][:len(chunk)])
    return (np.concatenate(out) if out
            else np.zeros((0, self.trained.model.embedding_dim), np.float32))

  def embed(self, images: Sequence[Any]) -> np.ndarray:
    """Photos (paths, bytes, PIL images or uint8 arrays) → (N, D) unit embeddings.

    Raises `ImageDecodeError` naming the first unreadable photo."""
    if not len(images):
      return self.embed_arrays(np.zeros((0, 1, 1, 3), np.uint8))
    return self.embed_arrays(np.stack([image_array(i, self.image_config) for i in images]))

  def embed_source(self, source: ImageSource) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, dense labels, embeddings) of every readable record of a source."""
    pipeline = PipelineConfig(batch_size=self.batch_size, num_workers=0, image=self.image_config)
    ids, labels, vectors = [], [], []
    for batch in self.embedder.iterate(eval_dataset(source, pipeline)):
      ok = batch["mask"]
      ids.append(batch["id"][ok])
      labels.append(batch["label"][ok])
      vectors.append(batch["embedding"][ok])
    return np.concatenate(ids), np.concatenate(labels), np.concatenate(vectors)


class Recognizer:
  """A trained model and a centroid index, batched on the device.

  Args:
    eta: the similarity threshold; default: the index's calibrated ``eta`` (if the index was
      never calibrated, every photo gets its nearest landmark, and a warning says so).
    top_k: landmarks returned as candidates.
    batch_size: images per device call (padded), so one compiled program serves all calls.
    names: landmark id → name, returned with predictions (default: the index's landmarks.csv).
    radius_km: with a photo location, only landmarks within this great-circle distance stay
      candidates (landmarks without coordinates always stay).
  """

  def __init__(self, trained: TrainedModel, index: CentroidIndex, *, eta: float | None = None,
               top_k: int = 5, batch_size: int = 8, names: dict | None = None,
               buckets: Sequence[int] | None = None, radius_km: float = 50.0):
    if index.dim != trained.model.embedding_dim:
      raise ValueError(f"index dimension {index.dim} ≠ model embedding "
                       f"{trained.model.embedding_dim}")
    if index.label_map is not None and index.label_map != trained.label_map:
      logger.warning("index and model label maps differ; using the index's for its labels")
    self.trained = trained
    self.index = index
    self.label_map = index.label_map or trained.label_map
    if eta is None:
      eta = index.metadata.get("eta")
      if eta is None:
        logger.warning("the index has no calibrated eta: every photo gets its nearest landmark "
                       "(run `landmark-jax calibrate`)")
        eta = -math.inf
    self.eta = float(eta)
    self.top_k = top_k
    self.radius_km = radius_km
    self.names = dict(names) if names else {
        lid: info.name for lid, info in index.landmarks.items() if info.name}
    located = [(self.label_map.to_label(lid), info) for lid, info in index.landmarks.items()
               if info.has_location and lid in self.label_map.landmark_ids]
    self._located_labels = np.array([label for label, _ in located], np.int64)
    self._located_coords = np.array([(i.latitude, i.longitude) for _, i in located],
                                    np.float64).reshape(-1, 2)
    self.photos = PhotoEmbedder(trained, batch_size, buckets)
    # Embedding is the PhotoEmbedder's; exposed here because callers think in recognizers.
    self.embed = self.photos.embed
    self.embed_arrays = self.photos.embed_arrays
    self.embed_source = self.photos.embed_source

  @classmethod
  def load(cls, checkpoint: str | os.PathLike, index: str | os.PathLike, **kwargs) -> "Recognizer":
    trained = load_trained(checkpoint)
    return cls(trained, CentroidIndex.load(index, expected_dim=trained.model.embedding_dim),
               **kwargs)

  # Recognition ------------------------------------------------------------------------

  def _landmark(self, label: int) -> Hashable:
    return self.label_map.to_landmark_id(int(label))

  def _excluded_labels(self, location: Location | None) -> set[int]:
    """Labels of landmarks too far from `location` (none without a location)."""
    if location is None or not len(self._located_labels):
      return set()
    distance = great_circle_km(location.latitude, location.longitude,
                               self._located_coords[:, 0], self._located_coords[:, 1])
    return set(self._located_labels[distance > self.radius_km].tolist())

  def predict_embeddings(self, embeddings: np.ndarray, *, eta: float | None = None,
                         locations: Sequence[Location | None] | None = None
                         ) -> list[Prediction]:
    """Predictions for unit embeddings; `locations` (one per photo, None = unknown) restrict
    each photo's candidates to landmarks within `radius_km`."""
    eta = self.eta if eta is None else eta
    locations = list(locations) if locations is not None else [None] * len(embeddings)
    geo = any(location is not None for location in locations)
    # Several centroids per landmark: fetch enough neighbours to fill top_k landmarks, and
    # with a location far more, since most neighbours may be filtered out.
    k = min(len(self.index), self.top_k * (64 if geo else 4))
    labels, scores, _ = self.index.search(embeddings, k)
    predictions = []
    for row_labels, row_scores, location in zip(labels, scores, locations):
      excluded = self._excluded_labels(location)
      best: dict[int, float] = {}
      for label, score in zip(row_labels, row_scores):
        if int(label) not in excluded:
          best.setdefault(int(label), float(score))  # rows are sorted: first is the max
      ranked = list(best.items())[:self.top_k]
      candidates = tuple(Candidate(self._landmark(l), s, self.names.get(self._landmark(l)))
                         for l, s in ranked)
      if not candidates:  # every nearby centroid belongs to a landmark elsewhere
        predictions.append(Prediction(None, -1.0, (), None, location))
        continue
      top = candidates[0]
      landmark = top.landmark_id if top.score >= eta else None
      predictions.append(Prediction(landmark, top.score, candidates,
                                    self.names.get(landmark) if landmark is not None else None,
                                    location))
    return predictions

  def recognize(self, images: Sequence[Any], locations: Sequence[Location | None] | None = None,
                *, use_exif: bool = True) -> list[Prediction]:
    """Photos → predictions. A photo's location is the one passed for it, else (with
    `use_exif`) its EXIF GPS position, else unknown — and then it is recognised as always."""
    locations = list(locations) if locations is not None else [None] * len(images)
    if use_exif:
      locations = [loc if loc is not None else (exif_location(image) if not isinstance(
          image, np.ndarray) else None) for image, loc in zip(images, locations)]
    return self.predict_embeddings(self.embed(images), locations=locations)


def eta_for_specificity(non_landmark_scores: np.ndarray, target: float) -> float:
  """The smallest η with share(score < η) ≥ target among non-landmark photos.

  With m scores sorted ascending, at least ⌈target·m⌉ of them must fall below η, so η is
  just above the ⌈target·m⌉-th smallest score.
  """
  scores = np.sort(np.asarray(non_landmark_scores, np.float64))
  if not len(scores):
    raise ValueError("calibration needs non-landmark photos")
  if not 0 < target <= 1:
    raise ValueError(f"target specificity must be in (0, 1], got {target}")
  needed = math.ceil(target * len(scores) - 1e-9)
  return float(np.nextafter(np.float32(scores[needed - 1]), np.float32(np.inf)))


def calibrate(recognizer: Recognizer, source: ImageSource, target_specificity: float = 0.99
              ) -> dict[str, float]:
  """Chooses η on a validation source (landmark and non-landmark photos)."""
  _, labels, embeddings = recognizer.embed_source(source)
  predictions = recognizer.predict_embeddings(embeddings, eta=-math.inf)
  scores = np.array([p.score for p in predictions])
  non_landmark = labels == source.label_map.non_landmark_label
  eta = eta_for_specificity(scores[non_landmark], target_specificity)
  truth = source.label_map.to_landmark_ids(labels)
  correct = np.array([p.candidates[0].landmark_id == t for p, t in zip(predictions, truth)])
  landmark = ~non_landmark
  return {"eta": eta, "target_specificity": target_specificity,
          "specificity": float(np.mean(scores[non_landmark] < eta)),
          "sensitivity": float(np.mean(correct[landmark] & (scores[landmark] >= eta)))
          if landmark.any() else math.nan,
          "non_landmark_images": int(non_landmark.sum()), "landmark_images": int(landmark.sum())}
