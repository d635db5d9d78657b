"""The decision, device-free: unit embeddings (and where each photo was taken) → answers.

The paper (§3.4): the query embedding is compared with every centroid by dot product; if the
best similarity is below a threshold η the photo shows no landmark. `Decision` holds what
that takes — the index, η, ρ (class references), the geo radius and the landmarks' names —
and nothing of the model: calibration and evaluation use it on embeddings they already
have, and `Recognizer` puts a photo embedder in front of it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from landmark_jax.data.labels import LabelMap
from landmark_jax.geo import Location, great_circle_km
from landmark_jax.index import threshold
from landmark_jax.index.calibration_fields import stored_eta
from landmark_jax.index.centroid_index import CentroidIndex
from landmark_jax.recognize.inputs import location_list

logger = logging.getLogger(__name__)


def public_landmark_id(landmark_id: Hashable | None) -> str | None:
  """A label map's landmark id as every answer gives it: its text (GLDv2's numeric ids as
  their decimal digits, folder names as they are); None stays None. Label maps keep ints
  where a folder name parses as one; one type in answers means a JSON consumer never sees
  ``3`` beside ``"sacre_coeur"``, nor ``3`` here and ``"3"`` in a CSV."""
  return None if landmark_id is None else str(landmark_id)


@dataclasses.dataclass(frozen=True)
class Candidate:
  landmark_id: str  # `public_landmark_id`
  score: float
  name: str | None = None


# `Prediction.reason`: why a photo got "no landmark" (stable codes, for machines).
REASON_BELOW_THRESHOLD = "below_threshold"  # the best candidate's similarity is under η


REASON_NO_LANDMARK_NEARBY = "no_landmark_nearby"  # the location filter left no candidate


# the best candidate clears η, but the photo is far from every reference photo of it (< ρ)
REASON_FAR_FROM_REFERENCES = "far_from_references"


# the score fell in the verification band, and no stored photo of the verified candidates
# matched it with k RANSAC inliers (`recognize.verifier`)
REASON_TOO_FEW_INLIERS = "too_few_inliers"


@dataclasses.dataclass(frozen=True)
class Prediction:
  """One photo's answer: `landmark_id` is None for "no landmark", and `reason` says why.

  `landmark_id` (and each candidate's) is always a str: the label map's id as text
  (`public_landmark_id`: ``"3"`` for GLDv2's landmark 3, a folder's name as it is), in
  Python, ``recognize --json`` and the HTTP service alike; compare it with a label map's
  id as ``public_landmark_id(id)``, or map it back with `Decision.label_map_id`."""

  landmark_id: str | None
  score: float  # the best centroid similarity (cosine), whatever the decision; -1: none
  candidates: tuple[Candidate, ...]  # top-k landmarks, best first (max over their centroids)
  name: str | None = None
  location: Location | None = None  # the photo's location, when it was used to filter
  radius_km: float | None = None  # with `location`: how far from it candidates may be
  # The best similarity to the top candidate's reference photos, when the recognizer checks
  # class references and that landmark has some (else None)
  reference_similarity: float | None = None
  reference_threshold: float | None = None  # ρ, when it was checked (the score cleared η)
  # Verification (`recognize.verifier`): whether local features decided this answer — the
  # score fell in the band around η, so `verified` is True for a "no landmark" they decided
  # too —, the RANSAC inliers of the reference photo that decided it (no photo reaching k:
  # the most any reached), and that photo's id
  verified: bool = False
  inliers: int | None = None
  verified_photo: str | None = None
  min_inliers: int | None = None  # k, when verified

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
    candidate's reference photos (`reference_similarity`) is below ρ;
    ``"too_few_inliers"``: the score fell in the verification band and no stored photo of
    the verified candidates matched it with k RANSAC inliers.
    """
    if self.is_landmark:
      return None
    if self.verified:
      return REASON_TOO_FEW_INLIERS
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
    if self.reason == REASON_TOO_FEW_INLIERS:
      return (
        f"best similarity {self.score:.3f} is uncertain, and local-feature verification found "
        f"{max(self.inliers, 0)} matching points, fewer than the {self.min_inliers} needed"
      )
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

  def to_json(self) -> str:
    """`to_dict` as a JSON string."""
    return json.dumps(self.to_dict())

  def to_dict(self) -> dict[str, Any]:
    """The answer as plain JSON-ready values (what the CLI and the service send)."""
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
      "verified": self.verified,
      "inliers": self.inliers,
      "verified_photo": self.verified_photo,
    }


@dataclasses.dataclass(frozen=True)
class Thresholds:
  """The thresholds a decision applies, as float32 values (`threshold.as_threshold`)."""

  eta: float  # η: the best candidate's similarity must reach it
  eta_without_references: float  # η alone, as `evaluate` compares with (= eta without ρ)
  reference_threshold: float | None  # ρ (None: references not checked)


