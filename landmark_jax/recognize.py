"""The front door of inference: photos → `Prediction`s.

One path serves every caller (the Python API, the CLI, the HTTP service, evaluation and
calibration):

    decode_photo      a path, bytes, PIL image or array → `Photo` (the eval crop and the EXIF
                      GPS location, from one decode of the file)
    PhotoEmbedder     crops → unit embeddings, padded to a few batch-size buckets, so the
                      forward pass compiles once per bucket
    Recognizer        embeddings → nearest centroids → landmark or "no landmark" (η), with
                      candidates restricted around the photo's location when it has one

The paper (§3.4): the query embedding is compared with every centroid by dot product; if the
best similarity is below a threshold η the photo shows no landmark. η is chosen by
`landmark_jax.eval.calibration.calibrate` on a validation set and stored with the index.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import math
import os
import pathlib
from typing import Any, Hashable, Iterator, Sequence

import jax
import numpy as np
from PIL import Image

from landmark_jax import sharding
from landmark_jax.data import ImageSource, LabelMap
from landmark_jax.data.config import ImageConfig
from landmark_jax.data.transforms import (
  ImageDecodeError,
  eval_crop,
  eval_photo,
  record_data,
  to_rgb,
)
from landmark_jax.embedding import Embedder, power_of_two_buckets
from landmark_jax.geo import Location, exif_location, great_circle_km
from landmark_jax.index import CentroidIndex, threshold
from landmark_jax.train.checkpoints import TrainedModel, load_trained

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Candidate:
  landmark_id: Hashable
  score: float
  name: str | None = None


# `Prediction.reason`: why a photo got "no landmark" (stable codes, for machines).
REASON_BELOW_THRESHOLD = "below_threshold"  # the best candidate's similarity is under η
REASON_NO_LANDMARK_NEARBY = "no_landmark_nearby"  # the location filter left no candidate
# the best candidate clears η, but the photo is far from every reference photo of it (< ρ)
REASON_FAR_FROM_REFERENCES = "far_from_references"


@dataclasses.dataclass(frozen=True)
class Prediction:
  """One photo's answer: `landmark_id` is None for "no landmark", and `reason` says why."""

  landmark_id: Hashable | None
  score: float  # the best centroid similarity (cosine), whatever the decision; -1: none
  candidates: tuple[Candidate, ...]  # top-k landmarks, best first (max over their centroids)
  name: str | None = None
  location: Location | None = None  # the photo's location, when it was used to filter
  radius_km: float | None = None  # with `location`: how far from it candidates may be
  # The best similarity to the top candidate's reference photos, when the recognizer checks
  # class references and that landmark has some (else None)
  reference_similarity: float | None = None
  reference_threshold: float | None = None  # ρ, when it was checked (the score cleared η)

  @property
  def is_landmark(self) -> bool:
    return self.landmark_id is not None

  @property
  def reason(self) -> str | None:
    """Why the answer is "no landmark" (None when it is a landmark):

    ``"no_landmark_nearby"``: the photo's location left no candidate, every landmark of the
    index being farther than `radius_km` from it; ``"below_threshold"``: the best
    candidate's similarity (`score`) is below the recognizer's threshold η;
    ``"far_from_references"``: the score clears η but the photo's similarity to the
    candidate's reference photos (`reference_similarity`) is below ρ.
    """
    if self.is_landmark:
      return None
    if (
      self.reference_similarity is not None
      and self.reference_threshold is not None
      and not threshold.is_landmark(self.reference_similarity, self.reference_threshold)
    ):
      return REASON_FAR_FROM_REFERENCES
    # Only the location filter empties the candidates: a search always finds a centroid.
    return REASON_BELOW_THRESHOLD if self.candidates else REASON_NO_LANDMARK_NEARBY

  @property
  def reason_text(self) -> str | None:
    """`reason` in words, for people (None when it is a landmark)."""
    if self.reason == REASON_BELOW_THRESHOLD:
      return f"best similarity {self.score:.3f} is below the threshold η"
    if self.reason == REASON_FAR_FROM_REFERENCES:
      return (
        f"similarity {self.reference_similarity:.3f} to the reference photos of the best "
        f"candidate is below the threshold ρ = {self.reference_threshold:.3f}"
      )
    if self.reason == REASON_NO_LANDMARK_NEARBY:
      if self.location is None:  # only a hand-made Prediction gets here
        return "no candidate landmark"
      within = "" if self.radius_km is None else f" within {self.radius_km:g} km"
      return (
        f"no landmark in the index{within} of ({self.location.latitude:.2f}, "
        f"{self.location.longitude:.2f})"
      )
    return None

  def to_json(self) -> dict[str, Any]:
    return {
      "landmark_id": self.landmark_id,
      "name": self.name,
      "is_landmark": self.is_landmark,
      "reason": self.reason,
      "score": self.score,
      "candidates": [dataclasses.asdict(c) for c in self.candidates],
      "location": None
      if self.location is None
      else {"latitude": self.location.latitude, "longitude": self.location.longitude},
      "radius_km": self.radius_km,
      "reference_similarity": self.reference_similarity,
    }


