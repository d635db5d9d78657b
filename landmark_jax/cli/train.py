"""``landmark-jax demo``, ``landmark-jax fit`` and ``landmark-jax train``."""

from __future__ import annotations

import argparse
import logging
import os
import pathlib

from landmark_jax.cli.common import (
  IntermixedParser,
  add_process_group_args,
  join_processes,
  non_negative_int,
  setup_logging,
  use_compilation_cache,
)
from landmark_jax.lifeline import RECIPE_STEP


def _demo(args) -> int:
  from landmark_jax.demo import run_demo

  setup_logging()
  use_compilation_cache()
  run_demo(
    args.workdir,
    fresh=args.fresh,
    overrides=tuple(args.overrides),
    second_round=not args.single_round,
  )
  return 0


def _fit(args) -> int:
  from landmark_jax.fit import run_fit

  setup_logging()
  use_compilation_cache()
  run_fit(
    args.photos,
    args.workdir,
    train=not args.no_train,
    second_round=not args.single_round,
    config=args.config,
    overrides=tuple(args.overrides),
    non_landmarks=args.non_landmarks,
    landmarks_csv=args.landmarks_csv,
    pretrained=args.pretrained,
    split_seed=args.split_seed,
    min_photos=args.min_photos,
    fresh=args.fresh,
  )
  return 0


def _train(args) -> int:
  from landmark_jax import distributed
  from landmark_jax.config import load_config
  from landmark_jax.errors import TrainingStopped
  from landmark_jax.train.loop import train
  from landmark_jax.train.profiling import PROFILE_DIR

  config = load_config(args.config, args.overrides)  # mistakes surface before any work
  setup_logging(logging.INFO)
  join_processes(args, force=config.distributed, preemption_notices=True)
  try:
    result = train(config, args.workdir, profile_steps=args.profile_steps)
  except TrainingStopped:
    distributed.finish()  # the others stop at the same step: not a death
    raise  # said by `cli.main`
  distributed.finish()
  if distributed.is_main_process():
    print(
      f"trained {result.steps} step{'s' * (result.steps != 1)} in {args.workdir}; "
      f"{result.skipped_images} unreadable images skipped"
    )
    if args.profile_steps and (pathlib.Path(args.workdir) / PROFILE_DIR).is_dir():
      print(
        f"profile of steps {args.profile_steps[0]}:{args.profile_steps[1]}: "
        f"tensorboard --logdir {pathlib.Path(args.workdir) / PROFILE_DIR}, or its "
        "perfetto_trace.json.gz at ui.perfetto.dev"
      )
    if result.holdout:
      print(
        "held-out: "
        + ", ".join(
          f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.holdout.items()
        )
      )
    # Not inside `landmark-jax recipe`, which runs what comes next.
    if not config.data.clean_csv and not os.environ.get(RECIPE_STEP):
      # The paper trains twice: this was the first round, on photos nobody has cleaned.
      print(
        "this is the recipe's first round (uncleaned photos): `landmark-jax embed`, `clean`, "
        "then train again with data.clean_csv=<clean>/train_clean.csv; `landmark-jax fit` "
        "runs both rounds"
      )
  return 0


def _profile_steps(text: str) -> tuple[int, int]:
  from landmark_jax.errors import UsageError
  from landmark_jax.train.profiling import parse_profile_steps

  try:
    return parse_profile_steps(text)
  except UsageError as error:
    raise argparse.ArgumentTypeError(str(error)) from None


def _seeds(text: str) -> tuple[int, ...]:
  seeds = tuple(non_negative_int(part) for part in text.split(",") if part.strip())
  if not seeds:
    raise argparse.ArgumentTypeError("give at least one seed, e.g. 0,1,2")
  return seeds


def _names(text: str) -> tuple[str, ...]:
  return tuple(part.strip() for part in text.split(",") if part.strip())


def _ablation(args) -> int:
  from landmark_jax.ablation import run_ablation, variants_named

  setup_logging()
  use_compilation_cache()
  variants = variants_named(args.variants)
  payload = run_ablation(
    args.config,
    args.workdir,
    overrides=tuple(args.overrides),
    seeds=tuple(args.seeds),
    variants=variants,
    fresh=args.fresh,
    min_photos=args.min_photos,
  )
  table = (pathlib.Path(args.workdir) / "ablation.md").read_text()
  print("\n" + table.split("Per run")[0].rstrip())
  print(
    f"\nTable: {pathlib.Path(args.workdir) / 'ablation.md'}  "
    f"Plot: {pathlib.Path(args.workdir) / 'ablation.png'}  "
    f"({len(payload['runs'])} run{'s' * (len(payload['runs']) != 1)})"
  )
  return 0