def calibrated_thresholds(
  index: CentroidIndex, eta: float | None = None, reference_threshold: float | None = None
) -> Thresholds:
  """The thresholds for `index`: those given, else its calibrated ones.

  ρ is the one given, else the index's ``reference_threshold``; None there, -inf, or an
  index without class references: not checked. η is the one given, else the index's
  (`calibration_fields.stored_eta`): its ``eta``, calibrated with ρ when ρ applies (η then
  rejects only what the references do not), and η alone when ρ is switched off; an index
  never calibrated gives -inf (every photo gets its nearest landmark), with a warning."""
  if reference_threshold is None:
    reference_threshold = index.metadata.get("reference_threshold")
  rho = (
    None
    if reference_threshold is None or index.references is None or reference_threshold == -math.inf
    else threshold.as_threshold(reference_threshold)
  )
  alone = eta if eta is not None else stored_eta(index.metadata, references_applied=False)
  if eta is None:
    eta = stored_eta(index.metadata, references_applied=rho is not None)
    if eta is None:
      logger.warning(
        "the index has no calibrated eta: every photo gets its nearest landmark "
        "(run `landmark-jax calibrate`)"
      )
      eta = -math.inf
  alone = -math.inf if alone is None else alone
  return Thresholds(threshold.as_threshold(eta), threshold.as_threshold(alone), rho)


class Decision:
  """Embeddings → `Prediction`s by an index's centroids, η, ρ and the photos' locations.

  Args:
    index: the centroids, their landmarks' metadata and class references.
    label_map: what the index's labels mean (default: the index's own).
    eta, reference_threshold: as `calibrated_thresholds` (default: the index's calibrated
      ones).
    top_k: landmarks returned as candidates.
    radius_km: with a photo's location, only landmarks within this great-circle distance
      stay candidates (landmarks without coordinates always stay).
    names: landmark id (the label map's, or its text) → name, returned with predictions
      (default: the index's landmarks).
  """

  def __init__(
    self,
    index: CentroidIndex,
    *,
    label_map: LabelMap | None = None,
    eta: float | None = None,
    reference_threshold: float | None = None,
    top_k: int = 5,
    radius_km: float = 50.0,
    names: Mapping[Hashable, str] | None = None,
  ):
    label_map = label_map or index.label_map
    if label_map is None:
      raise ValueError("the index keeps no label map: give the model's (`label_map=`)")
    self._label_map_ids: dict[str, Hashable] = {}
    for landmark_id in label_map.landmark_ids:
      public = public_landmark_id(landmark_id)
      if self._label_map_ids.setdefault(public, landmark_id) != landmark_id:
        raise ValueError(
          f"landmark ids {self._label_map_ids[public]!r} and {landmark_id!r} both read "
          f"{public!r} in answers: rename one"
        )
    self.index = index
    self.label_map = label_map
    thresholds = calibrated_thresholds(index, eta, reference_threshold)
    self.eta = thresholds.eta
    self.eta_without_references = thresholds.eta_without_references
    self.reference_threshold = thresholds.reference_threshold
    self.top_k = top_k
    self.radius_km = radius_km
    # Keyed as answers name landmarks, so that a caller's names may use either form.
    names = names or {lid: info.name for lid, info in index.landmarks.items() if info.name}
    self.names = {public_landmark_id(lid): name for lid, name in names.items()}
    located = [
      (label_map.to_label(lid), info)
      for lid, info in index.landmarks.items()
      if info.has_location and lid in label_map.landmark_ids
    ]
    self._located_labels = np.array([label for label, _ in located], np.int64)
    self._located_coords = np.array(
      [(i.latitude, i.longitude) for _, i in located], np.float64
    ).reshape(-1, 2)
    self._warned_no_coordinates = False

  def _landmark(self, label: int) -> str:
    return public_landmark_id(self.label_map.to_landmark_id(int(label)))

  def label_map_id(self, landmark_id: str) -> Hashable:
    """A prediction's `landmark_id` → the label map's id it stands for (KeyError: none)."""
    return self._label_map_ids[landmark_id]

  def _excluded_labels(self, location: Location | None) -> set[int]:
    """Labels of landmarks too far from `location` (none without a location)."""
    if location is None or not len(self._located_labels):
      return set()
    distance = great_circle_km(
      location.latitude, location.longitude, self._located_coords[:, 0], self._located_coords[:, 1]
    )
    return set(self._located_labels[distance > self.radius_km].tolist())

  def predict(
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
    locations = location_list(locations, len(embeddings))
    rho = self.reference_threshold if reference_threshold is None else reference_threshold
    if rho == -math.inf or self.index.references is None:
      rho = None
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
