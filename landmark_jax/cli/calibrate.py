"""``landmark-jax calibrate``: choose η for a target specificity and store it in the index."""

from __future__ import annotations

from landmark_jax.cli.common import add_source_args, photos, probability


def _calibrate(args) -> int:
  import math
  from landmark_jax.eval.calibration import calibrate
  from landmark_jax.index.editing import locked_index
  from landmark_jax.recognize import Recognizer
  from landmark_jax.train.checkpoints import load_trained
  trained = load_trained(args.checkpoint)
  # Locked from loading to storing η: an add or remove meanwhile would be lost otherwise, or
  # get an η chosen without its landmarks.
  with locked_index(args.index, expected_dim=trained.model.embedding_dim) as index:
    recognizer = Recognizer(trained, index, eta=-math.inf)  # η is being chosen
    target = args.target_specificity or trained.config.calibration.target_specificity
    result = calibrate(recognizer, photos(args, trained, "val", recognizer.label_map), target)
    index.with_metadata(eta=result["eta"], calibration=result).save(args.index)
  print("\n".join(f"{k:>20}: {v}" for k, v in result.items()))
  print(f"eta stored in {args.index}/manifest.json")
  return 0


def register(commands, debug) -> None:
  cal = commands.add_parser("calibrate", parents=[debug],
                            help="choose η for a target specificity, store it in the index")
  cal.add_argument("--checkpoint", required=True, help="a training workdir")
  cal.add_argument("--index", required=True, help="its centroid index (η is written into it)")
  cal.add_argument("--target-specificity", type=probability, default=None,
                   help="share of non-landmark photos to reject (default: the checkpoint "
                        "config's calibration.target_specificity)")
  add_source_args(cal, "the validation split of the checkpoint's data")
  cal.set_defaults(run=_calibrate)
