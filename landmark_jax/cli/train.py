"""``landmark-jax demo`` and ``landmark-jax train``."""

from __future__ import annotations

import argparse
import logging
import pathlib

from landmark_jax.cli.common import (
  add_process_group_args,
  join_processes,
  non_negative_int,
  setup_logging,
  use_compilation_cache,
)


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


def _train(args) -> int:
  from landmark_jax import distributed
  from landmark_jax.config import load_config
  from landmark_jax.train.loop import train

  config = load_config(args.config, args.overrides)  # mistakes surface before any work
  setup_logging(logging.INFO)
  join_processes(args, force=config.distributed)
  result = train(config, args.workdir)
  distributed.finish()
  if distributed.is_main_process():
    print(
      f"trained {result.steps} step{'s' * (result.steps != 1)} in {args.workdir}; "
      f"{result.skipped_images} unreadable images skipped"
    )
    if result.holdout:
      print(
        "held-out: "
        + ", ".join(
          f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.holdout.items()
        )
      )
  return 0


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
