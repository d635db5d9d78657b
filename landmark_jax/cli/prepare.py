"""``landmark-jax prepare gldv2``: download, verify and extract Google Landmarks v2, and
optionally pack it into ArrayRecord shards (``data.packed_dir``)."""

from __future__ import annotations

import argparse

from landmark_jax.cli.common import positive_int, setup_logging


def parts(text: str) -> range:
  """``A-B`` or ``N``: GLDv2 image tars, checked when parsing."""
  from landmark_jax.errors import UsageError
  from landmark_jax.prepare.gldv2 import parse_parts

  try:
    return parse_parts(text)
  except UsageError as error:
    raise argparse.ArgumentTypeError(str(error).removeprefix(f"--parts {text!r}: ")) from None


def _prepare_gldv2(args) -> int:
  from landmark_jax.prepare.gldv2 import PACKED_DIR, prepare_gldv2

  setup_logging()
  result = prepare_gldv2(
    args.out,
    base_url=args.base_url,
    parts=args.parts,
    jobs=args.jobs,
    attempts=args.attempts,
    keep_tars=args.keep_tars,
    pack=args.pack,
    resize=args.resize,
    shard_size=args.shard_size,
    progress=not args.no_progress,
  )
  first, last = args.parts[0], args.parts[-1]
  print(
    f"parts {first:03d}–{last:03d}: {len(result.verified)} tar(s) md5-verified and "
    f"extracted into {result.out / 'train'} ({len(result.fetched)} by this run); "
    f"metadata: {', '.join(result.metadata)}"
  )
  if result.packed is not None:
    packed = result.packed
    print(
      f"packed {packed.records} photos into {packed.shards} shard(s) → {packed.folder}"
      + (" (already packed)" if packed.reused else "")
      + (f"; {len(packed.skipped)} unreadable photo(s) left out" if packed.skipped else "")
    )
    data = f"data.kind=gldv2 data.root={result.out} data.packed_dir={PACKED_DIR}"
  else:
    data = f"data.kind=gldv2 data.root={result.out}"
  # GLDv2 ships no non-landmark photos and no coordinates: the paper's recipe needs both.
  print(
    f"train on it: {data} data.non_landmark_csv=<your non-landmark photo list> "
    "data.regions_csv=<`landmark-jax regions` output> (README, 'Training')"
  )
  return 0


# = landmark_jax.prepare.gldv2's, written out: importing it loads urllib and http.client,
# which every command's parsing would pay for (a test checks the two agree).
DEFAULT_BASE_URL = "https://s3.amazonaws.com/google-landmark"
NUM_PARTS = 500


def register(commands, debug) -> None:
  prepare = commands.add_parser(
    "prepare", parents=[debug], help="download and prepare a dataset (gldv2)"
  )
  datasets = prepare.add_subparsers(dest="dataset", required=True, metavar="DATASET")
  gldv2 = datasets.add_parser(
    "gldv2",
    parents=[debug],
    help="Google Landmarks v2: metadata CSVs and image tars, md5-verified, extracted; "
    "optionally packed into ArrayRecord shards",
    description="Fetches train.csv (and train_clean.csv, train_label_to_category.csv when "
    "the server has them) and the image tars images_NNN.tar with their md5 "
    "lists; verifies each tar (a corrupt one is fetched again), continues "
    "interrupted downloads with HTTP Range requests, extracts into "
    "OUT/train/<a>/<b>/<c>/<id>.jpg. Rerunning continues where a killed run "
    "stopped: finished parts are recorded in OUT/prepare_state.json.",
  )
  gldv2.add_argument(
    "--out", required=True, metavar="DIR", help="the dataset folder to fill (data.root)"
  )
  gldv2.add_argument(
    "--base-url",
    default=DEFAULT_BASE_URL,
    metavar="URL",
    help="the server: URL/metadata/train.csv, URL/train/images_NNN.tar, "
    f"URL/md5sum/train/md5.images_NNN.txt (default: {DEFAULT_BASE_URL})",
  )
  gldv2.add_argument(
    "--parts",
    type=parts,
    default=range(NUM_PARTS),
    metavar="A-B",
    help=f"which image tars, inclusive, or one number (default: 0-{NUM_PARTS - 1}, all)",
  )
  gldv2.add_argument(
    "--jobs",
    type=positive_int,
    default=4,
    metavar="N",
    help="tars downloaded at once; also resizing threads (default: 4)",
  )
  gldv2.add_argument(
    "--attempts",
    type=positive_int,
    default=3,
    metavar="N",
    help="tries per file before giving up with an error naming it (default: 3)",
  )
  gldv2.add_argument(
    "--keep-tars",
    action="store_true",
    help="keep the verified tars in DIR/tars (default: deleted once "
    "extracted; GLDv2's take ~500 GB)",
  )
  gldv2.add_argument(
    "--pack",
    action="store_true",
    help="pack every photo of DIR/train into ArrayRecord shards in "
    "DIR/packed, read with data.packed_dir=packed",
  )
  gldv2.add_argument(
    "--resize",
    type=positive_int,
    metavar="N",
    help="while packing, shrink photos to longest side N pixels (JPEG "
    "quality 90; smaller photos are stored as they are); implies --pack",
  )
  gldv2.add_argument(
    "--shard-size",
    type=positive_int,
    metavar="N",
    help="photos per ArrayRecord shard (default: 5000)",
  )
  gldv2.add_argument("--no-progress", action="store_true", help="no progress bars")
  gldv2.set_defaults(run=_prepare_gldv2)
