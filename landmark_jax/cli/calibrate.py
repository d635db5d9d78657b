"""``landmark-jax calibrate``: choose η for a target specificity and store it in the index.

The validation photos come from where the user has them — landmark photos as a folder per
landmark or a GLDv2 list, non-landmark photos as any folder — and are kept with the index
as embeddings, so that after an edit ``calibrate`` with no photos (or ``add-landmarks
--recalibrate``) chooses η again without them.
"""

from __future__ import annotations

import sys

from landmark_jax.cli.common import add_source_args, probability, source_from_args
from landmark_jax.errors import DataError

# Below this many photos a rate is too uncertain to act on (as `evaluate`'s --min-photos).
FEW_PHOTOS = 20


def validation_photos(args, trained, index, recognizer):
  """The validation set to calibrate on, embedded, and where it came from.

  Photos given replace the stored ones of their kind: landmark photos (--folder,
  --root/--csv) the stored landmark photos, non-landmark photos (--non-landmark-folder, a
  folder's non_landmark/, --non-landmark-csv) the stored non-landmark ones; a kind not given
  is kept from the index's stored set. With nothing given and nothing stored: the
  validation split of the checkpoint's data.
  """
  from landmark_jax.data import source_for
  from landmark_jax.data.sources import non_landmark_folder_source
  from landmark_jax.eval.calibration import embed_validation

  label_map = recognizer.label_map
  given = [source_from_args(args, label_map)]
  if args.non_landmark_folder:
    given.append(non_landmark_folder_source(args.non_landmark_folder, label_map))
  given = [embed_validation(recognizer, source) for source in given if source is not None]
  stored = index.validation
  if given:
    photos = given[0]
    for more in given[1:]:
      photos = photos.joined(more)
    return _with_stored_kinds(photos, stored)
  if stored is not None:
    return stored, "the validation photos stored with the index"
  try:
    source = source_for(trained.config.data, "val", label_map)
  except DataError:
    raise DataError(
      "no validation photos: give landmark photos (--folder or --root/--csv) and "
      "non-landmark photos (--non-landmark-folder, or --non-landmark-csv with "
      "--root); the index keeps none and the checkpoint's data has no validation "
      "split"
    ) from None
  return embed_validation(recognizer, source), "the validation split of the checkpoint's data"


def _with_stored_kinds(given, stored):
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


def report_calibration(result: dict, where: str, index_dir) -> None:
  """The chosen η and what it rests on."""
  import math

  print(
    f"calibrated on {where}: {result['landmark_images']} landmark and "
    f"{result['non_landmark_images']} non-landmark photos"
  )
  sensitivity = (
    "not measured (no landmark photos)"
    if math.isnan(result["sensitivity"])
    else f"{result['sensitivity']:.1%} (n = {result['landmark_images']})"
  )
  print(
    f"η = {result['eta']:.4f} for a target specificity of {result['target_specificity']:.1%}: "
    f"specificity {result['specificity']:.1%} (n = {result['non_landmark_images']}), "
    f"sensitivity {sensitivity}"
  )
  if result.get("reference_threshold") is not None:
    print(
      f"class references: ρ = {result['reference_threshold']:.4f} with η = "
      f"{result['eta_with_references']:.4f} (calibrated together for the same target): "
      f"specificity {result['specificity_with_references']:.1%}, sensitivity "
      f"{result['sensitivity_with_references']:.1%}; recognition applies both"
    )
  elif "reference_threshold" in result:
    print(
      "class references: no ρ raised sensitivity at this specificity on these photos, so "
      "recognition applies η alone"
    )
  if result["non_landmark_images"] < FEW_PHOTOS:
    print(
      f"warning: η rests on {result['non_landmark_images']} non-landmark photos; "
      f"{FEW_PHOTOS} or more make it worth trusting",
      file=sys.stderr,
    )
  if 0 < result["landmark_images"] < FEW_PHOTOS:
    print(
      f"warning: sensitivity rests on {result['landmark_images']} landmark photos; "
      f"{FEW_PHOTOS} or more make it worth reading",
      file=sys.stderr,
    )
  print(
    f"{'η and ρ' if result.get('reference_threshold') is not None else 'η'} stored in "
    f"{index_dir}/manifest.json, with the validation photos' embeddings "
    "(`calibrate` without photos, or `add-landmarks --recalibrate`, reuses them)"
  )


def _calibrate(args) -> int:
  import math

  from landmark_jax.eval.calibration import calibrated_index
  from landmark_jax.index.editing import locked_index
  from landmark_jax.recognize import Recognizer
  from landmark_jax.train.checkpoints import load_trained

  trained = load_trained(args.checkpoint)
  # Locked from loading to storing η: an add or remove meanwhile would be lost otherwise, or
  # get an η chosen without its landmarks.
  with locked_index(args.index, expected_dim=trained.model.embedding_dim) as index:
    recognizer = Recognizer(trained, index, eta=-math.inf)  # η is being chosen
    photos, where = validation_photos(args, trained, index, recognizer)
    target = (
      args.target_specificity
      or index.metadata.get("calibration", {}).get("target_specificity")
      or trained.config.calibration.target_specificity
    )
    calibrated, result = calibrated_index(trained, index, photos, target, where)
    calibrated.save(args.index)
  report_calibration(result, where, args.index)
  return 0


def register(commands, debug) -> None:
  cal = commands.add_parser(
    "calibrate",
    parents=[debug],
    help="choose η for a target specificity, store it in the index",
    description="Chooses the similarity threshold η so that the target share of "
    "non-landmark photos is answered 'no landmark', and stores it in the index "
    "with the validation photos' embeddings. Photos: landmark photos (--folder, "
    "or --root/--csv) and non-landmark photos (--non-landmark-folder, a "
    "non_landmark/ subfolder of --folder, or --non-landmark-csv with --root); "
    "with none given, the validation photos the index keeps from its last "
    "calibration, else the validation split of the checkpoint's data.",
  )
  cal.add_argument("--checkpoint", required=True, help="a training workdir")
  cal.add_argument("--index", required=True, help="its centroid index (η is written into it)")
  cal.add_argument(
    "--target-specificity",
    type=probability,
    default=None,
    help="share of non-landmark photos to reject (default: the target of the "
    "index's last calibration, else the checkpoint config's "
    "calibration.target_specificity)",
  )
  add_source_args(
    cal, "the validation photos the index keeps, else the validation split of the checkpoint's data"
  )
  cal.add_argument(
    "--non-landmark-folder",
    help="a folder of photos that show no landmark (subfolders too): the "
    "non-landmark half of the validation set",
  )
  cal.set_defaults(run=_calibrate)
