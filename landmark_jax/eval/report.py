"""`landmark-jax evaluate`: the paper's tables and plots for a model + index on a test set."""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import os
import pathlib
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from landmark_jax.data import ImageSource
from landmark_jax.errors import ConfigError, DataError
from landmark_jax.eval.metrics import gap, sensitivity_specificity, top1_accuracy
from landmark_jax.eval.plots import (
  plot_score_distributions,
  plot_sensitivity_specificity,
  plot_threshold_sweep,
)
from landmark_jax.geo import Location
from landmark_jax.index import threshold

logger = logging.getLogger(__name__)

# Fewest photos a headline figure may rest on. With 20 photos the 95 % Wilson interval of a
# rate near 100 % is still about 16 points wide (20 of 20: 83.9–100 %), and one photo more or
# less moves the rate by 5 points: below that a figure says more about the draw than about
# the model.
MIN_PHOTOS = 20


def _photos(count: int, kind: str) -> str:
  return f"{count} {kind} photo{'s' * (count != 1)}"


def landmark_photos_wanted(non_landmark_photos: int, landmark_share: float) -> int:
  """How many landmark photos make `landmark_share` of a collection next to
  `non_landmark_photos` (at least one): what `emulate_collection` samples."""
  if not 0 < landmark_share < 1:
    raise ConfigError(f"landmark share must be in (0, 1) (exclusive), got {landmark_share}")
  if non_landmark_photos == 0:
    raise DataError(
      "the test set has no non-landmark photos, so no share of landmark photos "
      "can be emulated: leave the landmark share out to keep the test set as it is"
    )
  return max(1, round(landmark_share / (1 - landmark_share) * non_landmark_photos))


def photo_counts(source: ImageSource) -> tuple[int, int]:
  """(landmark photos, non-landmark photos) of a source, from its labels alone."""
  non_landmark = int(np.sum(source.labels == source.label_map.non_landmark_label))
  return len(source.labels) - non_landmark, non_landmark


def check_collection_size(
  source: ImageSource, landmark_share: float, min_photos: int = MIN_PHOTOS
) -> None:
  """Raises `DataError` when `emulate_collection(source, landmark_share)` would keep fewer
  than `min_photos` landmark photos, saying what would be enough. Needs only the labels, so
  it runs before any photo is embedded."""
  landmark, non_landmark = photo_counts(source)
  kept = min(landmark, landmark_photos_wanted(non_landmark, landmark_share))
  if kept >= min_photos:
    return
  stated = (
    f"a {100 * landmark_share:g} % landmark share of "
    f"{_photos(non_landmark, 'non-landmark')} keeps {_photos(kept, 'landmark')}, "
    f"fewer than --min-photos {min_photos}"
  )
  if landmark < min_photos:
    raise DataError(
      f"{stated}; the test set has only {landmark} landmark photos: add landmark "
      "photos or lower --min-photos (0 turns the check off)"
    )
  # What would keep min_photos: the fewest non-landmark photos at this share, and the
  # smallest share (to 0.1 %, rounded up) with these photos, by the rounding above.
  needed = max(1, math.floor((min_photos - 0.5) * (1 - landmark_share) / landmark_share))
  while landmark_photos_wanted(needed, landmark_share) < min_photos:
    needed += 1
  share = math.ceil(1000 * min_photos / (non_landmark + min_photos)) / 1000
  larger_share = f"a share of at least {100 * share:g} %" if share < 1 else "a larger share"
  raise DataError(
    f"{stated}: use at least {needed} non-landmark photos, {larger_share} "
    "(--landmark-share), or a lower --min-photos (0 turns the check off)"
  )


