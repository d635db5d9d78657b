"""Choosing η, the similarity threshold between "a landmark" and "no landmark", for a target
specificity on a validation set (photos with and without landmarks); and, when the index
keeps class references, ρ — the threshold on the similarity to the best candidate's
reference photos — with the η that goes with it, for the same target on the same photos
(docs/decisions.md, "Class references").

Calibration scores embedded photos with the index's `Decision` alone: the model is needed
only to embed photos that are not embedded yet, and is then placed on the devices once.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Callable, Sequence

import numpy as np

from landmark_jax.data import ImageSource, source_for
from landmark_jax.data.labels import LabelMap
from landmark_jax.errors import DataError, UsageError
from landmark_jax.eval.config import CalibrationConfig
from landmark_jax.index import CentroidIndex, threshold
from landmark_jax.index.editing import locked_index
from landmark_jax.index.provenance import check_same_model
from landmark_jax.index.validation import ValidationSet
from landmark_jax.recognize.decision import Decision, public_landmark_id
from landmark_jax.recognize.embedder import PhotoEmbedder
from landmark_jax.train.checkpoints import TrainedModel


def embed_validation(embedder: PhotoEmbedder, source: ImageSource) -> ValidationSet:
  """The photos of a validation source (landmark and non-landmark), embedded once, as the
  index keeps them (`CentroidIndex.validation`)."""
  embedded = embedder.embed_source(source, read_exif=False)
  non_landmark = embedded.labels == source.label_map.non_landmark_label
  landmarks = [None if n else l for n, l in zip(non_landmark, embedded.landmark_ids())]
  return ValidationSet(tuple(map(str, embedded.ids)), tuple(landmarks), embedded.embeddings)


def calibrate_on(
  decision: Decision, validation: ValidationSet, target_specificity: float | None = None
) -> dict[str, float]:
  """Chooses η for `decision`'s index on embedded validation photos for a target
  specificity: the share of non-landmark photos answered "no landmark" is at least the
  target, with the same rule (`threshold.accepted`) and the same float32 scores that
  recognition applies. The target: the one given, else `target_specificity_for` the index
  (its last calibration's, else `CalibrationConfig`'s). With class references, ρ is chosen
  with its own η (`_reference_calibration`), and ``eta`` is the η that goes with it
  (`_with_references`). The decision's own η and ρ play no part, and are not changed; the
  caller stores what is chosen."""
  target_specificity = target_specificity_for(
    decision.index, CalibrationConfig().target_specificity, target_specificity
  )
  if not len(validation):
    raise DataError("calibration needs validation photos, with and without landmarks")
  predictions = decision.predict(
    validation.embeddings, eta=-math.inf, reference_threshold=-math.inf
  )
  scores = np.array([p.score for p in predictions], np.float32)
  non_landmark = validation.is_non_landmark
  eta = threshold.eta_for_specificity(scores[non_landmark], target_specificity)
  nearest = [p.candidates[0].landmark_id if p.candidates else None for p in predictions]
  correct = np.array(
    [
      n is not None and n == public_landmark_id(t) for n, t in zip(nearest, validation.landmark_ids)
    ],
    bool,
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
  if decision.index.references is not None:
    result = _with_references(
      result, _reference_calibration(predictions, scores, correct, non_landmark, target_specificity)
    )
  return result


def _with_references(alone: dict, references: dict) -> dict:
  """The figures of η alone (`alone`) joined by those of the references' calibration: when
  it chose a ρ, the headline ``eta``, ``specificity`` and ``sensitivity`` become those of
  the rule recognition applies (η and ρ), and η alone's move to ``*_without_references``,
  so that what `calibrate` prints, the manifest's ``eta`` and the decision's η are one
  number (`index.calibration_fields`)."""
  if not references:
    return alone
  result = {**alone, "reference_threshold": references["reference_threshold"]}
  if references["reference_threshold"] is None:
    return {**result, "eta_without_references": None}
  for name in ("eta", "specificity", "sensitivity"):
    result[f"{name}_without_references"] = alone[name]
    result[name] = references[name]
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
  """ρ and η together, for the target specificity, with the most validation sensitivity
  (``reference_threshold``, ``eta``, ``specificity``, ``sensitivity``; ρ and η None when η
  alone does as well).

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
  return {"reference_threshold": rho, "eta": eta, **rates}