@dataclasses.dataclass(frozen=True)
class Photo:
  """A decoded photo, ready for the network: its eval crop and where it was taken."""

  pixels: np.ndarray  # (S, S, 3) uint8, the center crop the model takes
  location: Location | None = None  # from the caller, else the photo's EXIF GPS, else None


def decode_photo(
  image: Any, config: ImageConfig, *, location: Location | None = None, read_exif: bool = True
) -> Photo:
  """A path, encoded bytes, PIL image or HWC uint8 array → `Photo`, decoding it once.

  `location`, when given, is the photo's; otherwise (with `read_exif`) its EXIF GPS position
  is read from the same opened file. Arrays carry no EXIF.

  Raises:
    ImageDecodeError: naming what is wrong with the photo.
  """
  if isinstance(image, np.ndarray):
    if image.ndim != 3 or image.shape[-1] != 3:
      raise ImageDecodeError(f"an array photo must be (H, W, 3) RGB, got shape {image.shape}")
    image = Image.fromarray(image.astype(np.uint8))
  if isinstance(image, Image.Image):
    found = exif_location(image) if read_exif and location is None else None
    # The same colour conversion as files get (alpha over white, 16-bit scaled).
    return Photo(eval_crop(to_rgb(image), config), location or found)
  if isinstance(image, os.PathLike):
    image = os.fspath(image)
  if location is not None or not read_exif:
    pixels, _ = eval_photo(image, config, read_location=False)
    return Photo(pixels, location)
  pixels, found = eval_photo(image, config)
  return Photo(pixels, found)


def decode_records(
  source: ImageSource, config: ImageConfig, *, read_exif: bool = True, threads: int | None = None
) -> Iterator[tuple[int, Photo | ImageDecodeError]]:
  """Every record of `source` decoded (in order, by a pool of threads: Pillow releases the
  GIL while it decodes and resamples): ``(record index, Photo or the decode error)``. At
  most a few photos per thread are decoded ahead of the consumer, so memory stays bounded
  whatever the source's size."""

  def decode(i: int):
    try:
      return i, decode_photo(record_data(source[i]), config, read_exif=read_exif)
    except ImageDecodeError as e:
      return i, e

  threads = threads or min(8, os.cpu_count() or 1)
  ahead = collections.deque()
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    for i in range(len(source)):
      ahead.append(pool.submit(decode, i))
      if len(ahead) >= 4 * threads:
        yield ahead.popleft().result()
    while ahead:
      yield ahead.popleft().result()


@dataclasses.dataclass
class EmbeddedPhotos:
  """A source's readable photos, embedded: what evaluation and calibration score."""

  ids: np.ndarray  # (n,) record ids
  labels: np.ndarray  # (n,) dense labels
  embeddings: np.ndarray  # (n, D) unit embeddings
  locations: list[Location | None]  # each photo's EXIF GPS location (None: none)
  skipped: list[str]  # ids of unreadable photos
  label_map: LabelMap  # the source's: what the labels mean

  def landmark_ids(self) -> list:
    return self.label_map.to_landmark_ids(self.labels)