def emulate_collection(source: ImageSource, landmark_share: float, seed: int = 0) -> ImageSource:
  """A test set where `landmark_share` of the photos show a landmark (a user's collection:
  the paper's 1–3 %): every non-landmark photo is kept and landmark photos are sampled
  (`landmark_photos_wanted`). When the test set has too few landmark photos for the share,
  all are kept and the share falls short (logged)."""
  non_landmark = np.flatnonzero(source.labels == source.label_map.non_landmark_label)
  landmark = np.flatnonzero(source.labels != source.label_map.non_landmark_label)
  wanted = landmark_photos_wanted(len(non_landmark), landmark_share)
  if wanted < len(landmark):
    landmark = np.sort(np.random.default_rng(seed).choice(landmark, wanted, replace=False))
  elif wanted > len(landmark):
    logger.warning(
      "a %g %% landmark share of %d non-landmark photos needs %d landmark photos, "
      "the test set has %d: all kept, a %.1f %% share",
      100 * landmark_share,
      len(non_landmark),
      wanted,
      len(landmark),
      100 * len(landmark) / (len(landmark) + len(non_landmark)),
    )
  return source.subset(np.sort(np.concatenate([landmark, non_landmark])))


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
  """``id,latitude,longitude`` rows → photo id → location."""
  from landmark_jax.data.sources import read_csv

  return {
    row["id"].strip(): Location(float(row["latitude"]), float(row["longitude"]))
    for row in read_csv(path, ["id", "latitude", "longitude"])
  }


def photo_locations(embedded, table: Mapping[str, Location] | None = None) -> list[Location | None]:
  """Each embedded photo's location: from `table` by id, else its EXIF GPS position (read
  when the photo was decoded), else None."""
  table = table or {}
  return [
    table.get(str(image_id), exif) for image_id, exif in zip(embedded.ids, embedded.locations)
  ]


def score_embedded(
  recognizer, embedded, locations: Sequence[Location | None] | None = None
) -> ScoredPhotos:
  """Every embedded photo's nearest landmark and score, without a threshold (candidates
  restricted by `locations`, one per photo, when given)."""
  predictions = recognizer.predict_embeddings(
    embedded.embeddings, eta=-math.inf, locations=locations
  )
  near_references, similarity = None, None
  if recognizer.index.references is not None:
    similarity = np.array(
      [np.nan if p.reference_similarity is None else p.reference_similarity for p in predictions],
      np.float64,
    )
  if recognizer.reference_threshold is not None:
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
    [p.candidates[0].landmark_id if p.candidates else None for p in predictions],
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


def threshold_sweep(scored: ScoredPhotos, num: int = 201) -> dict[str, np.ndarray]:
  low, high = float(scored.scores.min()), float(scored.scores.max())
  etas = np.linspace(low - 1e-3, high + 1e-3, num)
  sensitivity, specificity = [], []
  for eta in etas:
    result = sensitivity_specificity(scored.predictions(eta), scored.truth)
    sensitivity.append(result["sensitivity"])
    specificity.append(result["specificity"])
  return {"eta": etas, "sensitivity": np.array(sensitivity), "specificity": np.array(specificity)}


def check_enough_photos(
  landmark_photos: int, non_landmark_photos: int, min_photos: int = MIN_PHOTOS
) -> None:
  """Raises `DataError` when sensitivity would rest on fewer than `min_photos` landmark
  photos or specificity on fewer than `min_photos` non-landmark photos (0: only when there
  are no photos at all)."""
  if landmark_photos + non_landmark_photos == 0:
    raise DataError("no test photos to evaluate")
  if landmark_photos >= min_photos and non_landmark_photos >= min_photos:
    return
  if landmark_photos >= min_photos:
    more = "more non-landmark photos"
  elif non_landmark_photos >= min_photos:
    more = "more landmark photos (or a larger --landmark-share)"
  else:
    more = "more photos of both kinds"
  raise DataError(
    f"sensitivity would rest on {_photos(landmark_photos, 'landmark')} and specificity on "
    f"{_photos(non_landmark_photos, 'non-landmark')}; each needs at least --min-photos "
    f"{min_photos} (min_photos={min_photos}) to mean something: evaluate on {more}, or "
    "lower --min-photos (0 turns the check off; figures are then shown with their n)"
  )


def _mark_small_rows(result: dict[str, Any], min_photos: int) -> None:
  """Flags breakdown rows on fewer than `min_photos` photos (shown, but indicative only) and
  logs each with its count; undefined headline figures are logged too."""
  for table in ("by_frequency", "by_category"):
    for name, row in result.get(table, {}).items():
      row["indicative_only"] = row["images"] < min_photos
      if row["indicative_only"]:
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