def calibrate(
  recognizer, source: ImageSource, target_specificity: float | None = None
) -> dict[str, float]:
  """Chooses η for `recognizer` (a `landmark_jax.Recognizer`) on a validation source
  (landmark and non-landmark photos): `calibrate_on` its photos, embedded, for the target
  given, else the index's last, else the model's config's (`target_specificity_for`). The
  figures are returned; `calibrated_index` is what stores them with an index."""
  default = recognizer.trained.config.calibration.target_specificity
  target = target_specificity_for(recognizer.index, default, target_specificity)
  return calibrate_on(recognizer.decision, embed_validation(recognizer.photos, source), target)


def is_calibrated(index: CentroidIndex) -> bool:
  """Whether η was ever chosen for `index` (stored in its manifest)."""
  return "eta" in index.metadata


def target_specificity_for(
  index: CentroidIndex, default: float, given: float | None = None
) -> float:
  """The specificity η is chosen for: the one `given`, else the target of the index's last
  calibration, else `default` (a config's ``calibration.target_specificity``)."""
  return given or index.metadata.get("calibration", {}).get("target_specificity") or default


def calibrated_index(
  index: CentroidIndex,
  validation: ValidationSet,
  target_specificity: float,
  photos: str = "",
  *,
  label_map: LabelMap | None = None,
) -> tuple[CentroidIndex, dict[str, float]]:
  """`index` with η chosen on `validation` for the target, keeping `validation` so that a
  later edit can recalibrate without the photos; and the calibration's figures (with
  `photos`, words saying where the validation photos came from). `label_map`: what the
  index's labels mean, when it keeps no map of its own (the model's)."""
  decision = Decision(
    index, label_map=index.label_map or label_map, eta=-math.inf, reference_threshold=-math.inf
  )
  result = calibrate_on(decision, validation, target_specificity)
  result["index_edits"] = len(index.metadata.get("edits", []))  # η is as old as this edit
  if photos:
    result["validation_photos"] = photos
  # ρ (and η alone beside it) from this calibration, or none: those of an earlier
  # calibration would not fit this index. `eta` is the one recognition applies.
  values = {
    "eta": result["eta"],
    "calibration": result,
    "reference_threshold": result.get("reference_threshold"),
    "eta_without_references": result.get("eta_without_references"),
  }
  return index.with_metadata(**values).with_validation(validation), result


def validation_photos(
  trained: TrainedModel, index: CentroidIndex, given: Sequence[ImageSource] = ()
) -> tuple[ValidationSet, str]:
  """The validation set to calibrate `index` on, embedded, and where it came from.

  Photos given replace the stored ones of their kind: landmark photos the stored landmark
  photos, non-landmark photos the stored non-landmark ones; a kind not given is kept from
  the index's stored set. With nothing given and nothing stored: the validation split of
  the checkpoint's data. Photos are embedded by one `PhotoEmbedder` of `trained`, made
  when a photo must be embedded at all (stored photos need none)."""
  embedder = functools.cache(lambda: PhotoEmbedder(trained))
  stored = index.validation
  if given:
    photos = embed_validation(embedder(), given[0])
    for more in given[1:]:
      photos = photos.joined(embed_validation(embedder(), more))
    return _with_stored_kinds(photos, stored)
  if stored is not None:
    return stored, "the validation photos stored with the index"
  try:
    source = source_for(trained.config.data, "val", index.label_map or trained.label_map)
  except DataError:
    raise DataError(
      "no validation photos: give landmark photos (--folder or --root/--csv) and "
      "non-landmark photos (--non-landmark-folder, or --non-landmark-csv with "
      "--root); the index keeps none and the checkpoint's data has no validation "
      "split"
    ) from None
  return embed_validation(embedder(), source), "the validation split of the checkpoint's data"