class PhotoEmbedder:
  """Photos → unit embeddings with a trained model, in padded device batches of a few fixed
  sizes (`buckets`, default powers of two up to `batch_size`), so a handful of compiled
  programs serve every call."""

  def __init__(
    self, trained: TrainedModel, batch_size: int = 8, buckets: Sequence[int] | None = None
  ):
    self.trained = trained
    self.image_config = trained.config.pipeline.image
    self.mesh = sharding.make_data_mesh(jax.local_devices())
    self.embedder = Embedder(
      trained.model,
      trained.variables,
      self.mesh,
      buckets=buckets or power_of_two_buckets(batch_size),
    )
    self.buckets = self.embedder.buckets
    self.batch_size = self.embedder.max_batch

  def warm_up(self) -> None:
    """Compiles every bucket now, so that no later call pays for compilation."""
    self.embedder.warm_up(self.image_config.crop_size)

  def embed_arrays(self, pixels: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 eval crops → (N, D) unit embeddings."""
    return self.embedder.embed_pixels(np.asarray(pixels))

  def embed_photos(self, photos: Sequence[Photo]) -> np.ndarray:
    if not len(photos):
      return self.embed_arrays(np.zeros((0, 1, 1, 3), np.uint8))
    return self.embed_arrays(np.stack([photo.pixels for photo in photos]))

  def decode(
    self,
    images: Sequence[Any],
    locations: Sequence[Location | None] | None = None,
    *,
    read_exif: bool = True,
  ) -> list[Photo]:
    """Photos (paths, bytes, PIL images or uint8 arrays) → `Photo`s; raises
    `ImageDecodeError` naming the first unreadable one."""
    locations = list(locations) if locations is not None else [None] * len(images)
    if len(locations) != len(images):
      raise ValueError(f"{len(images)} photos but {len(locations)} locations")
    return [
      decode_photo(image, self.image_config, location=location, read_exif=read_exif)
      for image, location in zip(images, locations)
    ]

  def embed(self, images: Sequence[Any]) -> np.ndarray:
    """Photos (paths, bytes, PIL images or uint8 arrays) → (N, D) unit embeddings.

    Raises `ImageDecodeError` naming the first unreadable photo."""
    return self.embed_photos(self.decode(images, read_exif=False))

  def embed_source(self, source: ImageSource, *, read_exif: bool = True) -> EmbeddedPhotos:
    """Every readable record of a source, embedded (unreadable ones skipped and named)."""
    ids, labels, chunks, locations, skipped, pending = [], [], [], [], [], []

    def flush():
      chunks.append(self.embed_photos([photo for _, photo in pending]))
      pending.clear()

    for i, photo in decode_records(source, self.image_config, read_exif=read_exif):
      if isinstance(photo, ImageDecodeError):
        skipped.append(str(source.ids[i]))
        continue
      ids.append(source.ids[i])
      labels.append(source.labels[i])
      locations.append(photo.location)
      pending.append((i, photo))
      if len(pending) == self.batch_size:
        flush()
    if pending or not chunks:
      flush()
    if skipped:
      logger.warning(
        "%d unreadable photos skipped (first: %s)", len(skipped), ", ".join(skipped[:5])
      )
    return EmbeddedPhotos(
      np.asarray(ids, dtype=object),
      np.asarray(labels, np.int32),
      np.concatenate(chunks),
      locations,
      skipped,
      source.label_map,
    )


def _extends(index_map: LabelMap, model_map: LabelMap) -> bool:
  """Whether `index_map` gives every label of `model_map` the same landmark, new landmarks
  (`add-landmarks`) appended after them. Stage sizes and the non-landmark label (n, which
  moves up as landmarks are appended) do not change what a landmark label means."""
  model_ids = tuple(model_map.landmark_ids)  # a map built from a list compares equal too
  return tuple(index_map.landmark_ids[: len(model_ids)]) == model_ids


_warned_model_pairs: set = set()


def _warn_if_another_model(built_from: str | None, checkpoint_id: str) -> None:
  """Warns (once per pair) when the index's centroids come from another model's embeddings:
  they then score nothing meaningful. Checkpoint ids are ``<workdir>@<step>``; a copied or
  moved workdir keeps its folder name and step, so only those are compared (a demo's
  round1/train@343 against train@340 differs; two different runs that stopped at the same
  step in folders of the same name are not told apart)."""
  if not built_from:
    return

  def short(checkpoint):
    folder, _, step = checkpoint.rpartition("@")
    return pathlib.PurePath(folder).name, step

  if (
    short(built_from) == short(checkpoint_id) or (built_from, checkpoint_id) in _warned_model_pairs
  ):
    return
  _warned_model_pairs.add((built_from, checkpoint_id))
  logger.warning(
    "the index was built from the embeddings of %s, and this model is %s: unless "
    "they are the same model, its scores mean nothing (a demo workdir has "
    "round1/train and train: the index is train's)",
    built_from,
    checkpoint_id,
  )


class Recognizer:
  """A trained model and a centroid index, batched on the device.

  Args:
    eta: the similarity threshold; default: the index's calibrated ``eta`` (if the index was
      never calibrated, every photo gets its nearest landmark, and a warning says so).
    top_k: landmarks returned as candidates.
    batch_size: the most images per device call; smaller calls are padded to the next power
      of two (`buckets` overrides), so a few compiled programs serve all calls.
    names: landmark id → name, returned with predictions (default: the index's landmarks.csv).
    radius_km: with a photo location, only landmarks within this great-circle distance stay
      candidates (landmarks without coordinates always stay).
    reference_threshold: ρ, the similarity to one of its landmark's reference photos that
      the best candidate must also reach (class references, kept by the index); default:
      the index's calibrated ``reference_threshold`` (and then the default η is the one
      calibrated with it, ``eta_with_references``); None there, or -inf: not checked. A
      landmark without reference photos is never rejected by it.
  """

  def __init__(
    self,
    trained: TrainedModel,
    index: CentroidIndex,
    *,
    eta: float | None = None,
    top_k: int = 5,
    batch_size: int = 8,
    names: dict | None = None,
    buckets: Sequence[int] | None = None,
    radius_km: float = 50.0,
    reference_threshold: float | None = None,
  ):
    if index.dim != trained.model.embedding_dim:
      raise ValueError(
        f"index dimension {index.dim} ≠ model embedding {trained.model.embedding_dim}"
      )
    if index.label_map is not None and not _extends(index.label_map, trained.label_map):
      # An index with added landmarks extends the model's map: that is normal, and silent.
      logger.warning("index and model label maps differ; using the index's for its labels")
    _warn_if_another_model(index.metadata.get("checkpoint"), trained.checkpoint_id)
    self.trained = trained
    self.index = index
    self.label_map = index.label_map or trained.label_map
    if reference_threshold is None:
      reference_threshold = index.metadata.get("reference_threshold")
    self.reference_threshold = (
      None
      if reference_threshold is None or index.references is None or reference_threshold == -math.inf
      else threshold.as_threshold(reference_threshold)
    )
    # η without references: the one given, else the index's (what `evaluate` compares with).
    self.eta_without_references = threshold.as_threshold(
      eta if eta is not None else index.metadata.get("eta", -math.inf)
    )
    if eta is None:
      # Calibrated together with ρ, η rejects only what the references do not.
      eta = index.metadata.get("eta")
      if self.reference_threshold is not None:
        eta = index.metadata.get("eta_with_references", eta)
      if eta is None:
        logger.warning(
          "the index has no calibrated eta: every photo gets its nearest landmark "
          "(run `landmark-jax calibrate`)"
        )
        eta = -math.inf
    self.eta = threshold.as_threshold(eta)  # compared as float32, like calibration's scores
    self.top_k = top_k
    self.radius_km = radius_km
    self.names = (
      dict(names)
      if names
      else {lid: info.name for lid, info in index.landmarks.items() if info.name}
    )
    located = [
      (self.label_map.to_label(lid), info)
      for lid, info in index.landmarks.items()
      if info.has_location and lid in self.label_map.landmark_ids
    ]
    self._located_labels = np.array([label for label, _ in located], np.int64)
    self._located_coords = np.array(
      [(i.latitude, i.longitude) for _, i in located], np.float64
    ).reshape(-1, 2)
    self._warned_no_coordinates = False
    self.photos = PhotoEmbedder(trained, batch_size, buckets)
    # Embedding is the PhotoEmbedder's; exposed here because callers think in recognizers.
    self.decode = self.photos.decode
    self.embed = self.photos.embed
    self.embed_arrays = self.photos.embed_arrays
    self.embed_source = self.photos.embed_source

  @classmethod
  def load(cls, checkpoint: str | os.PathLike, index: str | os.PathLike, **kwargs) -> "Recognizer":
    trained = load_trained(checkpoint)
    return cls(
      trained, CentroidIndex.load(index, expected_dim=trained.model.embedding_dim), **kwargs
    )

  # Recognition ------------------------------------------------------------------------

  def _landmark(self, label: int) -> Hashable:
    return self.label_map.to_landmark_id(int(label))

  def _excluded_labels(self, location: Location | None) -> set[int]:
    """Labels of landmarks too far from `location` (none without a location)."""
    if location is None or not len(self._located_labels):
      return set()
    distance = great_circle_km(
      location.latitude, location.longitude, self._located_coords[:, 0], self._located_coords[:, 1]
    )
    return set(self._located_labels[distance > self.radius_km].tolist())

  def predict_embeddings(
    self,
    embeddings: np.ndarray,
    *,
    eta: float | None = None,
    locations: Sequence[Location | None] | None = None,
    reference_threshold: float | None = None,
  ) -> list[Prediction]:
    """Predictions for unit embeddings; `locations` (one per photo, None = unknown) restrict
    each photo's candidates to landmarks within `radius_km`; `reference_threshold`
    overrides ρ for this call (-inf: references not checked)."""
    eta = self.eta if eta is None else eta
    rho = self.reference_threshold if reference_threshold is None else reference_threshold
    if rho == -math.inf or self.index.references is None:
      rho = None
    locations = list(locations) if locations is not None else [None] * len(embeddings)
    geo = any(location is not None for location in locations)
    if geo and not len(self._located_labels) and not self._warned_no_coordinates:
      self._warned_no_coordinates = True
      logger.warning(
        "photo locations are ignored: the index has no landmark coordinates "
        "(build it with --landmarks-csv)"
      )
    # Several centroids per landmark: fetch enough neighbours to fill top_k landmarks, and
    # with a location far more, since most neighbours may be filtered out.
    k = min(len(self.index), self.top_k * (64 if geo else 4))
    labels, scores, _ = self.index.search(embeddings, k)
    predictions = []
    # Once per photo: the distances to every located landmark are the costly part.
    excluded_per_photo = [self._excluded_labels(location) for location in locations]
    references = self._reference_similarities(embeddings, labels, excluded_per_photo)
    for row_labels, row_scores, location, excluded, reference in zip(
      labels, scores, locations, excluded_per_photo, references
    ):
      best: dict[int, float] = {}
      for label, score in zip(row_labels, row_scores):
        if int(label) not in excluded:
          best.setdefault(int(label), float(score))  # rows are sorted: first is the max
      ranked = list(best.items())[: self.top_k]
      candidates = tuple(
        Candidate(self._landmark(l), s, self.names.get(self._landmark(l))) for l, s in ranked
      )
      radius_km = None if location is None else self.radius_km
      if not candidates:  # every nearby centroid belongs to a landmark elsewhere
        predictions.append(Prediction(None, -1.0, (), None, location, radius_km))
        continue
      top = candidates[0]
      # ρ is checked only for a score that cleared η: a photo below η is "below_threshold",
      # however far from the references it also is.
      checked = threshold.is_landmark(top.score, eta) and rho is not None and reference is not None
      accepted = threshold.is_landmark(top.score, eta) and (
        not checked or threshold.is_landmark(reference, rho)
      )
      landmark = top.landmark_id if accepted else None
      predictions.append(
        Prediction(
          landmark,
          top.score,
          candidates,
          self.names.get(landmark) if landmark is not None else None,
          location,
          radius_km,
          reference,
          rho if checked else None,
        )
      )
    return predictions

  def _reference_similarities(
    self, embeddings: np.ndarray, labels: np.ndarray, excluded_per_photo: Sequence[set[int]]
  ) -> list[float | None]:
    """Each photo's best similarity to the reference photos of its top candidate (the
    nearest centroid's landmark that the location filter keeps); None where the index keeps
    no references, that landmark has none, or no candidate is left."""
    if self.index.references is None:
      return [None] * len(embeddings)
    tops = []
    for row_labels, excluded in zip(labels, excluded_per_photo):
      tops.append(next((int(l) for l in row_labels if int(l) not in excluded), -1))
    covered = self.index.references.covers(tops)
    similarity = self.index.references.best_similarity(embeddings, tops)
    return [float(s) if c else None for s, c in zip(similarity, covered)]

  def recognize_photos(
    self, photos: Sequence[Photo], *, eta: float | None = None, use_locations: bool = True
  ) -> list[Prediction]:
    """Decoded photos → predictions; each photo's location (if any, and `use_locations`)
    restricts its candidates to nearby landmarks."""
    locations = [photo.location for photo in photos] if use_locations else None
    return self.predict_embeddings(self.photos.embed_photos(photos), eta=eta, locations=locations)

  def recognize(
    self,
    images: Sequence[Any],
    locations: Sequence[Location | None] | None = None,
    *,
    use_exif: bool = True,
  ) -> list[Prediction]:
    """Photos (paths, bytes, PIL images or uint8 arrays) → predictions. A photo's location
    is the one passed for it, else (with `use_exif`) its EXIF GPS position, else unknown —
    and then it is recognised as always.

    Raises `ImageDecodeError` naming the first unreadable photo."""
    return self.recognize_photos(self.decode(images, locations, read_exif=use_exif))
