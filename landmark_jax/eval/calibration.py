"""Choosing η, the similarity threshold between "a landmark" and "no landmark", for a target
specificity on a validation set (photos with and without landmarks)."""

from __future__ import annotations

import math

import numpy as np

from landmark_jax.data import ImageSource
from landmark_jax.errors import ConfigError, DataError


def eta_for_specificity(non_landmark_scores: np.ndarray, target: float) -> float:
  """The smallest η with share(score < η) ≥ target among non-landmark photos.

  With m scores sorted ascending, at least ⌈target·m⌉ of them must fall below η, so η is
  just above the ⌈target·m⌉-th smallest score.
  """
  scores = np.sort(np.asarray(non_landmark_scores, np.float64))
  if not len(scores):
    raise DataError("calibration needs non-landmark photos in the validation set")
  if not 0 < target <= 1:
    raise ConfigError(f"target specificity must be in (0, 1], got {target}")
  needed = math.ceil(target * len(scores) - 1e-9)
  return float(np.nextafter(np.float32(scores[needed - 1]), np.float32(np.inf)))


def calibrate(recognizer, source: ImageSource, target_specificity: float = 0.99
              ) -> dict[str, float]:
  """Chooses η for `recognizer` (a `landmark_jax.Recognizer`) on a validation source
  (landmark and non-landmark photos); η is not applied, the caller stores it."""
  embedded = recognizer.embed_source(source, read_exif=False)
  labels = embedded.labels
  predictions = recognizer.predict_embeddings(embedded.embeddings, eta=-math.inf)
  scores = np.array([p.score for p in predictions])
  non_landmark = labels == source.label_map.non_landmark_label
  eta = eta_for_specificity(scores[non_landmark], target_specificity)
  truth = embedded.landmark_ids()
  correct = np.array([p.candidates[0].landmark_id == t for p, t in zip(predictions, truth)])
  landmark = ~non_landmark
  return {"eta": eta, "target_specificity": target_specificity,
          "specificity": float(np.mean(scores[non_landmark] < eta)),
          "sensitivity": float(np.mean(correct[landmark] & (scores[landmark] >= eta)))
          if landmark.any() else math.nan,
          "non_landmark_images": int(non_landmark.sum()), "landmark_images": int(landmark.sum())}
