"""Evaluation: ``evaluate``, ``evaluate-revisited``."""

from __future__ import annotations

import argparse
import json
import pathlib

from landmark_jax.cli.common import (
  add_allow_other_model_arg,
  add_source_args,
  non_negative_int,
  photos,
  positive_int,
)
from landmark_jax.cli.recognize import add_verify_arg


def _open_share(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    value = None
  if value is None or not 0 < value < 1:  # the comparison also refuses nan
    raise argparse.ArgumentTypeError(
      f"{text} is not a number in (0, 1): leave --landmark-share out to keep the test set as it is"
    )
  return value


def _evaluate(args) -> int:
  from landmark_jax.eval.report import evaluate_index

  evaluate_index(
    args.checkpoint,
    args.index,
    args.out,
    lambda trained, label_map: photos(args, trained, "test", label_map),
    eta=args.eta,
    landmark_share=args.landmark_share,
    seed=args.seed,
    locations_csv=args.locations_csv,
    rare_threshold=args.rare_threshold,
    geo=args.geo,
    min_photos=args.min_photos,
    allow_other_model=args.allow_other_model,
    verify=args.verify,
  )
  print((pathlib.Path(args.out) / "report.md").read_text())
  print(f"report and plots written to {args.out}")
  return 0


def _evaluate_revisited(args) -> int:
  from landmark_jax.errors import UsageError
  from landmark_jax.eval.revisited import evaluate_revisited_checkpoint

  if not args.through_centroids:
    given = [
      flag
      for flag, value in (
        ("--eta", args.eta),
        ("key=value", args.overrides),
        ("--generic-prefixes", args.generic_prefixes),
      )
      if value not in (None, [])
    ]
    if given:
      raise UsageError(f"{', '.join(given)} only apply with --through-centroids")
  prefixes = None
  if args.generic_prefixes is not None:
    prefixes = [p.strip() for p in args.generic_prefixes.split(",") if p.strip()]
  result = evaluate_revisited_checkpoint(
    args.checkpoint,
    args.root,
    args.gnd,
    trust_pickle=args.trust_pickle,
    distractors=args.distractors,
    junk_pairs=args.junk_pairs,
    through_centroids=args.through_centroids,
    eta=args.eta,
    cleaning_overrides=args.overrides,
    generic_prefixes=prefixes,
    batch_size=args.batch_size,
  )
  print(json.dumps(result, indent=2))
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2))
  return 0


