"""`landmark-jax evaluate`: the paper's tables and plots for a model + index on a test set,
written to one folder (report.md and .json, predictions.csv, the plots)."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import pathlib
from typing import Any, Callable, Mapping

import numpy as np

from landmark_jax.data import ImageSource, source_for
from landmark_jax.data.labels import LabelMap
from landmark_jax.eval.collection import (
  MIN_PHOTOS,
  check_collection_size,
  check_enough_photos,
  emulate_collection,
  photo_counts,
)
from landmark_jax.eval.markdown import report_markdown
from landmark_jax.eval.metrics import sensitivity_specificity
from landmark_jax.eval.plots import (
  plot_score_distributions,
  plot_sensitivity_specificity,
  plot_threshold_sweep,
)
from landmark_jax.eval.scoring import (
  ScoredPhotos,
  evaluate_scored,
  load_locations,
  photo_locations,
  score_embedded,
  score_groups,
  threshold_sweep,
)
from landmark_jax.geo import Location
from landmark_jax.recognize.decision import Decision
from landmark_jax.recognize.embedder import PhotoEmbedder
from landmark_jax.recognize.recognizer import Recognizer
from landmark_jax.train.checkpoints import TrainedModel

logger = logging.getLogger(__name__)


PREDICTIONS_HEADER = (
  "id",
  "landmark_id",
  "nearest_landmark_id",
  "score",
  "predicted_landmark_id",
  "reference_similarity",
)


def write_predictions(scored: ScoredPhotos, eta: float, path: str | os.PathLike) -> None:
  """One row per photo: its true landmark, nearest landmark, best score, the prediction at η
  (and ρ, with class references; empty = none) and the similarity to the nearest landmark's
  reference photos (empty: not kept): everything the report's figures are computed from."""

  def cell(value):
    return "" if value is None else value

  similarity = (
    scored.reference_similarity
    if scored.reference_similarity is not None
    else np.full(len(scored.ids), np.nan)
  )
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(PREDICTIONS_HEADER)
    for row in zip(
      scored.ids,
      scored.truth,
      scored.nearest,
      scored.scores.tolist(),
      scored.predictions(eta),
      similarity.tolist(),
    ):
      writer.writerow(
        [
          cell(row[0]),
          cell(row[1]),
          cell(row[2]),
          repr(float(row[3])),
          cell(row[4]),
          "" if np.isnan(row[5]) else repr(float(row[5])),
        ]
      )


def _jsonable(value):
  if isinstance(value, dict):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, np.ndarray):
    return value.tolist()
  if isinstance(value, (np.floating, float)):
    return None if math.isnan(value) else float(value)
  if isinstance(value, np.integer):
    return int(value)
  return value


# The figures of a `sensitivity_specificity` result that the with/without geo table shows.
_HEADLINE = (
  "sensitivity",
  "sensitivity_ci",
  "recognised",
  "landmark_images",
  "specificity",
  "specificity_ci",
  "rejected",
  "non_landmark_images",
)


