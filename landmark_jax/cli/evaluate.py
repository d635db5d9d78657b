"""Evaluation: ``evaluate``, ``evaluate-revisited``."""

from __future__ import annotations

import argparse
import json
import pathlib

from landmark_jax.cli.common import add_source_args, non_negative_int, photos, positive_int


def _open_share(text: str) -> float:
  try:
    value = float(text)
  except ValueError:
    value = None
  if value is None or not 0 < value < 1:  # the comparison also refuses nan
    raise argparse.ArgumentTypeError(f"{text} is not a number in (0, 1): leave --landmark-share "
                                     "out to keep the test set as it is")
  return value


def _evaluate(args) -> int:
  from landmark_jax.data import source_for
  from landmark_jax.eval.report import (
      check_collection_size, emulate_collection, evaluate_recognizer, load_locations)
  from landmark_jax.recognize import Recognizer
  recognizer = Recognizer.load(args.checkpoint, args.index, eta=args.eta)
  trained = recognizer.trained
  source = photos(args, trained, "test", recognizer.label_map)
  if args.landmark_share is not None:
    # From the labels alone: a collection too small is refused before any photo is embedded.
    check_collection_size(source, args.landmark_share, args.min_photos)
    source = emulate_collection(source, args.landmark_share, seed=args.seed)
  evaluate_recognizer(
      recognizer, source, args.out,
      training_source=source_for(trained.config.data, "train", trained.label_map),
      rare_threshold=args.rare_threshold, geo=args.geo,
      locations=load_locations(args.locations_csv) if args.locations_csv else None,
      min_photos=args.min_photos)
  print((pathlib.Path(args.out) / "report.md").read_text())
  print(f"report and plots written to {args.out}")
  return 0


def _evaluate_revisited(args) -> int:
  from landmark_jax.eval.metrics import refuse_untrusted_pickle
  from landmark_jax.eval.revisited import evaluate_revisited
  from landmark_jax.recognize import PhotoEmbedder
  from landmark_jax.train.checkpoints import load_trained
  # Before the model loads: an untrusted pickle is refused at once, not minutes later.
  refuse_untrusted_pickle(args.gnd, args.trust_pickle)
  embedder = PhotoEmbedder(load_trained(args.checkpoint), batch_size=args.batch_size)
  result = evaluate_revisited(embedder.embed, args.root, args.gnd, distractors=args.distractors,
                              trust_pickle=args.trust_pickle)
  print(json.dumps(result, indent=2))
  if args.out:
    pathlib.Path(args.out).write_text(json.dumps(result, indent=2))
  return 0


def register(commands, debug) -> None:
  ev = commands.add_parser(
      "evaluate", parents=[debug],
      help="sensitivity/specificity, rare/frequent, categories, GAP, plots")
  ev.add_argument("--checkpoint", required=True, help="a training workdir")
  ev.add_argument("--index", required=True, help="its centroid index")
  ev.add_argument("--out", required=True, help="report.md, report.json and PNG plots go here")
  ev.add_argument("--eta", type=float, default=None, help="default: the index's calibrated η")
  ev.add_argument("--landmark-share", type=_open_share, default=None, metavar="SHARE",
                  help="emulate a user collection where this share, in (0, 1), of the photos "
                       "show a landmark (the paper: 0.01–0.03): all non-landmark photos are kept "
                       "and landmark photos sampled. Default: the test set as it is. "
                       "Sensitivity and specificity are rates within landmark and within "
                       "non-landmark photos, so the share does not change them, only how many "
                       "landmark photos sensitivity rests on; it matters for GAP, which ranks "
                       "both kinds of photo together")
  # 20 = eval.report.MIN_PHOTOS, written out so that parsing does not import matplotlib.
  ev.add_argument("--min-photos", type=non_negative_int, default=20, metavar="N",
                  help="refuse to report sensitivity on fewer than N landmark photos or "
                       "specificity on fewer than N non-landmark photos; smaller rare/frequent "
                       "and category rows are shown, marked indicative only (default 20; 0 "
                       "turns the refusal off)")
  ev.add_argument("--rare-threshold", type=positive_int, default=10,
                  help="landmarks with fewer training images are 'rare'")
  ev.add_argument("--seed", type=int, default=0,
                  help="seeds which landmark photos --landmark-share keeps (default 0)")
  ev.add_argument("--geo", action="store_true",
                  help="also evaluate with geo-information (the photos' EXIF GPS positions)")
  ev.add_argument("--locations-csv", help="id,latitude,longitude of the test photos (implies "
                                          "--geo; photos not listed fall back to EXIF)")
  add_source_args(ev, "the test split of the checkpoint's data")
  ev.set_defaults(run=_evaluate)

  evr = commands.add_parser("evaluate-revisited", parents=[debug],
                            help="Revisited Oxford/Paris mAP")
  evr.add_argument("--checkpoint", required=True, help="a training workdir")
  evr.add_argument("--root", required=True, help="the dataset folder (with jpg/)")
  evr.add_argument("--gnd", required=True,
                   help="the ground truth: gnd_roxford5k.mat / gnd_rparis6k.mat, or the .pkl "
                        "versions with --trust-pickle")
  evr.add_argument("--trust-pickle", action="store_true",
                   help="allow a .pkl --gnd: a Python pickle can run code when loaded, so "
                        "pass this only for a file you trust (the official revisitop download)")
  evr.add_argument("--distractors", help="a folder of distractor images (R1M-style)")
  evr.add_argument("--batch-size", type=positive_int, default=16,
                   help="photos per device call (default: 16)")
  evr.add_argument("--out", help="also write the JSON result here")
  evr.set_defaults(run=_evaluate_revisited)
