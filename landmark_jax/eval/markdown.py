"""The evaluation report in Markdown: the paper's table (sensitivity and specificity with
their intervals and n), its breakdowns, GAP, and the with/without tables of geo-information
and class references."""

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
    f"({_pct(result['landmark_share'])}); threshold η = {result['eta']:.4f}"
    + (
      f" with ρ = {result['reference_threshold']:.4f} (class references)"
      if result.get("reference_threshold") is not None
      else ""
    )
    + ". "
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
