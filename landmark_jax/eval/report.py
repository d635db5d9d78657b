"""`landmark-jax evaluate`: the paper's tables and plots for a model + index on a test set."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from landmark_jax.data import ImageSource
from landmark_jax.geo import Location
from landmark_jax.eval.metrics import gap, sensitivity_specificity, top1_accuracy
from landmark_jax.eval.plots import plot_sensitivity_specificity, plot_threshold_sweep


def emulate_collection(source: ImageSource, landmark_share: float, seed: int = 0) -> ImageSource:
  """A test set where `landmark_share` of the photos show a landmark (a user's collection:
  the paper's 1–3 %): every non-landmark photo is kept and landmark photos are sampled (at
  least one). With too few non-landmark photos for the share, landmark photos are all kept."""
  if not 0 < landmark_share < 1:
    raise ValueError(f"landmark share must be in (0, 1), got {landmark_share}")
  non_landmark = np.flatnonzero(source.labels == source.label_map.non_landmark_label)
  landmark = np.flatnonzero(source.labels != source.label_map.non_landmark_label)
  wanted = max(1, round(landmark_share / (1 - landmark_share) * len(non_landmark)))
  if wanted < len(landmark):
    landmark = np.sort(np.random.default_rng(seed).choice(landmark, wanted, replace=False))
  return source.subset(np.sort(np.concatenate([landmark, non_landmark])))


@dataclasses.dataclass
class ScoredPhotos:
  """Per test photo: its true landmark (None = none), nearest landmark and its score."""

  ids: list[str]
  truth: list[Hashable | None]
  nearest: list[Hashable | None]  # None: no candidate survived the geo filter
  scores: np.ndarray
  located: int = 0  # photos whose location was used

  def predictions(self, eta: float) -> list[Hashable | None]:
    return [n if n is not None and s >= eta else None for n, s in zip(self.nearest, self.scores)]


def load_locations(path: str | os.PathLike) -> dict[str, Location]:
  """``id,latitude,longitude`` rows → photo id → location."""
  from landmark_jax.data.sources import read_csv
  return {row["id"].strip(): Location(float(row["latitude"]), float(row["longitude"]))
          for row in read_csv(path, ["id", "latitude", "longitude"])}


def photo_locations(embedded, table: Mapping[str, Location] | None = None
                    ) -> list[Location | None]:
  """Each embedded photo's location: from `table` by id, else its EXIF GPS position (read
  when the photo was decoded), else None."""
  table = table or {}
  return [table.get(str(image_id), exif) for image_id, exif in zip(embedded.ids,
                                                                    embedded.locations)]


def score_embedded(recognizer, embedded, locations: Sequence[Location | None] | None = None
                   ) -> ScoredPhotos:
  """Every embedded photo's nearest landmark and score, without a threshold (candidates
  restricted by `locations`, one per photo, when given)."""
  predictions = recognizer.predict_embeddings(embedded.embeddings, eta=-math.inf,
                                              locations=locations)
  return ScoredPhotos([str(i) for i in embedded.ids],
                      embedded.landmark_ids(),
                      [p.candidates[0].landmark_id if p.candidates else None for p in predictions],
                      np.array([p.score for p in predictions]),
                      sum(l is not None for l in locations) if locations is not None else 0)


def threshold_sweep(scored: ScoredPhotos, num: int = 201) -> dict[str, np.ndarray]:
  low, high = float(scored.scores.min()), float(scored.scores.max())
  etas = np.linspace(low - 1e-3, high + 1e-3, num)
  sensitivity, specificity = [], []
  for eta in etas:
    result = sensitivity_specificity(scored.predictions(eta), scored.truth)
    sensitivity.append(result["sensitivity"])
    specificity.append(result["specificity"])
  return {"eta": etas, "sensitivity": np.array(sensitivity), "specificity": np.array(specificity)}


def evaluate_scored(scored: ScoredPhotos, eta: float, *,
                    train_counts: Mapping[Hashable, int] | None = None, rare_threshold: int = 10,
                    categories: Mapping[Hashable, str] | None = None) -> dict[str, Any]:
  result = sensitivity_specificity(scored.predictions(eta), scored.truth,
                                   train_counts=train_counts, rare_threshold=rare_threshold,
                                   categories=categories)
  solution = {i: ([t] if t is not None else []) for i, t in zip(scored.ids, scored.truth)}
  thresholded = {i: (n, float(s)) for i, n, s in zip(scored.ids, scored.nearest, scored.scores)
                 if n is not None and s >= eta}
  everything = {i: (n, float(s)) for i, n, s in zip(scored.ids, scored.nearest, scored.scores)
                if n is not None}
  if any(solution.values()):
    result["gap"] = gap(thresholded, solution)
    result["gap_without_threshold"] = gap(everything, solution)
    result["gap_ignoring_non_landmarks"] = gap(everything, solution, ignore_non_landmarks=True)
    result["top1_accuracy"] = top1_accuracy(everything, solution)
  result["eta"] = eta
  result["images"] = len(scored.ids)
  return result


def _pct(value) -> str:
  return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f} %"


def report_markdown(result: dict[str, Any], title: str = "Evaluation") -> str:
  lines = [f"# {title}", "",
           f"{result['images']} test photos, {result['landmark_images']} with a landmark "
           f"({_pct(result['landmark_share'])}); threshold η = {result['eta']:.4f}.", "",
           "| | sensitivity | specificity |", "|---|---|---|",
           f"| all photos | {_pct(result['sensitivity'])} | {_pct(result['specificity'])} |"]
  if "by_frequency" in result:
    lines += ["", f"Rare landmarks: fewer than {result['rare_threshold']} training images.", "",
              "| landmarks | sensitivity | photos | share of test set |", "|---|---|---|---|"]
    lines += [f"| {name} | {_pct(v['sensitivity'])} | {v['images']} | {_pct(v['share'])} |"
              for name, v in result["by_frequency"].items()]
  if "by_category" in result:
    lines += ["", "| category | sensitivity | photos | share of test set |", "|---|---|---|---|"]
    lines += [f"| {name} | {_pct(v['sensitivity'])} | {v['images']} | {_pct(v['share'])} |"
              for name, v in result["by_category"].items()]
  if "gap" in result:
    lines += ["", "| GAP (thresholded) | GAP (no threshold) | GAP (landmark photos only) | top-1 accuracy |",
              "|---|---|---|---|",
              f"| {result['gap']:.4f} | {result['gap_without_threshold']:.4f} | "
              f"{result['gap_ignoring_non_landmarks']:.4f} | {_pct(result['top1_accuracy'])} |"]
  if "geo" in result:
    geo = result["geo"]
    lines += ["", f"With geo-information ({geo['located_photos']} photos with a location; "
              "candidates restricted to nearby landmarks):", "",
              "| | sensitivity | specificity |", "|---|---|---|",
              f"| without geo-information | {_pct(geo['without']['sensitivity'])} | "
              f"{_pct(geo['without']['specificity'])} |",
              f"| with geo-information | {_pct(geo['with']['sensitivity'])} | "
              f"{_pct(geo['with']['specificity'])} |"]
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


def write_report(scored: ScoredPhotos, eta: float, out_dir: str | os.PathLike, *,
                 train_counts=None, rare_threshold: int = 10, categories=None,
                 title: str = "Evaluation", geo_scored: ScoredPhotos | None = None
                 ) -> dict[str, Any]:
  """report.md, report.json, threshold_sweep.png and sensitivity_specificity.png; with
  `geo_scored` (the same photos scored with their locations) a with/without geo table."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  result = evaluate_scored(scored, eta, train_counts=train_counts, rare_threshold=rare_threshold,
                           categories=categories)
  sweep = threshold_sweep(scored)
  plot_threshold_sweep(sweep["eta"], sweep["sensitivity"], sweep["specificity"], eta,
                       out / "threshold_sweep.png",
                       f"{title}: sensitivity and specificity against η")
  plot_sensitivity_specificity(sweep["sensitivity"], sweep["specificity"],
                               (result["sensitivity"], result["specificity"]), eta,
                               out / "sensitivity_specificity.png",
                               f"{title}: sensitivity–specificity")
  if geo_scored is not None:
    with_geo = evaluate_scored(geo_scored, eta, train_counts=train_counts,
                               rare_threshold=rare_threshold, categories=categories)
    result["geo"] = {"with": {k: with_geo[k] for k in ("sensitivity", "specificity")},
                     "without": {k: result[k] for k in ("sensitivity", "specificity")},
                     "located_photos": int(geo_scored.located)}
  result["plots"] = {"threshold sweep": "threshold_sweep.png",
                     "sensitivity–specificity": "sensitivity_specificity.png"}
  result["sweep"] = sweep
  (out / "report.json").write_text(json.dumps(_jsonable(result), indent=2))
  (out / "report.md").write_text(report_markdown(result, title))
  return result


def evaluate_recognizer(recognizer, source: ImageSource, out_dir: str | os.PathLike, *,
                        training_source: ImageSource | None = None, rare_threshold: int = 10,
                        geo: bool = False, locations: Mapping[str, Location] | None = None,
                        title: str = "Evaluation") -> dict[str, Any]:
  """Recognises every photo of `source` once and writes the report (`write_report`).

  Args:
    training_source: the model's training photos, for the rare/frequent split and the
      categories.
    geo: also score with each photo's location (`locations` by id, else its EXIF GPS).
  """
  embedded = recognizer.embed_source(source, read_exif=geo or locations is not None)
  geo_scored = None
  if geo or locations is not None:
    geo_scored = score_embedded(recognizer, embedded, photo_locations(embedded, locations))
  return write_report(
      score_embedded(recognizer, embedded), recognizer.eta, out_dir,
      train_counts=training_source.images_per_landmark() if training_source else None,
      rare_threshold=rare_threshold,
      categories=(training_source.categories or None) if training_source else None,
      title=title, geo_scored=geo_scored)
