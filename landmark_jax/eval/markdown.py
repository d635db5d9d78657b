"""The evaluation report in Markdown: the paper's table (sensitivity and specificity with
their intervals and n), its breakdowns and GAP, each for the paper's offline test (η alone)
and beside it with class references, with geo-information and with verification where they
apply."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from landmark_jax.eval.collection import MIN_PHOTOS


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


def _thresholds(setting: Mapping[str, Any]) -> str:
  """``η = 0.9806, no ρ`` or ``η = 0.9305, ρ = 0.7100``: what a setting applied ("alone"
  would read as "without geo-information" too, which a geo row has)."""
  eta = f"η = {setting['eta']:.4f}"
  if not setting["references"]:
    thresholds = f"{eta}, no ρ"
  else:
    rho = setting["reference_threshold"]
    thresholds = f"{eta}, ρ = {'—' if rho is None else f'{rho:.4f}'}"
  if "verification" in setting:
    thresholds += f", {_band(setting['verification'])}"
  return thresholds


def _band(verification: Mapping[str, Any]) -> str:
  """``band [η − 0.0200, η + 0.0300), k = 12``."""
  return (
    f"band [η − {verification['below']:.4f}, η + {verification['above']:.4f}), "
    f"k = {verification['min_inliers']}"
  )


def _long_label(setting: Mapping[str, Any]) -> str:
  """The setting's label with its thresholds: "with references (η = 0.9305, ρ = 0.7100)"."""
  return f"{setting['label'].split(' (')[0]} ({_thresholds(setting)})"


def _breakdown_table(
  heading: str, table: str, settings: Mapping[str, Mapping[str, Any]], min_photos: int
) -> list[str]:
  """One row per group of `table` (``by_frequency``, ``by_category``), its sensitivity in
  one column per setting: the groups are the same photos in every setting."""
  columns = list(settings.values())
  lines = [
    "",
    f"| {heading} | photos | share of landmark photos | "
    + " | ".join(f"sensitivity, {s['label']}" for s in columns)
    + " | |",
    "|---|---|---|" + "---|" * len(columns) + "---|",
  ]
  for name, row in columns[0][table].items():
    note = f"n < {min_photos}: indicative only" if row["images"] < min_photos else ""
    cells = []
    for setting in columns:
      cell = setting[table][name]
      low, high = cell["sensitivity_ci"]
      cells.append(f"{100 * cell['sensitivity']:.1f} % ({100 * low:.1f}–{100 * high:.1f} %)")
    lines.append(
      f"| {name} | n = {row['images']} | {_pct(row['share'])} | "
      + " | ".join(cells)
      + f" | {note} |"
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


def _gap_row(label: str, figures: Mapping[str, Any], images: int, landmark: int) -> str:
  return (
    f"| {label} | {figures['gap']:.4f}, n = {images} | "
    f"{figures['gap_without_threshold']:.4f}, n = {images} | "
    f"{figures['gap_ignoring_non_landmarks']:.4f}, n = {landmark} | "
    f"{_pct(figures['top1_accuracy'])}, n = {landmark} |"
  )


def report_markdown(result: dict[str, Any], title: str = "Evaluation") -> str:
  """The report of `write_report`'s `result`: one row (or column) per setting of its
  ``settings``, the paper's offline test first."""
  min_photos = result.get("min_photos", MIN_PHOTOS)
  landmark, images = result["landmark_images"], result["images"]
  settings = result["settings"]
  paper = settings[result.get("headline", "paper")]
  applied = f"threshold η = {result['eta']:.4f}" + (
    f" with ρ = {result['reference_threshold']:.4f} (class references)"
    if result.get("reference_threshold") is not None
    else ""
  )
  lines = [
    f"# {title}",
    "",
    f"{images} test photos, {landmark} with a landmark "
    f"({_pct(result['landmark_share'])}); the recognizer applies {applied}. "
    f"The headline is the paper's offline test: η = {paper['eta']:.4f} alone, with "
    "neither geo-information nor class references"
    + ("; the rows below it add what recognition can also use" if len(settings) > 1 else "")
    + ". Rates with their 95 % Wilson score interval and n, the photos they rest on."
    + (
      f" {result['photos_of_landmarks_not_in_index']} of the landmark photos show "
      "landmarks the index does not have (removed, or never added): they count as "
      "landmark photos it cannot recognise."
      if result.get("photos_of_landmarks_not_in_index")
      else ""
    ),
    "",
    "| all photos | sensitivity | specificity |",
    "|---|---|---|",
    *[_headline_row(_long_label(s), s) for s in settings.values()],
  ]
  if "references" in result:
    lines += [
      "",
      "With references: a photo whose best score clears η is also checked against its "
      f"landmark's reference photos (ρ = {result['references']['reference_threshold']:.4f}, "
      f"calibrated with η = {result['eta']:.4f} for the same target), as the recognizer "
      "decides.",
    ]
  if "geo" in result:
    lines += [
      "",
      f"With geo-information: {result['geo']['located_photos']} photos with a location; "
      "candidates restricted to nearby landmarks.",
    ]
  if "verification" in result:
    verification = result["verification"]
    count = verification["candidates"]
    candidates = "best candidate" if count == 1 else f"{count} best candidates"
    lines += [
      "",
      f"With verification: the {verification['verified_photos']} photos "
      f"({_pct(verification['verified_share'])}) whose best score fell in the "
      f"{_band(verification)} were answered by matching their local features with the "
      f"stored photos of their {candidates} (a landmark with at least k RANSAC inliers: "
      f"{verification['accepted']} were), as the recognizer decides; the others as without it.",
    ]
  if result.get("references_not_applied"):
    lines += [
      "",
      "Class references: the index keeps them, but calibration chose no threshold ρ "
      "(none raised validation sensitivity at the target specificity), so η alone "
      "decides; `reference_similarity` in predictions.csv is each photo's similarity "
      "to its nearest landmark's reference photos.",
    ]
  if "by_frequency" in result:
    lines += ["", f"Rare landmarks: fewer than {result['rare_threshold']} training images."]
    lines += _breakdown_table("landmarks", "by_frequency", settings, min_photos)
  if "by_category" in result:
    lines += _breakdown_table("category", "by_category", settings, min_photos)
  if "gap" in result:
    lines += [
      "",
      "| | GAP (thresholded) | GAP (no threshold) | GAP (landmark photos only) | top-1 accuracy |",
      "|---|---|---|---|---|",
      *[_gap_row(s["label"], s, images, landmark) for s in settings.values()],
      "",
      f"GAP over all {images} test photos ({landmark} with a landmark); GAP over "
      f"landmark photos only and top-1 accuracy over the {landmark} landmark photos.",
    ]
  if "plots" in result:
    lines += ["", *[f"![{name}]({path})" for name, path in result["plots"].items()]]
  return "\n".join(lines) + "\n"
