"""``landmark-jax demo`` and ``landmark-jax train``."""

from __future__ import annotations

import logging

from landmark_jax.cli.common import setup_logging


def _demo(args) -> int:
  from landmark_jax.demo import run_demo
  setup_logging()
  run_demo(args.workdir, fresh=args.fresh, overrides=tuple(args.overrides))
  return 0


def _train(args) -> int:
  from landmark_jax.config import load_config
  from landmark_jax.train.loop import train
  config = load_config(args.config, args.overrides)  # mistakes surface before any work
  setup_logging(logging.INFO)
  result = train(config, args.workdir)
  print(f"trained {result.steps} steps in {args.workdir}; {result.skipped_images} unreadable "
        "images skipped")
  if result.holdout:
    print("held-out: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                   for k, v in result.holdout.items()))
  return 0


def register(commands, debug) -> None:
  from landmark_jax.configs import config_names  # not landmark_jax.config: --help stays fast
  demo = commands.add_parser(
      "demo", parents=[debug],
      help="the whole pipeline on the embedded dataset: train, clean, index, recognise")
  demo.add_argument("--workdir", default="workdir/demo",
                    help="every step's output; a second run reuses it")
  demo.add_argument("--fresh", action="store_true", help="delete the workdir and start over")
  demo.add_argument("overrides", nargs="*", metavar="key=value",
                    help="overrides of the tiny_cpu config")
  demo.set_defaults(run=_demo)

  train = commands.add_parser(
      "train", parents=[debug],
      help="train LandmarkNet (resumes from the latest checkpoint in --workdir)")
  train.add_argument("--config", required=True,
                     help=f"a shipped config ({', '.join(config_names())}) or a config file "
                          "(a .py path with get_config())")
  train.add_argument("--workdir", required=True, help="checkpoints, logs and label map go here")
  train.add_argument("overrides", nargs="*", metavar="key=value",
                     help="config overrides, e.g. optim.lr_backbone=0.01 pipeline.batch_size=64")
  train.set_defaults(run=_train)