def evaluate_scored(
  scored: ScoredPhotos,
  eta: float,
  *,
  train_counts: Mapping[Hashable, int] | None = None,
  rare_threshold: int = 10,
  categories: Mapping[Hashable, str] | None = None,
  min_photos: int = MIN_PHOTOS,
) -> dict[str, Any]:
  """`sensitivity_specificity` at `eta` plus GAP and top-1 accuracy; refuses (`DataError`)
  when a headline figure would rest on fewer than `min_photos` photos and flags breakdown
  rows that do (``indicative_only``)."""
  result = sensitivity_specificity(
    scored.predictions(eta),
    scored.truth,
    train_counts=train_counts,
    rare_threshold=rare_threshold,
    categories=categories,
  )
  check_enough_photos(result["landmark_images"], result["non_landmark_images"], min_photos)
  _mark_small_rows(result, min_photos)
  solution = {i: ([t] if t is not None else []) for i, t in zip(scored.ids, scored.truth)}
  thresholded = {
    i: (p, float(s))
    for i, p, s in zip(scored.ids, scored.predictions(eta), scored.scores)
    if p is not None
  }
  everything = {
    i: (n, float(s)) for i, n, s in zip(scored.ids, scored.nearest, scored.scores) if n is not None
  }
  if any(solution.values()):
    result["gap"] = gap(thresholded, solution)
    result["gap_without_threshold"] = gap(everything, solution)
    result["gap_ignoring_non_landmarks"] = gap(everything, solution, ignore_non_landmarks=True)
    result["top1_accuracy"] = top1_accuracy(everything, solution)
  result["eta"] = eta
  result["images"] = len(scored.ids)
  result["min_photos"] = min_photos
  return result


def _pct(value) -> str:
  return (
    "—"
    if value is None or (isinstance(value, float) and math.isnan(value))
    else f"{100 * value:.1f} %"
  )


def _rate_cell(rate: float, interval: Sequence[float], photos: int) -> str:
  """``16.7 % (8.7–29.6 %), n = 48``; ``—, n = 0`` for a rate over no photos."""
  if photos == 0:
    return "—, n = 0"
  low, high = interval
  return f"{100 * rate:.1f} % ({100 * low:.1f}–{100 * high:.1f} %), n = {photos}"


def _breakdown_table(
  heading: str, rows: Mapping[str, Mapping[str, Any]], min_photos: int
) -> list[str]:
  lines = [
    "",
    f"| {heading} | sensitivity (95 % interval), n photos | share of landmark photos | |",
    "|---|---|---|---|",
  ]
  for name, row in rows.items():
    note = f"n < {min_photos}: indicative only" if row["images"] < min_photos else ""
    lines.append(
      f"| {name} | {_rate_cell(row['sensitivity'], row['sensitivity_ci'], row['images'])} "
      f"| {_pct(row['share'])} | {note} |"
    )
  return lines


def _headline_row(label: str, figures: Mapping[str, Any]) -> str:
  sensitivity = _rate_cell(
    figures["sensitivity"], figures["sensitivity_ci"], figures["landmark_images"]
  )
  specificity = _rate_cell(
    figures["specificity"], figures["specificity_ci"], figures["non_landmark_images"]
  )
  return f"| {label} | {sensitivity} | {specificity} |"


