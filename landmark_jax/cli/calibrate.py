"""``landmark-jax calibrate``: choose η for a target specificity and store it in the index.

The validation photos come from where the user has them — landmark photos as a folder per
landmark or a GLDv2 list, non-landmark photos as any folder — and are kept with the index
as embeddings, so that after an edit ``calibrate`` with no photos (or ``add-landmarks
--recalibrate``) chooses η again without them.
"""

from __future__ import annotations

import sys

from landmark_jax.cli.common import (
  add_allow_other_model_arg,
  add_source_args,
  budget_share,
  positive_int,
  probability,
  source_from_args,
)
from landmark_jax.cli.export import add_model_and_index_args

# Below this many photos a rate is too uncertain to act on (as `evaluate`'s --min-photos).
FEW_PHOTOS = 20


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
  rho = result.get("reference_threshold")
  # η first, as the decision applies it; ρ beside it when it applies too.
  print(
    f"η = {result['eta']:.4f}"
    + (f" with ρ = {rho:.4f}" if rho is not None else "")
    + f" for a target specificity of {result['target_specificity']:.1%}: "
    f"specificity {result['specificity']:.1%} (n = {result['non_landmark_images']}), "
    f"sensitivity {sensitivity}"
  )
  if rho is not None:
    print(
      f"class references: η and ρ were calibrated together for the same target, and "
      f"recognition applies both; η alone would be "
      f"{result['eta_without_references']:.4f} (specificity "
      f"{result['specificity_without_references']:.1%}, sensitivity "
      f"{result['sensitivity_without_references']:.1%})"
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


def report_verification(verification: dict | None) -> None:
  """What calibration did with the verification band (nothing: the index stores no local
  features)."""
  if verification is None:
    return
  if verification.get("off"):
    print("verification: off (--verify-budget 0); the centroid answers stand everywhere")
  elif "kept" in verification:
    print(
      "verification: "
      + ("band kept from the last calibration" if verification["kept"] else "not calibrated")
      + " (choosing the band needs the photos themselves: give --folder or --root)"
    )
  elif verification["below"] == verification["above"] == 0:
    print(
      f"verification: no band raised sensitivity at this specificity on "
      f"{verification['photos']}, so η decides everywhere (verification is off)"
    )
  else:
    print(
      f"verification, chosen on {verification['photos']}: scores in "
      f"[η − {verification['below']:.4f}, η + "
      f"{verification['above']:.4f}) are settled by local features, a landmark with ≥ "
      f"{verification['min_inliers']} RANSAC inliers (best {verification['candidates']} "
      f"candidates): {verification['verified_share']:.1%} of the validation photos "
      f"verified (budget {verification['budget']:.0%}), sensitivity "
      f"{verification['sensitivity']:.1%} at specificity {verification['specificity']:.1%} "
      f"(without: {verification['sensitivity_without']:.1%} at "
      f"{verification['specificity_without']:.1%})"
    )
    few = verification["non_landmark_photos_in_band"]
    if few < FEW_PHOTOS:
      print(
        f"warning: k rests on {few} non-landmark photos in the band; {FEW_PHOTOS} or more "
        "make it worth trusting (give more non-landmark photos, or a larger --verify-budget)",
        file=sys.stderr,
      )


def _calibrate(args) -> int:
  from landmark_jax.bundle import editing, model_and_index
  from landmark_jax.data.sources import non_landmark_folder_source
  from landmark_jax.eval.calibration import calibrate_index

  def given(label_map):
    sources = [source_from_args(args, label_map)]
    if args.non_landmark_folder:
      sources.append(non_landmark_folder_source(args.non_landmark_folder, label_map))
    return [source for source in sources if source is not None]

  trained, index_dir = model_and_index(args.checkpoint, args.index, args.bundle)
  with editing(args.bundle):
    result, where = calibrate_index(
      index_dir,
      trained,
      given,
      target_specificity=args.target_specificity,
      allow_other_model=args.allow_other_model,
      verify_budget=args.verify_budget,
      verify_candidates=args.verify_candidates,
    )
  report_calibration(result, where, index_dir)
  report_verification(result.get("verification"))
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
  add_model_and_index_args(cal, index_help="its centroid index (η is written into it)")
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
  cal.add_argument(
    "--verify-budget",
    type=budget_share,
    default=None,
    metavar="SHARE",
    help="for an index with local features (`landmark-jax local-features`): the most share "
    "of queries that verification may settle; the band around η and the inliers needed are "
    "chosen for the most sensitivity at the target specificity within it (default: the "
    "last calibration's, else 0.3; 0: verification off)",
  )
  cal.add_argument(
    "--verify-candidates",
    type=positive_int,
    default=None,
    metavar="C",
    help="how many of the best candidates verification matches (default: the last "
    "calibration's, else 2)",
  )
  add_allow_other_model_arg(cal)
  cal.set_defaults(run=_calibrate)
