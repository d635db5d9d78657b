"""``landmark-jax recognize``: photos in, landmarks (or "non-landmark") out."""

from __future__ import annotations

import argparse
import json
import sys

from landmark_jax.cli.common import (
  add_allow_other_model_arg,
  add_compilation_cache_args,
  non_negative_float,
  positive_int,
  use_compilation_cache,
)
from landmark_jax.cli.export import add_model_and_index_args
from landmark_jax.errors import UsageError
from landmark_jax.text import printable


def _label(landmark_id, name) -> str:
  # A landmark added from a folder is often named by its own id: say it once. `printable`:
  # names come from a user's CSV, and an escape sequence in one must not reach the terminal.
  label = f"{name} ({landmark_id})" if name and name != str(landmark_id) else str(landmark_id)
  return printable(label)


def _answer(prediction) -> str:
  if prediction.is_landmark:
    answer = _label(prediction.landmark_id, prediction.name)
    # The score column is the best centroid's, which verification may have overruled.
    return answer + (f", verified by {prediction.inliers} inliers" if prediction.verified else "")
  return f"non-landmark — {prediction.reason_text}"


def _report(path: str, prediction, as_json: bool) -> None:
  if as_json:
    print(json.dumps({"path": path, **prediction.to_dict()}))
    return
  others = ", ".join(
    f"{_label(c.landmark_id, c.name)} {c.score:.3f}" for c in prediction.candidates
  )
  print(f"{printable(path)}\t{_answer(prediction)}\t{prediction.score:.3f}\t[{others}]")


def _report_error(path: str, problem: str, as_json: bool) -> None:
  if as_json:  # a JSON consumer gets every photo's line in the stream
    print(json.dumps({"path": path, "error": problem}))
  else:
    print(f"landmark-jax recognize: error: {printable(path)}: {problem}", file=sys.stderr)


def add_verify_arg(parser: argparse.ArgumentParser) -> None:
  """--verify/--no-verify, for a command that answers photos with an index (default: the
  index decides: it verifies when it stores local features and a calibrated band)."""
  parser.add_argument(
    "--verify",
    action=argparse.BooleanOptionalAction,
    default=None,
    help="settle the answers whose score falls in the index's calibrated band around η by "
    "matching local features with its stored reference photos; --verify refuses an index "
    "without them (`landmark-jax local-features`, then `calibrate --verify-budget`), "
    "--no-verify answers by the centroids alone (default: verify when the index can)",
  )


def _recognize(args) -> int:
  from landmark_jax.bundle import check_model_args
  from landmark_jax.geo import Location
  from landmark_jax.recognize import Prediction, Recognizer

  check_model_args(args.checkpoint, args.index, args.bundle)
  if (args.latitude is None) != (args.longitude is None):
    raise UsageError("give --latitude and --longitude together")
  location = None
  if args.latitude is not None:
    location = Location(args.latitude, args.longitude)
  use_compilation_cache(args)
  recognizer = Recognizer.load(
    *([args.bundle] if args.bundle else [args.checkpoint, args.index]),
    allow_other_model=args.allow_other_model,
    top_k=args.top_k,
    radius_km=args.radius_km,
    verify=args.verify,
  )
  failed = 0
  answers = recognizer.recognize_files(
    args.paths, [location] * len(args.paths), use_exif=not args.no_exif
  )
  for path, answer in answers:
    if isinstance(answer, Prediction):
      _report(path, answer, args.json)
    else:
      failed += 1
      _report_error(path, answer, args.json)
  return 2 if failed else 0


def latitude(text: str) -> float:
  value = float(text)
  if not -90 <= value <= 90:
    raise argparse.ArgumentTypeError(f"{text} is not a latitude in [-90, 90]")
  return value


def longitude(text: str) -> float:
  value = float(text)
  if not -180 <= value <= 180:
    raise argparse.ArgumentTypeError(f"{text} is not a longitude in [-180, 180]")
  return value


def register(commands, debug) -> None:
  rec = commands.add_parser("recognize", parents=[debug], help="recognise photos")
  add_model_and_index_args(rec)
  rec.add_argument(
    "--top-k",
    type=positive_int,
    default=5,
    help="candidate landmarks listed per photo (default: 5)",
  )
  rec.add_argument(
    "--json",
    action="store_true",
    help="one JSON object per photo instead of a table (a photo that cannot "
    'be read gets {"path", "error"})',
  )
  rec.add_argument(
    "--latitude",
    type=latitude,
    help="where every photo was taken, in degrees (-90–90), with --longitude "
    "(default: each photo's EXIF GPS position, if any)",
  )
  rec.add_argument("--longitude", type=longitude, help="with --latitude, in degrees (-180–180)")
  rec.add_argument(
    "--radius-km",
    type=non_negative_float,
    default=50.0,
    help="with a location, only landmarks this close are candidates (default: 50)",
  )
  rec.add_argument("--no-exif", action="store_true", help="ignore EXIF GPS positions")
  add_verify_arg(rec)
  add_allow_other_model_arg(rec)
  add_compilation_cache_args(rec)
  rec.add_argument(
    "paths",
    nargs="+",
    metavar="PHOTO",
    help="photo files (JPEG, PNG, WebP); one that is missing, a folder or "
    "unreadable gets an error line (on stderr; with --json, its JSON "
    "line), the others are still recognised, and the status is 2",
  )
  rec.set_defaults(run=_recognize)
