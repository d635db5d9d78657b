"""Choosing η, the similarity threshold between "a landmark" and "no landmark", for a target
specificity on a validation set (photos with and without landmarks); and, when the index
keeps class references, ρ — the threshold on the similarity to the best candidate's
reference photos — with the η that goes with it, for the same target on the same photos
(docs/decisions.md, "Class references")."""

from __future__ import annotations

import math

import numpy as np

from landmark_jax.data import ImageSource
from landmark_jax.errors import DataError
from landmark_jax.index import CentroidIndex, threshold
from landmark_jax.index.validation import ValidationSet


def embed_validation(recognizer, source: ImageSource) -> ValidationSet:
  """The photos of a validation source (landmark and non-landmark), embedded once, as the
  index keeps them (`CentroidIndex.validation`)."""
  embedded = recognizer.embed_source(source, read_exif=False)
  non_landmark = embedded.labels == source.label_map.non_landmark_label
  landmarks = [None if n else l for n, l in zip(non_landmark, embedded.landmark_ids())]
  return ValidationSet(tuple(map(str, embedded.ids)), tuple(landmarks), embedded.embeddings)


def calibrate_on(
  recognizer, validation: ValidationSet, target_specificity: float = 0.99
) -> dict[str, float]:
  """Chooses η for `recognizer` (a `landmark_jax.Recognizer`) on embedded validation photos
  for a target specificity: the share of non-landmark photos answered "no landmark" is at
  least the target, with the same rule (`threshold.accepted`) and the same float32 scores
  that recognition applies. η is not applied; the caller stores it."""
  if not len(validation):
    raise DataError("calibration needs validation photos, with and without landmarks")
  predictions = recognizer.predict_embeddings(
    validation.embeddings, eta=-math.inf, reference_threshold=-math.inf
  )
  scores = np.array([p.score for p in predictions], np.float32)
  non_landmark = validation.is_non_landmark
  eta = threshold.eta_for_specificity(scores[non_landmark], target_specificity)
  nearest = [p.candidates[0].landmark_id if p.candidates else None for p in predictions]
  correct = np.array(
    [n is not None and n == t for n, t in zip(nearest, validation.landmark_ids)], bool
  )
  landmark = ~non_landmark
  accepted = threshold.accepted(scores, eta)
  result = {
    "eta": eta,
    "target_specificity": target_specificity,
    **_rates(accepted, correct, non_landmark),
    "non_landmark_images": int(non_landmark.sum()),
    "landmark_images": int(landmark.sum()),
  }
  if recognizer.index.references is not None:
    result.update(
      _reference_calibration(predictions, scores, correct, non_landmark, target_specificity)
    )
  return result


def _rates(accepted: np.ndarray, correct: np.ndarray, non_landmark: np.ndarray) -> dict:
  landmark = ~non_landmark
  return {
    "specificity": float(np.mean(~accepted[non_landmark])),
    "sensitivity": float(np.mean(correct[landmark] & accepted[landmark]))
    if landmark.any()
    else math.nan,
  }


def _eta_given(
  scores: np.ndarray, passes: np.ndarray, non_landmark: np.ndarray, target: float
) -> float:
  """η for the target specificity when the non-landmark photos that fail the references
  (`~passes`) are rejected anyway: η rejects only as many of the others as are still
  needed (-1, accepting every score, when none are)."""
  needed = math.ceil(target * int(non_landmark.sum()) - 1e-9)
  still = needed - int((non_landmark & ~passes).sum())
  if still <= 0:
    return -1.0  # every score reaches it (cosine ≥ -1): ρ alone meets the target
  return threshold.threshold_rejecting(np.sort(scores[non_landmark & passes])[still - 1])


def _reference_calibration(
  predictions,
  scores: np.ndarray,
  correct: np.ndarray,
  non_landmark: np.ndarray,
  target_specificity: float,
  max_candidates: int = 512,
) -> dict:
  """ρ and η together, for the target specificity, with the most validation sensitivity.

  ρ's candidates are the thresholds just above each non-landmark photo's similarity to its
  best candidate's references (the values where the rule changes, as for η; quantiles of
  them beyond `max_candidates`), and -inf, which leaves η alone. For each, η is chosen as
  `_eta_given`; the pair whose validation sensitivity is highest wins, the lower ρ on ties,
  so references are used only when they buy sensitivity at the same specificity and the
  rule never does worse on the validation photos than η alone. Photos whose candidate has
  no references are not checked."""
  similarity = np.array(
    [-np.inf if p.reference_similarity is None else p.reference_similarity for p in predictions],
    np.float32,
  )
  checked = np.array([p.reference_similarity is not None for p in predictions], bool)
  values = np.unique(similarity[checked & non_landmark])
  if not len(values):
    return {}
  if len(values) > max_candidates:
    values = np.unique(np.quantile(values, np.linspace(0, 1, max_candidates), method="nearest"))
  best = None
  for rho in [-math.inf] + [threshold.threshold_rejecting(v) for v in values]:
    passes = ~checked | threshold.accepted(similarity, rho)
    eta = _eta_given(scores, passes, non_landmark, target_specificity)
    accepted = threshold.accepted(scores, eta) & passes
    rates = _rates(accepted, correct, non_landmark)
    if best is None or rates["sensitivity"] > best[2]["sensitivity"]:
      best = (rho, eta, rates)
  rho, eta, rates = best
  if rho == -math.inf:  # the references bought nothing on these photos: not applied
    rho = eta = None
  return {
    "reference_threshold": rho,
    "eta_with_references": eta,
    "specificity_with_references": rates["specificity"],
    "sensitivity_with_references": rates["sensitivity"],
  }


def calibrate(
  recognizer, source: ImageSource, target_specificity: float = 0.99
) -> dict[str, float]:
  """Chooses η for `recognizer` on a validation source (landmark and non-landmark photos):
  `calibrate_on` its photos, embedded."""
  return calibrate_on(recognizer, embed_validation(recognizer, source), target_specificity)


def calibrated_index(
  trained,
  index: CentroidIndex,
  validation: ValidationSet,
  target_specificity: float,
  photos: str = "",
) -> tuple[CentroidIndex, dict[str, float]]:
  """`index` with η chosen on `validation` for the target, keeping `validation` so that a
  later edit can recalibrate without the photos; and the calibration's figures (with
  `photos`, words saying where the validation photos came from)."""
  from landmark_jax.recognize import Recognizer

  result = calibrate_on(Recognizer(trained, index, eta=-math.inf), validation, target_specificity)
  result["index_edits"] = len(index.metadata.get("edits", []))  # η is as old as this edit
  if photos:
    result["validation_photos"] = photos
  # ρ (and the η that goes with it) from this calibration, or none: those of an earlier
  # calibration would not fit this index.
  values = {
    "eta": result["eta"],
    "calibration": result,
    "reference_threshold": result.get("reference_threshold"),
    "eta_with_references": result.get("eta_with_references"),
  }
  return index.with_metadata(**values).with_validation(validation), result
