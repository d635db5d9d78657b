"""``landmark-jax recognize``: photos in, landmarks (or "non-landmark") out."""

from __future__ import annotations

import argparse
import json
import sys

from landmark_jax.cli.common import non_negative_float, positive_int
from landmark_jax.errors import UsageError


def _label(landmark_id, name) -> str:
  return f"{name} ({landmark_id})" if name else str(landmark_id)


def _recognize(args) -> int:
  from landmark_jax.data import ImageDecodeError
  from landmark_jax.geo import Location
  from landmark_jax.recognize import Recognizer
  if (args.latitude is None) != (args.longitude is None):
    raise UsageError("give --latitude and --longitude together")
  location = None
  if args.latitude is not None:
    location = Location(args.latitude, args.longitude)
  recognizer = Recognizer.load(args.checkpoint, args.index, top_k=args.top_k,
                               radius_km=args.radius_km)
  unreadable = 0
  for path in args.paths:
    try:  # one unreadable photo is reported and the others still recognised
      prediction = recognizer.recognize([path], [location], use_exif=not args.no_exif)[0]
    except ImageDecodeError as e:
      unreadable += 1
      if args.json:  # a JSON consumer gets every photo's line in the stream
        print(json.dumps({"path": path, "error": str(e)}))
      else:
        print(f"landmark-jax recognize: error: {path}: {e}", file=sys.stderr)
      continue
    if args.json:
      print(json.dumps({"path": path, **prediction.to_json()}))
    else:
      answer = ("non-landmark" if not prediction.is_landmark
                else _label(prediction.landmark_id, prediction.name))
      others = ", ".join(f"{_label(c.landmark_id, c.name)} {c.score:.3f}"
                         for c in prediction.candidates)
      print(f"{path}\t{answer}\t{prediction.score:.3f}\t[{others}]")
  return 2 if unreadable else 0


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
  rec.add_argument("--checkpoint", required=True, help="a training workdir")
  rec.add_argument("--index", required=True, help="its centroid index")
  rec.add_argument("--top-k", type=positive_int, default=5,
                   help="candidate landmarks listed per photo (default: 5)")
  rec.add_argument("--json", action="store_true", help="JSON lines instead of a table")
  rec.add_argument("--latitude", type=latitude,
                   help="the photos' location (else their EXIF GPS)")
  rec.add_argument("--longitude", type=longitude, help="with --latitude, in degrees")
  rec.add_argument("--radius-km", type=non_negative_float, default=50.0,
                   help="with a location, only landmarks this close are candidates (default: 50)")
  rec.add_argument("--no-exif", action="store_true", help="ignore EXIF GPS positions")
  rec.add_argument("paths", nargs="+", help="photos (JPEG, PNG, WebP); an unreadable one is "
                                            "reported and the status is 2")
  rec.set_defaults(run=_recognize)
