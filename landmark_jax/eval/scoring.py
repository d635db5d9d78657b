"""Test photos scored by a decision (`ScoredPhotos`: each photo's nearest landmark and best
similarity, with and without its location), and the figures at a threshold η
(`evaluate_scored`: sensitivity, specificity, their breakdowns, GAP)."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from landmark_jax.embedding import EmbeddedPhotos
from landmark_jax.errors import DataError
from landmark_jax.eval.collection import MIN_PHOTOS, check_enough_photos
from landmark_jax.eval.metrics import gap, sensitivity_specificity, top1_accuracy
from landmark_jax.geo import Location
from landmark_jax.index import threshold
from landmark_jax.recognize.decision import Decision
from landmark_jax.text import printable

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ScoredPhotos:
  """Per test photo: its true landmark (None = none), nearest landmark and its score."""

  ids: list[str]
  truth: list[Hashable | None]
  nearest: list[Hashable | None]  # None: no candidate survived the geo filter
  scores: np.ndarray
  located: int = 0  # photos whose location was used
  # With class references (the index's ρ): whether each photo is close enough to its nearest
  # landmark's reference photos (True where not checked); None: references not applied
  near_references: np.ndarray | None = None
  # Each photo's best similarity to its nearest landmark's reference photos (nan: none)
  reference_similarity: np.ndarray | None = None

  def predictions(self, eta: float) -> list[Hashable | None]:
    accepted = threshold.accepted(self.scores, eta)
    if self.near_references is not None:
      accepted = accepted & self.near_references
    return [n if n is not None and a else None for n, a in zip(self.nearest, accepted)]

  def without_references(self) -> "ScoredPhotos":
    return dataclasses.replace(self, near_references=None)


def load_locations(path: str | os.PathLike) -> dict[str, Location]:
  """``id,latitude,longitude`` rows → photo id → location; a cell that is no number (or is
  empty: leave the photo out instead) is a DataError naming the photo."""
  from landmark_jax.data.tables import read_csv
  from landmark_jax.index.landmarks import parse_coordinate

  locations = {}
  for row in read_csv(path, ["id", "latitude", "longitude"]):
    where = f"{path}: photo {printable(row['id'].strip())}"
    latitude, longitude = (parse_coordinate(where, c, row[c]) for c in ("latitude", "longitude"))
    if latitude is None or longitude is None:
      raise DataError(f"{where} has no latitude or longitude; leave out a photo without both")
    locations[row["id"].strip()] = Location(latitude, longitude)
  return locations


def photo_locations(
  embedded: EmbeddedPhotos, table: Mapping[str, Location] | None = None
) -> list[Location | None]:
  """Each embedded photo's location: from `table` by id, else its EXIF GPS position (read
  when the photo was decoded), else None."""
  table = table or {}
  exif = embedded.locations or [None] * len(embedded.ids)
  return [table.get(str(image_id), found) for image_id, found in zip(embedded.ids, exif)]


def score_embedded(
  decision: Decision, embedded: EmbeddedPhotos, locations: Sequence[Location | None] | None = None
) -> ScoredPhotos:
  """Every embedded photo's nearest landmark and score by `decision`, without a threshold
  (candidates restricted by `locations`, one per photo, when given)."""
  predictions = decision.predict(embedded.embeddings, eta=-math.inf, locations=locations)
  near_references, similarity = None, None
  if decision.index.references is not None:
    similarity = np.array(
      [np.nan if p.reference_similarity is None else p.reference_similarity for p in predictions],
      np.float64,
    )
  if decision.reference_threshold is not None:
    near_references = np.array(
      [
        p.reference_similarity is None
        or threshold.is_landmark(p.reference_similarity, p.reference_threshold)
        for p in predictions
      ],
      bool,
    )
  return ScoredPhotos(
    [str(i) for i in embedded.ids],
    embedded.landmark_ids(),
    # Back to the label map's ids, as the truth is (and the counts and categories keyed).
    [
      decision.label_map_id(p.candidates[0].landmark_id) if p.candidates else None
      for p in predictions
    ],
    np.array([p.score for p in predictions]),
    sum(l is not None for l in locations) if locations is not None else 0,
    near_references,
    similarity,
  )


def score_groups(scored: ScoredPhotos) -> dict[str, np.ndarray]:
  """The best similarities of landmark photos whose nearest landmark is right, of those
  whose nearest is wrong, and of non-landmark photos: what `plot_score_distributions` draws."""
  truth = np.array([t is not None for t in scored.truth])
  right = np.array([t is not None and n == t for t, n in zip(scored.truth, scored.nearest)])
  return {
    "landmark photos, nearest landmark right": scored.scores[right],
    "landmark photos, nearest landmark wrong": scored.scores[truth & ~right],
    "non-landmark photos": scored.scores[~truth],
  }


def threshold_sweep(scored: ScoredPhotos, num: int = 201) -> dict[str, np.ndarray]:
  low, high = float(scored.scores.min()), float(scored.scores.max())
  etas = np.linspace(low - 1e-3, high + 1e-3, num)
  sensitivity, specificity = [], []
  for eta in etas:
    result = sensitivity_specificity(scored.predictions(eta), scored.truth)
    sensitivity.append(result["sensitivity"])
    specificity.append(result["specificity"])
  return {"eta": etas, "sensitivity": np.array(sensitivity), "specificity": np.array(specificity)}


def flag_small_rows(result: dict[str, Any], min_photos: int) -> list[tuple[str, dict]]:
  """Flags breakdown rows on fewer than `min_photos` photos (``indicative_only``: shown, but
  indicative only); returns the flagged (name, row) pairs."""
  flagged = []
  for table in ("by_frequency", "by_category"):
    for name, row in result.get(table, {}).items():
      row["indicative_only"] = row["images"] < min_photos
      if row["indicative_only"]:
        flagged.append((name, row))
  return flagged


def _mark_small_rows(result: dict[str, Any], min_photos: int) -> None:
  """`flag_small_rows`, logging each flagged row with its count; undefined headline figures
  are logged too."""
  for name, row in flag_small_rows(result, min_photos):
    logger.warning(
      "sensitivity of %r landmarks rests on %d photos, fewer than %d: indicative only",
      name,
      row["images"],
      min_photos,
    )
  for count, rate, photos in (
    ("landmark_images", "sensitivity", "landmark"),
    ("non_landmark_images", "specificity", "non-landmark"),
  ):
    if result[count] == 0:
      logger.warning("no %s photos: %s is undefined", photos, rate)


def figures_at(
  scored: ScoredPhotos,
  eta: float,
  *,
  train_counts: Mapping[Hashable, int] | None = None,
  rare_threshold: int = 10,
  categories: Mapping[Hashable, str] | None = None,
) -> dict[str, Any]:
  """`sensitivity_specificity` of ``scored.predictions(eta)`` (so with class references
  where `scored` applies them) with its breakdowns, plus GAP and top-1 accuracy; no checks."""
  predictions = scored.predictions(eta)
  result = sensitivity_specificity(
    predictions,
    scored.truth,
    train_counts=train_counts,
    rare_threshold=rare_threshold,
    categories=categories,
  )
  solution = {i: ([t] if t is not None else []) for i, t in zip(scored.ids, scored.truth)}
  thresholded = {
    i: (p, float(s)) for i, p, s in zip(scored.ids, predictions, scored.scores) if p is not None
  }
  everything = {
    i: (n, float(s)) for i, n, s in zip(scored.ids, scored.nearest, scored.scores) if n is not None
  }
  if any(solution.values()):
    result["gap"] = gap(thresholded, solution)
    result["gap_without_threshold"] = gap(everything, solution)
    result["gap_ignoring_non_landmarks"] = gap(everything, solution, ignore_non_landmarks=True)
    result["top1_accuracy"] = top1_accuracy(everything, solution)
  return result


def evaluate_scored(
  scored: ScoredPhotos,
  eta: float,
  *,
  train_counts: Mapping[Hashable, int] | None = None,
  rare_threshold: int = 10,
  categories: Mapping[Hashable, str] | None = None,
  min_photos: int = MIN_PHOTOS,
) -> dict[str, Any]:
  """`figures_at` `eta`; refuses (`DataError`) when a headline figure would rest on fewer
  than `min_photos` photos and flags breakdown rows that do (``indicative_only``)."""
  result = figures_at(
    scored, eta, train_counts=train_counts, rare_threshold=rare_threshold, categories=categories
  )
  check_enough_photos(result["landmark_images"], result["non_landmark_images"], min_photos)
  _mark_small_rows(result, min_photos)
  result["eta"] = eta
  result["images"] = len(scored.ids)
  result["min_photos"] = min_photos
  return result
