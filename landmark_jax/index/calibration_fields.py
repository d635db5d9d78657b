"""The calibrated thresholds as an index's manifest keeps them (docs/decisions.md, "Class
references (ρ)").

``eta`` is the η recognition applies by default: calibrated with ρ when the calibration
chose one (``reference_threshold``), else alone. ``eta_without_references`` is the η
calibrated alone, kept beside it only when a ρ was chosen (what `evaluate`'s "η alone" row
and a decision with ρ switched off apply). Indexes calibrated before this layout kept η
alone in ``eta`` and the η that goes with ρ in ``eta_with_references``; `migrated` reads
them as this layout.
"""

from __future__ import annotations

from typing import Any, Mapping

# The earlier layout's name for the η applied with ρ (its `eta` was η alone).
LEGACY_ETA_WITH_REFERENCES = "eta_with_references"


def stored_eta(metadata: Mapping[str, Any], *, references_applied: bool) -> float | None:
  """The calibrated η for a decision that checks ρ (`references_applied`) or not; None:
  never calibrated."""
  alone = metadata.get("eta_without_references")
  if references_applied or alone is None:
    return metadata.get("eta")
  return alone


def migrated(metadata: Mapping[str, Any]) -> dict[str, Any]:
  """`metadata` in this module's layout: an older index's ``eta`` (η alone) moves to
  ``eta_without_references`` and its ``eta_with_references`` becomes ``eta`` when a ρ was
  chosen; so does its stored calibration's record. Already migrated: unchanged."""
  metadata = dict(metadata)
  if LEGACY_ETA_WITH_REFERENCES not in metadata:
    return metadata
  with_references = metadata.pop(LEGACY_ETA_WITH_REFERENCES)
  chosen = metadata.get("reference_threshold") is not None and with_references is not None
  metadata["eta_without_references"] = metadata.get("eta") if chosen else None
  if chosen:
    metadata["eta"] = with_references
  if isinstance(metadata.get("calibration"), dict):
    metadata["calibration"] = _migrated_figures(metadata["calibration"])
  return metadata


def _migrated_figures(figures: Mapping[str, Any]) -> dict[str, Any]:
  """A calibration's record (`calibrate_on`) in this layout: the headline figures are
  those of the rule recognition applies, and η alone's move to ``*_without_references``."""
  figures = dict(figures)
  legacy = {
    name: figures.pop(f"{name}_with_references", None)
    for name in ("eta", "specificity", "sensitivity")
  }
  if figures.get("reference_threshold") is None or legacy["eta"] is None:
    return figures
  for name, value in legacy.items():
    figures[f"{name}_without_references"] = figures.get(name)
    figures[name] = value
  return figures