def register(commands, debug) -> None:
  ev = commands.add_parser(
    "evaluate",
    parents=[debug],
    help="sensitivity/specificity, rare/frequent, categories, GAP, plots",
  )
  ev.add_argument("--checkpoint", required=True, help="a training workdir")
  ev.add_argument("--index", required=True, help="its centroid index")
  ev.add_argument("--out", required=True, help="report.md, report.json and PNG plots go here")
  ev.add_argument("--eta", type=float, default=None, help="default: the index's calibrated η")
  ev.add_argument(
    "--landmark-share",
    type=_open_share,
    default=None,
    metavar="SHARE",
    help="emulate a user collection where this share, in (0, 1), of the photos "
    "show a landmark (the paper: 0.01–0.03): all non-landmark photos are kept "
    "and landmark photos sampled. Default: the test set as it is. "
    "Sensitivity and specificity are rates within landmark and within "
    "non-landmark photos, so the share does not change them, only how many "
    "landmark photos sensitivity rests on; it matters for GAP, which ranks "
    "both kinds of photo together",
  )
  # 20 = eval.collection.MIN_PHOTOS, written out so that parsing does not import matplotlib.
  ev.add_argument(
    "--min-photos",
    type=non_negative_int,
    default=20,
    metavar="N",
    help="refuse to report sensitivity on fewer than N landmark photos or "
    "specificity on fewer than N non-landmark photos; smaller rare/frequent "
    "and category rows are shown, marked indicative only (default 20; 0 "
    "turns the refusal off)",
  )
  ev.add_argument(
    "--rare-threshold",
    type=positive_int,
    default=10,
    help="landmarks with fewer training images are 'rare'",
  )
  ev.add_argument(
    "--seed",
    type=int,
    default=0,
    help="seeds which landmark photos --landmark-share keeps (default 0)",
  )
  ev.add_argument(
    "--geo",
    action="store_true",
    help="also evaluate with geo-information (the photos' EXIF GPS positions)",
  )
  ev.add_argument(
    "--locations-csv",
    help="id,latitude,longitude of the test photos (implies "
    "--geo; photos not listed fall back to EXIF)",
  )
  add_source_args(ev, "the test split of the checkpoint's data")
  add_allow_other_model_arg(ev)
  add_verify_arg(ev)
  ev.set_defaults(run=_evaluate)

  evr = commands.add_parser(
    "evaluate-revisited",
    parents=[debug],
    help="Revisited Oxford/Paris mAP (official protocol; optionally the paper's junk "
    "pairs and ranking through centroids)",
    description="Revisited Oxford/Paris mAP and mP@k per protocol (easy, medium, hard), "
    "exactly as the official revisitop evaluation computes them. The paper's "
    "protocol differed: it moved query positives shot from another angle or "
    "inside/outside the building to junk (--junk-pairs, with your list: the "
    "paper's was not published) and answered queries with its landmark "
    "recognizer (--through-centroids). Both are reported beside the standard "
    "numbers.",
  )
  evr.add_argument("--checkpoint", required=True, help="a training workdir")
  evr.add_argument("--root", required=True, help="the dataset folder (with jpg/)")
  evr.add_argument(
    "--gnd",
    required=True,
    help="the ground truth: gnd_roxford5k.mat / gnd_rparis6k.mat, or the .pkl "
    "versions with --trust-pickle",
  )
  evr.add_argument(
    "--trust-pickle",
    action="store_true",
    help="allow a .pkl --gnd: a Python pickle can run code when loaded, so "
    "pass this only for a file you trust (the official revisitop download)",
  )
  evr.add_argument("--distractors", help="a folder of distractor images (R1M-style)")
  evr.add_argument(
    "--junk-pairs",
    metavar="CSV",
    help="relabel pairs as junk before scoring, as the paper did for positives "
    "shot from other angles or inside/outside: a CSV with a header naming "
    "the columns query,image (others ignored), one pair a row, names as in "
    "the ground truth (no .jpg). A pair that is an easy or hard positive "
    "becomes junk of its query in every protocol; one already junk or not "
    "a positive is left as it is and counted; an unknown name is an error "
    "naming the line. The result's junk_pairs says how many moved",
  )
  evr.add_argument(
    "--through-centroids",
    action="store_true",
    help="also score a ranking through the landmark recognizer: the database "
    "images are grouped into landmarks by name (paris_eiffel_000123 → "
    "paris_eiffel), cleaned and indexed as per-angle centroids with the "
    "checkpoint's cleaning and index settings; a query recognised as a "
    "landmark gets the images named after it first, by similarity, then "
    "the rest by similarity; a rejected query (below --eta) keeps the "
    "similarity ranking. Reported under through_centroids, with how many "
    "queries were recognised correctly, wrongly or rejected",
  )
  evr.add_argument(
    "--eta",
    type=float,
    default=None,
    help="with --through-centroids: the threshold η below which a query is "
    "'no landmark' (default: none, every query gets its nearest landmark)",
  )
  evr.add_argument(
    "--generic-prefixes",
    metavar="PREFIX,PREFIX",
    default=None,
    help="with --through-centroids: comma-separated image-name prefixes of "
    "generic searches, which name no landmark (default: "
    "oxford,paris_general; '' for none)",
  )
  evr.add_argument(
    "--batch-size", type=positive_int, default=16, help="photos per device call (default: 16)"
  )
  evr.add_argument("--out", help="also write the JSON result here")
  evr.add_argument(
    "overrides",
    nargs="*",
    metavar="key=value",
    help="with --through-centroids: changes to the checkpoint config's "
    "cleaning settings, e.g. min_cluster_size=5",
  )
  evr.set_defaults(run=_evaluate_revisited)