def _with_stored_kinds(
  given: ValidationSet, stored: ValidationSet | None
) -> tuple[ValidationSet, str]:
  """`given`, joined by the `stored` photos of the kind it lacks, and words saying which
  stored photos it replaced and which it kept."""
  if stored is None:
    return given, "the photos given"
  kinds = ("landmark", "non-landmark")
  gives = [count > 0 for count in given.counts()]
  replaced = [
    f"{count} {kind}" for kind, count, g in zip(kinds, stored.counts(), gives) if g and count
  ]
  where = "the photos given" + (
    f" (replacing the {' and '.join(replaced)} photos stored with the index)" if replaced else ""
  )
  kept = [row for row, none in enumerate(stored.is_non_landmark) if not gives[int(none)]]
  if not kept:
    return given, where
  kept_kind = kinds[int(stored.is_non_landmark[kept[0]])]
  return (
    given.joined(stored.subset(kept)),
    f"{where}, with the {kept_kind} photos stored with the index",
  )


def calibrate_index(
  index_dir: str | os.PathLike,
  trained: TrainedModel,
  given: Callable[[LabelMap], Sequence[ImageSource]] = lambda label_map: (),
  *,
  target_specificity: float | None = None,
  allow_other_model: bool = False,
  verify_budget: float | None = None,
  verify_candidates: int | None = None,
) -> tuple[dict[str, float], str]:
  """Chooses η (and ρ) for the index at `index_dir` and stores them in it, with the
  validation photos' embeddings (`validation_photos`), for `target_specificity`
  (`target_specificity_for`). The index is locked from loading to storing η: an add or
  remove meanwhile would otherwise be lost, or get an η chosen without its landmarks.

  Args:
    given: the index's label map → the validation photos given as sources (none: the
      stored photos, else the checkpoint's validation split).
    allow_other_model: calibrate even when the index was built from another model's
      embeddings (`provenance.check_same_model` refuses it otherwise).
    verify_budget: for an index that stores local features, the most share of queries
      verification may settle (`verify_calibration.calibrate_verification`; None: the
      last calibration's, else its default; 0: verification off). The band is chosen after
      η, on the photos given, else on the checkpoint's validation split (stored embeddings
      cannot be matched); with neither, the band is kept as it was.

  Returns:
    The calibration's figures, and where its photos came from, in words.
  """
  with locked_index(index_dir, expected_dim=trained.model.embedding_dim) as index:
    check_same_model(
      index.metadata.get("checkpoint"),
      trained.checkpoint_id,
      allow_other_model=allow_other_model,
      index=index_dir,
    )
    if verify_budget is not None and index.local_features is None:
      raise UsageError(
        f"--verify-budget: {index_dir} stores no local features to verify with; run "
        "`landmark-jax local-features` on it first"
      )
    label_map = index.label_map or trained.label_map
    photos, where = validation_photos(trained, index, given(label_map))
    target = target_specificity_for(
      index, trained.config.calibration.target_specificity, target_specificity
    )
    calibrated, result = calibrated_index(index, photos, target, where, label_map=label_map)
    if calibrated.local_features is not None:
      sources, band_photos = list(given(label_map)), "the photos given"
      if not sources:  # stored embeddings cannot be matched: the photos they came from
        band_photos = "the validation split of the checkpoint's data"
        try:
          sources = [source_for(trained.config.data, "val", label_map)]
        except DataError:
          sources = []
      calibrated, result["verification"] = _verification(
        trained, calibrated, sources, target, verify_budget, verify_candidates, label_map
      )
      if sources and result["verification"].get("below") is not None:
        result["verification"]["photos"] = band_photos
    calibrated.save(index_dir)
  return result, where


def _verification(trained, index, sources, target, budget, candidates, label_map):
  """`index` with its verification band chosen on `sources` (see `calibrate_index`), and
  what was done, for the report."""
  from landmark_jax.eval import verify_calibration

  last = index.metadata.get("verification") or {}
  if budget is None:
    budget = last.get("budget", verify_calibration.DEFAULT_BUDGET)
  if candidates is None:
    candidates = last.get("candidates", verify_calibration.DEFAULT_CANDIDATES)
  if not sources:
    return index, {**last, "kept": True} if last else {"kept": False}
  if budget == 0:
    return index.without_metadata("verification"), {"off": True}
  decision = Decision(index, label_map=index.label_map or label_map)
  chosen = verify_calibration.calibrate_verification(
    trained, decision, sources, target, budget, candidates=candidates
  )
  chosen["index_edits"] = len(index.metadata.get("edits", []))
  return index.with_metadata(verification=chosen), chosen
