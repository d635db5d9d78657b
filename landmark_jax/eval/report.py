"""`landmark-jax evaluate`: the paper's tables and plots for a model + index on a test set,
written to one folder (report.md and .json, predictions.csv, the plots). The headline is the
paper's offline test (η alone, no geo-information, no class references); the settings the
recognizer adds (ρ, locations, verified answers) stand beside it (`SETTINGS`, and
``verification`` when the recognizer verifies)."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import pathlib
from typing import Any, Callable, Hashable, Mapping

import numpy as np

from landmark_jax.data import ImageSource, source_for
from landmark_jax.data.labels import LabelMap
from landmark_jax.data.transforms import record_data
from landmark_jax.embedding import EmbeddedPhotos
from landmark_jax.eval.collection import (
  MIN_PHOTOS,
  check_collection_size,
  check_enough_photos,
  emulate_collection,
  photo_counts,
)
from landmark_jax.eval.markdown import report_markdown
from landmark_jax.eval.plots import (
  plot_score_distributions,
  plot_sensitivity_specificity,
  plot_threshold_sweep,
)
from landmark_jax.eval.scoring import (
  ScoredPhotos,
  evaluate_scored,
  figures_at,
  flag_small_rows,
  load_locations,
  photo_locations,
  score_embedded,
  score_groups,
  threshold_sweep,
)
from landmark_jax.geo import Location
from landmark_jax.index.verify_rule import VerifyBand
from landmark_jax.recognize.decision import Decision
from landmark_jax.recognize.embedder import PhotoEmbedder
from landmark_jax.recognize.recognizer import Recognizer
from landmark_jax.text import spreadsheet_cell
from landmark_jax.train.checkpoints import TrainedModel

logger = logging.getLogger(__name__)


PREDICTIONS_HEADER = (
  "id",
  "landmark_id",
  "nearest_landmark_id",
  "score",
  "predicted_landmark_id",
  "predicted_with_references",
  "reference_similarity",
)
# After those when the recognizer verifies (`VerifiedPhotos`).
VERIFICATION_HEADER = ("predicted_with_verification", "verified", "inliers")


@dataclasses.dataclass
class VerifiedPhotos(ScoredPhotos):
  """Scored photos as the recognizer answers them when it verifies: where `verified` (the
  score fell in `band` around the η verification ran at, and a candidate had stored
  photos), the landmark local features found; elsewhere η and ρ, as `ScoredPhotos`. Its
  `predictions` hold at that η only."""

  verified: np.ndarray | None = None  # (n,) bool
  verified_landmark: list[Hashable | None] | None = None  # where verified (None: rejected)
  inliers: list[int | None] | None = None  # where verified: `Check.inliers`, else None
  band: VerifyBand | None = None

  def predictions(self, eta: float) -> list[Hashable | None]:
    return [
      answer if verified else base
      for base, verified, answer in zip(
        super().predictions(eta), self.verified, self.verified_landmark
      )
    ]


def verify_scored(
  verifier, scored: ScoredPhotos, embedded: EmbeddedPhotos, source: ImageSource
) -> VerifiedPhotos:
  """`scored` (the photos of `embedded`, from `source`, scored by ``verifier.decision``)
  with the answers `verifier` settles: each photo it `needs` is read again from its record
  and described whole, as recognition describes it (`recognize.verifier`)."""
  decision = verifier.decision
  predictions = decision.predict(embedded.embeddings)
  position = {str(record_id): i for i, record_id in enumerate(source.ids)}
  n = len(predictions)
  verified, answers, inliers = np.zeros(n, bool), [None] * n, [None] * n
  rows = [row for row, prediction in enumerate(predictions) if verifier.needs(prediction)]
  logger.info("verifying the %d of %d photos whose score is in the band", len(rows), n)
  for row in rows:
    image = record_data(source[position[str(embedded.ids[row])]])
    prediction = predictions[row]
    answer = verifier.verified(prediction, verifier.check(verifier.describe(image), prediction))
    verified[row] = True
    inliers[row] = answer.inliers
    if answer.landmark_id is not None:
      answers[row] = decision.label_map_id(answer.landmark_id)
  return VerifiedPhotos(
    **{field.name: getattr(scored, field.name) for field in dataclasses.fields(ScoredPhotos)},
    verified=verified,
    verified_landmark=answers,
    inliers=inliers,
    band=verifier.band,
  )


def write_predictions(
  scored: ScoredPhotos,
  eta: float,
  path: str | os.PathLike,
  eta_without_references: float | None = None,
  verified_scored: VerifiedPhotos | None = None,
) -> None:
  """One row per photo: its true landmark, nearest landmark, best score, the prediction of
  the paper's offline test (η alone: `eta_without_references`, else `eta`; empty = none),
  the recognizer's (η and ρ, as `scored` applies them; the same where no ρ applies) and the
  similarity to the nearest landmark's reference photos (empty: not kept): everything the
  report's figures without geo-information are computed from. With `verified_scored`, also
  the recognizer's answer with verification, whether verification settled it (true or
  false) and its inliers (empty: not verified)."""
  alone = eta if eta_without_references is None else eta_without_references

  def cell(value):  # ids and landmarks are text a spreadsheet must not run as a formula
    return "" if value is None else spreadsheet_cell(value)

  similarity = (
    scored.reference_similarity
    if scored.reference_similarity is not None
    else np.full(len(scored.ids), np.nan)
  )
  verification_cells = [()] * len(scored.ids)
  if verified_scored is not None:
    verification_cells = [
      (cell(answer), "true" if verified else "false", cell(inliers))
      for answer, verified, inliers in zip(
        verified_scored.predictions(eta), verified_scored.verified, verified_scored.inliers
      )
    ]
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(PREDICTIONS_HEADER + (() if verified_scored is None else VERIFICATION_HEADER))
    for row in zip(
      scored.ids,
      scored.truth,
      scored.nearest,
      scored.scores.tolist(),
      scored.without_references().predictions(alone),
      scored.predictions(eta),
      similarity.tolist(),
      verification_cells,
    ):
      writer.writerow(
        [
          cell(row[0]),
          cell(row[1]),
          cell(row[2]),
          repr(float(row[3])),
          cell(row[4]),
          cell(row[5]),
          "" if np.isnan(row[6]) else repr(float(row[6])),
          *row[7],
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


# The figures of a `sensitivity_specificity` result that the with/without tables show.
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

# The settings `evaluate` measures, in the report's order: (key, label, geo-information,
# class references). The first is the headline: the paper's offline test (Boiarov & Tyantov
# 2019, §4), with neither geo-information nor landmark references.
SETTINGS = (
  ("paper", "paper's offline test (η, no ρ)", False, False),
  ("references", "with references (η, ρ)", False, True),
  ("geo", "with geo-information (η, no ρ)", True, False),
  ("geo_references", "with geo-information and references (η, ρ)", True, True),
)


def measure_settings(
  scored: ScoredPhotos,
  eta: float,
  *,
  eta_without_references: float | None = None,
  reference_threshold: float | None = None,
  geo_scored: ScoredPhotos | None = None,
  verified_scored: VerifiedPhotos | None = None,
  min_photos: int = MIN_PHOTOS,
  **breakdowns,
) -> dict[str, dict[str, Any]]:
  """The figures (`figures_at`, breakdowns flagged as `evaluate_scored` does) of every
  setting of `SETTINGS` the photos allow: η alone (`eta_without_references`, else `eta`)
  without references, always; η and ρ where `scored` applies class references; the same
  with geo-information when `geo_scored` is given; and last, with `verified_scored`, the
  recognizer's answers with verification (``verification``: η, ρ where it applies, the
  band and k). Each with its ``label``, ``eta``, ``reference_threshold`` (None: not
  checked), ``geo`` and ``references`` (both booleans); the verified one also with its
  ``verification`` (the band, k and how many photos it settled)."""
  alone = eta if eta_without_references is None else eta_without_references
  settings = {}
  for key, label, geo, references in SETTINGS:
    photos = geo_scored if geo else scored
    if photos is None or (references and photos.near_references is None):
      continue
    if not references:
      photos = photos.without_references()
    threshold = eta if references else alone
    figures = figures_at(photos, threshold, **breakdowns)
    flag_small_rows(figures, min_photos)
    settings[key] = {
      "label": label,
      "eta": threshold,
      "reference_threshold": reference_threshold if references else None,
      "geo": geo,
      "references": references,
      **figures,
    }
  if verified_scored is not None:
    settings["verification"] = _verified_setting(
      verified_scored, eta, reference_threshold, min_photos, breakdowns
    )
  return settings


def _verified_setting(verified_scored, eta, rho, min_photos, breakdowns) -> dict[str, Any]:
  band = verified_scored.band
  figures = figures_at(verified_scored, eta, **breakdowns)
  flag_small_rows(figures, min_photos)
  verified = np.asarray(verified_scored.verified, bool)
  accepted = sum(a is not None for a, v in zip(verified_scored.verified_landmark, verified) if v)
  return {
    "label": f"with verification ({'η, ρ' if rho is not None else 'η'}, band, k)",
    "eta": eta,
    "reference_threshold": rho,
    "geo": False,
    "references": rho is not None,
    "verification": {
      "below": band.below,
      "above": band.above,
      "min_inliers": band.min_inliers,
      "candidates": band.candidates,
      "verified_photos": int(verified.sum()),
      "verified_share": float(verified.mean()) if len(verified) else 0.0,
      "accepted": int(accepted),
    },
    **figures,
  }


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
  verified_scored: VerifiedPhotos | None = None,
) -> dict[str, Any]:
  """report.md, report.json, predictions.csv and the plots.

  The headline figures (and the plots) are the paper's offline test: η alone
  (`eta_without_references`, else `eta`), without class references or geo-information.
  Beside them, for the headline and every breakdown (`measure_settings`, under
  ``settings``): with references (`eta` and `reference_threshold` ρ, as the recognizer
  decides) where `scored` applies them (`near_references`), and with geo-information where
  `geo_scored` (the same photos scored with their locations) is given, and with
  verification where `verified_scored` (the same photos as the recognizer answers them
  when it verifies, at `eta`) is given. ``eta`` and ``reference_threshold`` stay what the
  recognizer applies. `min_photos` as
  `evaluate_scored`; `indexed`, the landmarks the index has, to count (and say) how many
  landmark photos show one it does not have."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  alone = eta if eta_without_references is None else eta_without_references
  rho = None if scored.near_references is None else reference_threshold
  breakdowns = dict(train_counts=train_counts, rare_threshold=rare_threshold, categories=categories)
  paper = scored.without_references()
  result = evaluate_scored(paper, alone, min_photos=min_photos, **breakdowns)
  settings = measure_settings(
    scored,
    eta,
    eta_without_references=alone,
    reference_threshold=rho,
    geo_scored=geo_scored,
    verified_scored=verified_scored,
    min_photos=min_photos,
    **breakdowns,
  )
  result["headline"] = "paper"  # the key in `settings` of the figures at the top level
  result["settings"] = settings
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
  sweep = threshold_sweep(paper)
  plot_threshold_sweep(
    sweep["eta"],
    sweep["sensitivity"],
    sweep["specificity"],
    alone,
    out / "threshold_sweep.png",
    f"{title}: sensitivity and specificity against η (alone)",
    landmark_photos=result["landmark_images"],
    non_landmark_photos=result["non_landmark_images"],
  )
  plot_sensitivity_specificity(
    sweep["sensitivity"],
    sweep["specificity"],
    result,
    alone,
    out / "sensitivity_specificity.png",
    f"{title}: sensitivity–specificity (η alone)",
  )
  plot_score_distributions(
    score_groups(scored),
    alone,
    out / "score_distributions.png",
    f"{title}: best similarity by kind of photo",
  )
  write_predictions(scored, eta, out / "predictions.csv", alone, verified_scored)
  if geo_scored is not None:
    # The same photos, so the same counts as above: only the rates can differ.
    result["geo"] = {
      "with": {k: settings["geo"][k] for k in _HEADLINE},
      "without": {k: result[k] for k in _HEADLINE},
      "located_photos": int(geo_scored.located),
    }
  if scored.near_references is None and scored.reference_similarity is not None:
    result["references_not_applied"] = True  # kept by the index, but calibration chose no ρ
  # What the recognizer applies ("one η everywhere"); the headline's η is settings' "paper".
  result["eta"] = eta
  result["reference_threshold"] = rho
  if "references" in settings:
    result["references"] = {
      "with": {k: settings["references"][k] for k in _HEADLINE},
      "without": {k: result[k] for k in _HEADLINE},
      "reference_threshold": rho,
      "eta_without_references": alone,
    }
  if "verification" in settings:
    # Beside the recognizer's answers without it: η and ρ where ρ applies, else η alone.
    without = settings["references" if "references" in settings else "paper"]
    result["verification"] = {
      "with": {k: settings["verification"][k] for k in _HEADLINE},
      "without": {k: without[k] for k in _HEADLINE},
      **settings["verification"]["verification"],
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
  verifier=None,
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
    verifier: a `recognize.verifier.Verifier` on `decision`: the report also gives the
      answers with verification (`verify_scored`) beside the others.
  """
  if verifier is not None and verifier.decision is not decision:
    raise ValueError("the verifier must settle `decision`'s answers (Verifier(trained, decision))")
  check_enough_photos(*photo_counts(source), min_photos)
  embedded = embedder.embed_source(source, read_exif=geo or locations is not None)
  geo_scored = None
  if geo or locations is not None:
    geo_scored = score_embedded(decision, embedded, photo_locations(embedded, locations))
  scored = score_embedded(decision, embedded)
  return write_report(
    scored,
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
    verified_scored=None if verifier is None else verify_scored(verifier, scored, embedded, source),
  )


def evaluate_recognizer(recognizer, source: ImageSource, out_dir: str | os.PathLike, **options):
  """`evaluate_source` with a `landmark_jax.Recognizer`'s embedder, decision and verifier
  (None: it does not verify)."""
  options.setdefault("verifier", recognizer.verifier)
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
  verify: bool | None = None,
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
    allow_other_model, verify: as `Recognizer.load` and `Recognizer`.
    options: `evaluate_source`'s (``geo``, ``rare_threshold``, ``min_photos``, ``title``).
  """
  recognizer = Recognizer.load(
    checkpoint, index_dir, eta=eta, allow_other_model=allow_other_model, verify=verify
  )
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