def write_report(
  scored: ScoredPhotos,
  eta: float,
  out_dir: str | os.PathLike,
  *,
  train_counts=None,
  rare_threshold: int = 10,
  categories=None,
  title: str = "Evaluation",
  geo_scored: ScoredPhotos | None = None,
  min_photos: int = MIN_PHOTOS,
  indexed: set | None = None,
  reference_threshold: float | None = None,
  eta_without_references: float | None = None,
) -> dict[str, Any]:
  """report.md, report.json, threshold_sweep.png and sensitivity_specificity.png; with
  `geo_scored` (the same photos scored with their locations) a with/without geo table.
  `min_photos` as `evaluate_scored`; `indexed`, the landmarks the index has, to count (and
  say) how many landmark photos show one it does not have. When `scored` applies class
  references (`near_references`, at `reference_threshold` ρ, with `eta` calibrated
  alongside), a table of the figures with them and with η alone (`eta_without_references`)."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  result = evaluate_scored(
    scored,
    eta,
    train_counts=train_counts,
    rare_threshold=rare_threshold,
    categories=categories,
    min_photos=min_photos,
  )
  if indexed is not None:
    absent = sorted({t for t in scored.truth if t is not None and t not in indexed}, key=str)
    result["photos_of_landmarks_not_in_index"] = sum(t in set(absent) for t in scored.truth)
    if absent:
      logger.warning(
        "%d test photos show landmarks the index does not have (%s): they count "
        "as landmark photos it cannot recognise",
        result["photos_of_landmarks_not_in_index"],
        ", ".join(map(str, absent[:5])),
      )
  sweep = threshold_sweep(scored)
  plot_threshold_sweep(
    sweep["eta"],
    sweep["sensitivity"],
    sweep["specificity"],
    eta,
    out / "threshold_sweep.png",
    f"{title}: sensitivity and specificity against η",
    landmark_photos=result["landmark_images"],
    non_landmark_photos=result["non_landmark_images"],
  )
  plot_sensitivity_specificity(
    sweep["sensitivity"],
    sweep["specificity"],
    result,
    eta,
    out / "sensitivity_specificity.png",
    f"{title}: sensitivity–specificity",
  )
  plot_score_distributions(
    score_groups(scored),
    eta,
    out / "score_distributions.png",
    f"{title}: best similarity by kind of photo",
  )
  write_predictions(scored, eta, out / "predictions.csv")
  if geo_scored is not None:
    # The same photos, so the same counts as above: only the rates can differ.
    with_geo = sensitivity_specificity(geo_scored.predictions(eta), geo_scored.truth)
    result["geo"] = {
      "with": {k: with_geo[k] for k in _HEADLINE},
      "without": {k: result[k] for k in _HEADLINE},
      "located_photos": int(geo_scored.located),
    }
  if scored.near_references is None and scored.reference_similarity is not None:
    result["references_not_applied"] = True  # kept by the index, but calibration chose no ρ
  # ρ beside η, as the decision applied them (None: references not checked).
  result["reference_threshold"] = None if scored.near_references is None else reference_threshold
  if scored.near_references is not None:
    alone = eta if eta_without_references is None else eta_without_references
    without = sensitivity_specificity(scored.without_references().predictions(alone), scored.truth)
    result["references"] = {
      "with": {k: result[k] for k in _HEADLINE},
      "without": {k: without[k] for k in _HEADLINE},
      "reference_threshold": reference_threshold,
      "eta_without_references": alone,
    }
  result["plots"] = {
    "threshold sweep": "threshold_sweep.png",
    "sensitivity–specificity": "sensitivity_specificity.png",
    "best similarity by kind of photo": "score_distributions.png",
  }
  result["sweep"] = sweep
  (out / "report.json").write_text(json.dumps(_jsonable(result), indent=2))
  (out / "report.md").write_text(report_markdown(result, title))
  return result


def evaluate_source(
  embedder: PhotoEmbedder,
  decision: Decision,
  source: ImageSource,
  out_dir: str | os.PathLike,
  *,
  training_source: ImageSource | None = None,
  rare_threshold: int = 10,
  geo: bool = False,
  locations: Mapping[str, Location] | None = None,
  title: str = "Evaluation",
  min_photos: int = MIN_PHOTOS,
) -> dict[str, Any]:
  """Embeds every photo of `source` once, scores it with `decision` and writes the report
  (`write_report`).

  Args:
    training_source: the model's training photos, for the rare/frequent split and the
      categories.
    geo: also score with each photo's location (`locations` by id, else its EXIF GPS).
    min_photos: fewest landmark photos for sensitivity and non-landmark photos for
      specificity; fewer raise `DataError` (checked on the labels before any photo is
      embedded), 0 never.
  """
  check_enough_photos(*photo_counts(source), min_photos)
  embedded = embedder.embed_source(source, read_exif=geo or locations is not None)
  geo_scored = None
  if geo or locations is not None:
    geo_scored = score_embedded(decision, embedded, photo_locations(embedded, locations))
  return write_report(
    score_embedded(decision, embedded),
    decision.eta,
    out_dir,
    train_counts=training_source.images_per_landmark() if training_source else None,
    rare_threshold=rare_threshold,
    categories=(training_source.categories or None) if training_source else None,
    title=title,
    geo_scored=geo_scored,
    min_photos=min_photos,
    reference_threshold=decision.reference_threshold,
    eta_without_references=decision.eta_without_references,
    indexed=set(decision.label_map.to_landmark_ids(np.unique(decision.index.labels))),
  )


def evaluate_recognizer(recognizer, source: ImageSource, out_dir: str | os.PathLike, **options):
  """`evaluate_source` with a `landmark_jax.Recognizer`'s embedder and decision."""
  return evaluate_source(recognizer.photos, recognizer.decision, source, out_dir, **options)


def evaluate_index(
  checkpoint: str | os.PathLike,
  index_dir: str | os.PathLike,
  out_dir: str | os.PathLike,
  photos: Callable[[TrainedModel, LabelMap], ImageSource],
  *,
  eta: float | None = None,
  landmark_share: float | None = None,
  seed: int = 0,
  locations_csv: str | os.PathLike | None = None,
  allow_other_model: bool = False,
  **options,
) -> dict[str, Any]:
  """`landmark-jax evaluate`: a model and its index on test photos (`evaluate_source`).

  Args:
    photos: the model and the index's label map → the test photos.
    eta: the threshold (default: the index's calibrated η).
    landmark_share: emulate a user's collection where this share of photos show a landmark
      (`emulate_collection`, seeded by `seed`); refused from the labels alone, before any
      photo is embedded, when it keeps too few landmark photos.
    locations_csv: ``id,latitude,longitude`` of the test photos (geo-information).
    allow_other_model: as `Recognizer.load`.
    options: `evaluate_source`'s (``geo``, ``rare_threshold``, ``min_photos``, ``title``).
  """
  recognizer = Recognizer.load(checkpoint, index_dir, eta=eta, allow_other_model=allow_other_model)
  trained = recognizer.trained
  source = photos(trained, recognizer.decision.label_map)
  if landmark_share is not None:
    check_collection_size(source, landmark_share, options.get("min_photos", MIN_PHOTOS))
    source = emulate_collection(source, landmark_share, seed=seed)
  return evaluate_recognizer(
    recognizer,
    source,
    out_dir,
    training_source=source_for(trained.config.data, "train", trained.label_map),
    locations=load_locations(locations_csv) if locations_csv else None,
    **options,
  )