def register(commands, debug) -> None:
  from landmark_jax.config import config_names

  demo = commands.add_parser(
    "demo",
    parents=[debug],
    help="the whole pipeline on the embedded dataset: train, clean, train again on the "
    "cleaned photos, clean into centroids, index, calibrate, recognise",
  )
  demo.add_argument(
    "--workdir",
    default="workdir/demo",
    help="every step's output (the first round's in round1/); a second run reuses it",
  )
  demo.add_argument("--fresh", action="store_true", help="delete the workdir and start over")
  demo.add_argument(
    "--single-round",
    action="store_true",
    help="train once, on every training photo, and index that model (as "
    "`landmark-jax ablation` does), instead of training again on the "
    "photos the first cleaning kept",
  )
  demo.add_argument(
    "overrides", nargs="*", metavar="key=value", help="overrides of the tiny_cpu config"
  )
  demo.set_defaults(run=_demo)

  fit = commands.add_parser(
    "fit",
    parents=[debug],
    help="your own photos to a calibrated recognizer in one command: split, train, clean, "
    "train again, index, calibrate η, evaluate (the demo's steps)",
    description="The whole recipe on your photos. PHOTOS is a folder with one subfolder of "
    "photos per landmark (named by the landmark) and non_landmark/ for photos that show no "
    "landmark, a GLDv2-layout folder (train.csv, images/), or a CSV of path,landmark_id "
    "(blank landmark_id: no landmark). Each landmark's photos are split 60/20/20 into "
    "training, validation (η) and test photos, written to WORKDIR/split. A second run "
    "reuses every finished step.",
  )
  fit.add_argument(
    "photos", metavar="PHOTOS", help="folder of <landmark>/*.jpg, GLDv2 folder or CSV"
  )
  fit.add_argument("--workdir", required=True, help="every step's output; a second run reuses it")
  fit.add_argument(
    "--non-landmarks", metavar="DIR", help="a folder of further photos that show no landmark"
  )
  fit.add_argument(
    "--landmarks-csv",
    metavar="CSV",
    help="landmark_id,name,region,latitude,longitude for the index; region: the curriculum's "
    "part, which --config default needs (default: landmarks.csv beside the photos, if there "
    "is one)",
  )
  fit.add_argument(
    "--config",
    default="tiny_cpu",
    help="tiny_cpu (default: minutes on a CPU), default (the paper's WRN-50-2 and curriculum, "
    "for an accelerator; give --pretrained and regions in --landmarks-csv), or a config file; "
    f"shipped: {', '.join(config_names())}",
  )
  fit.add_argument(
    "--pretrained",
    metavar="WEIGHTS",
    help="the backbone's starting weights: torchvision, timm:NAME, a .pth/.safetensors file, "
    "a training workdir, or none (sets model.pretrained)",
  )
  fit.add_argument(
    "--no-train",
    action="store_true",
    help="no training (no accelerator needed): embed with the pretrained backbone's features, "
    "whitened on your photos; needs --pretrained",
  )
  fit.add_argument(
    "--single-round",
    action="store_true",
    help="train once, instead of again on the photos the first cleaning kept",
  )
  fit.add_argument(
    "--split-seed", type=non_negative_int, default=0, help="seed of the split (default 0)"
  )
  fit.add_argument(
    "--min-photos",
    type=non_negative_int,
    default=5,
    help="fewest landmark and non-landmark photos in each of the validation and test splits "
    "(default 5; 0 turns the check off)",
  )
  fit.add_argument("--fresh", action="store_true", help="delete the workdir and start over")
  fit.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the config")
  fit.set_defaults(run=_fit)
  fit.__class__ = IntermixedParser  # PHOTOS first, key=value overrides after the options

  train = commands.add_parser(
    "train",
    parents=[debug],
    help="train LandmarkNet (resumes from the latest checkpoint in --workdir)",
  )
  train.add_argument(
    "--config",
    required=True,
    help=f"a shipped config ({', '.join(config_names())}) or a config file "
    "(a .py path with get_config())",
  )
  train.add_argument("--workdir", required=True, help="checkpoints, logs and label map go here")
  train.add_argument(
    "overrides",
    nargs="*",
    metavar="key=value",
    help="config overrides, e.g. optim.lr_backbone=0.01 pipeline.batch_size=64",
  )
  train.add_argument(
    "--profile-steps",
    type=_profile_steps,
    metavar="A:B",
    help="trace steps A to B with JAX's profiler into WORKDIR/profile (TensorBoard's profile "
    "plugin or ui.perfetto.dev opens it), e.g. 10:20",
  )
  add_process_group_args(train)
  train.set_defaults(run=_train)

  ablation = commands.add_parser(
    "ablation",
    parents=[debug],
    help="the paper's training variants (softmax, + non-landmark class, + center loss, "
    "+ curriculum, ArcFace) through the whole pipeline over several seeds: a table "
    "and a plot",
  )
  ablation.add_argument(
    "--config",
    required=True,
    help=f"a shipped config ({', '.join(config_names())}) or a config "
    "file; its data needs validation and test splits",
  )
  ablation.add_argument(
    "--workdir",
    default="workdir/ablation",
    help="one folder per variant and seed, reused when finished; the "
    "table and plot go here (default: %(default)s)",
  )
  ablation.add_argument(
    "--seeds",
    type=_seeds,
    default=(0, 1, 2),
    metavar="S,S,…",
    help="seeds of every variant, comma-separated (default: 0,1,2)",
  )
  ablation.add_argument(
    "--variants",
    type=_names,
    metavar="NAME,…",
    help="run only these, comma-separated (default: all, in this order, "
    "each adding its part to the ones before): softmax_n (softmax "
    "over the landmarks only), non_landmark (+ the non-landmark "
    "class), center_loss (+ center loss), curriculum (+ curriculum: "
    "the paper's method), arcface (ArcFace instead of softmax + "
    "center loss)",
  )
  ablation.add_argument("--fresh", action="store_true", help="delete the workdir and start over")
  ablation.add_argument(
    "--min-photos",
    type=non_negative_int,
    default=20,
    help="fewest landmark and non-landmark test photos a figure may rest "
    "on; fewer is refused (0: never; default: %(default)s)",
  )
  ablation.add_argument(
    "overrides",
    nargs="*",
    metavar="key=value",
    help="config overrides for every variant, e.g. num_epochs=10",
  )
  ablation.set_defaults(run=_ablation)