def report_markdown(result: dict[str, Any], title: str = "Evaluation") -> str:
  min_photos = result.get("min_photos", MIN_PHOTOS)
  landmark, images = result["landmark_images"], result["images"]
  lines = [
    f"# {title}",
    "",
    f"{images} test photos, {landmark} with a landmark "
    f"({_pct(result['landmark_share'])}); threshold η = {result['eta']:.4f}. "
    "Rates with their 95 % Wilson score interval and n, the photos they rest on."
    + (
      f" {result['photos_of_landmarks_not_in_index']} of the landmark photos show "
      "landmarks the index does not have (removed, or never added): they count as "
      "landmark photos it cannot recognise."
      if result.get("photos_of_landmarks_not_in_index")
      else ""
    ),
    "",
    "| | sensitivity | specificity |",
    "|---|---|---|",
    _headline_row("all photos", result),
  ]
  if "by_frequency" in result:
    lines += ["", f"Rare landmarks: fewer than {result['rare_threshold']} training images."]
    lines += _breakdown_table("landmarks", result["by_frequency"], min_photos)
  if "by_category" in result:
    lines += _breakdown_table("category", result["by_category"], min_photos)
  if "gap" in result:
    lines += [
      "",
      "| GAP (thresholded) | GAP (no threshold) | GAP (landmark photos only) | top-1 accuracy |",
      "|---|---|---|---|",
      f"| {result['gap']:.4f}, n = {images} | {result['gap_without_threshold']:.4f}, "
      f"n = {images} | {result['gap_ignoring_non_landmarks']:.4f}, n = {landmark} | "
      f"{_pct(result['top1_accuracy'])}, n = {landmark} |",
      "",
      f"GAP over all {images} test photos ({landmark} with a landmark); GAP over "
      f"landmark photos only and top-1 accuracy over the {landmark} landmark photos.",
    ]
  if "geo" in result:
    geo = result["geo"]
    lines += [
      "",
      f"With geo-information ({geo['located_photos']} photos with a location; "
      "candidates restricted to nearby landmarks):",
      "",
      "| | sensitivity | specificity |",
      "|---|---|---|",
      _headline_row("without geo-information", geo["without"]),
      _headline_row("with geo-information", geo["with"]),
    ]
  if result.get("references_not_applied"):
    lines += [
      "",
      "Class references: the index keeps them, but calibration chose no threshold ρ "
      "(none raised validation sensitivity at the target specificity), so η alone "
      "decides; `reference_similarity` in predictions.csv is each photo's similarity "
      "to its nearest landmark's reference photos.",
    ]
  if "references" in result:
    references = result["references"]
    lines += [
      "",
      f"Class references: a photo whose best score clears η is also checked "
      f"against its landmark's reference photos (ρ = "
      f"{references['reference_threshold']:.4f}, calibrated with η for the same "
      "target); the figures above apply both:",
      "",
      "| | sensitivity | specificity |",
      "|---|---|---|",
      _headline_row(
        f"η = {references['eta_without_references']:.4f} alone (without references)",
        references["without"],
      ),
      _headline_row(f"η = {result['eta']:.4f} and ρ (with references)", references["with"]),
    ]
  if "plots" in result:
    lines += ["", *[f"![{name}]({path})" for name, path in result["plots"].items()]]
  return "\n".join(lines) + "\n"


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


def evaluate_recognizer(
  recognizer,
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
  """Recognises every photo of `source` once and writes the report (`write_report`).

  Args:
    training_source: the model's training photos, for the rare/frequent split and the
      categories.
    geo: also score with each photo's location (`locations` by id, else its EXIF GPS).
    min_photos: fewest landmark photos for sensitivity and non-landmark photos for
      specificity; fewer raise `DataError` (checked on the labels before any photo is
      embedded), 0 never.
  """
  check_enough_photos(*photo_counts(source), min_photos)
  embedded = recognizer.embed_source(source, read_exif=geo or locations is not None)
  geo_scored = None
  if geo or locations is not None:
    geo_scored = score_embedded(recognizer, embedded, photo_locations(embedded, locations))
  return write_report(
    score_embedded(recognizer, embedded),
    recognizer.eta,
    out_dir,
    train_counts=training_source.images_per_landmark() if training_source else None,
    rare_threshold=rare_threshold,
    categories=(training_source.categories or None) if training_source else None,
    title=title,
    geo_scored=geo_scored,
    min_photos=min_photos,
    reference_threshold=recognizer.reference_threshold,
    eta_without_references=recognizer.eta_without_references,
    indexed=set(recognizer.label_map.to_landmark_ids(np.unique(recognizer.index.labels))),
  )
