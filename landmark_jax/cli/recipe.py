"""``landmark-jax recipe``: the paper's whole recipe on GLDv2-layout data, resumable, on one
machine or many (scripts/slurm/recipe.sbatch, scripts/tpu/recipe.sh start it)."""

from __future__ import annotations

import pathlib

from landmark_jax.cli.common import (
  IntermixedParser,
  add_process_group_args,
  non_negative_int,
  positive_float,
  positive_int,
  probability,
)


def _options(args):
  from landmark_jax.recipe.options import RecipeOptions

  def path(value):
    return pathlib.Path(value).absolute() if value else None

  return RecipeOptions(
    data=path(args.data),
    workdir=path(args.workdir),
    config=str(path(args.config)) if pathlib.Path(args.config).suffix == ".py" else args.config,
    overrides=tuple(args.overrides),
    pretrained=args.pretrained,
    non_landmark_csv=path(args.non_landmark_csv),
    landmarks_csv=path(args.landmarks_csv),
    packed_dir=str(path(args.packed_dir) or ""),
    split_seed=args.split_seed,
    held_out_max=args.held_out_max,
    target_recall=args.target_recall,
    min_photos=args.min_photos,
    export=not args.no_export,
    embed_batch_size=args.embed_batch_size,
    num_workers=args.num_workers if args.num_workers is not None else _decode_workers(),
    embed_shard_size=args.embed_shard_size,
    heartbeat_timeout=args.heartbeat_timeout,
    single_steps_platform=args.single_steps_platform,
  )


def _decode_workers() -> int:
  """Half the CPUs this process may use, at most 8: a GPU node's share decodes as fast as
  a chip embeds, and on a 2-core machine 8 worker processes cost more to start than they
  save (8.5 s against 2.4 s without workers for 33 photos, in the new-user try)."""
  from landmark_jax.runtime import usable_cpus

  return min(8, usable_cpus() // 2)


def _recipe(args) -> int:
  from landmark_jax import distributed
  from landmark_jax.recipe import driver

  options = _options(args)
  if args.estimate_only or args.device_check:
    from landmark_jax.recipe.estimate import print_estimate

    count = args.plan_processes or distributed.launched_rank(_group(args))[1]
    if args.estimate_only or distributed.launched_rank(_group(args))[0] == 0:
      print_estimate(
        options, args.device_check, processes=count, chips=args.chips, scaling=args.scaling
      )
    if args.estimate_only:
      return 0
  rank, count, launcher = distributed.launched_rank(_group(args))
  if args.dry_run and args.plan_processes:
    rank, count, launcher = 0, args.plan_processes, "--plan-processes"
  place = driver.place_of(
    rank,
    count,
    launcher,
    attempt=args.attempt or ("dry-run" if args.dry_run else None),
    coordinator=args.coordinator_address,
    port_base=args.port_base,
  )
  if args.dry_run:
    return driver.dry_run(options, place)
  return driver.run(options, place)


def _group(args):
  from landmark_jax import distributed

  return distributed.ProcessGroup(
    args.coordinator_address, args.num_processes, args.process_id, args.heartbeat_timeout or 60
  )


def register(commands, debug) -> None:
  recipe = commands.add_parser(
    "recipe",
    parents=[debug],
    help="the paper's whole recipe on GLDv2-layout data, resumable, on one machine or a "
    "cluster: split, train, embed, clean, train again, embed, clean, index, calibrate, "
    "evaluate, export",
    description="Runs the paper's recipe as one resumable sequence of landmark-jax commands, "
    "each skipped when its output is complete: run the same command again after a kill or a "
    "preemption. Under srun (SLURM), mpirun, or with --coordinator-address/--num-processes/"
    "--process-id on every host, train and embed run on every process and the other steps on "
    "process 0; the workdir must be on storage every host sees. scripts/slurm/recipe.sbatch "
    "and scripts/tpu/recipe.sh start it; docs/recipe.md explains it.",
  )
  recipe.add_argument("--data", required=True, help="a GLDv2-layout folder (train.csv, images/)")
  recipe.add_argument(
    "--workdir", required=True, help="every step's output, on storage every host sees"
  )
  recipe.add_argument(
    "--config", default="default", help="a shipped config or a config file (default: default)"
  )
  recipe.add_argument(
    "--pretrained",
    metavar="WEIGHTS",
    help="the backbone's starting weights (sets model.pretrained): torchvision, timm:NAME, a "
    "file, or none",
  )
  recipe.add_argument(
    "--non-landmark-csv",
    metavar="CSV",
    help="id[,url] of photos that show no landmark, under --data's images/ (default: "
    "non_landmark.csv in --data, if there is one)",
  )
  recipe.add_argument(
    "--landmarks-csv",
    metavar="CSV",
    help="landmark_id with region, or latitude,longitude / country_code for the regions "
    "step, and names for the index (default: landmarks.csv in --data, if there is one)",
  )
  recipe.add_argument(
    "--packed-dir", metavar="DIR", help="read photos from `prepare gldv2 --pack`'s shards"
  )
  recipe.add_argument(
    "--split-seed", type=non_negative_int, default=0, help="seed of the split (default 0)"
  )
  recipe.add_argument(
    "--held-out-max",
    type=positive_int,
    default=10_000,
    metavar="N",
    help="at most N landmark and N non-landmark photos in each of the validation and test "
    "splits; the rest train (default: %(default)s)",
  )
  recipe.add_argument(
    "--target-recall",
    type=probability,
    default=0.99,
    metavar="R",
    help="build-index's search recall@1 target (default: %(default)s)",
  )
  recipe.add_argument(
    "--min-photos",
    type=non_negative_int,
    default=20,
    help="fewest landmark and non-landmark photos in each held-out split (default: %(default)s)",
  )
  recipe.add_argument("--no-export", action="store_true", help="stop at the report, no bundle")
  recipe.add_argument(
    "--embed-batch-size",
    type=positive_int,
    default=256,
    help="embed's photos per device call (default: %(default)s)",
  )
  recipe.add_argument(
    "--num-workers",
    type=non_negative_int,
    help="embed's photo-decoding worker processes per host (default: half the CPUs this "
    "process may use, at most 8)",
  )
  recipe.add_argument(
    "--embed-shard-size",
    type=positive_int,
    default=8192,
    help="embeddings per shard (default: %(default)s)",
  )
  mode = recipe.add_mutually_exclusive_group()
  mode.add_argument(
    "--dry-run",
    action="store_true",
    help="print every step, who runs it, whether it is done and its command line, and the "
    "inputs still lacking; run nothing (status 2 when an input lacks)",
  )
  mode.add_argument(
    "--estimate-only",
    action="store_true",
    help="print each training round's expected hours from --device-check, run nothing",
  )
  recipe.add_argument(
    "--plan-processes",
    type=positive_int,
    metavar="N",
    help="with --dry-run or --estimate-only: plan for N processes",
  )
  recipe.add_argument(
    "--device-check",
    metavar="JSON",
    help="`landmark-jax benchmark device --json`'s output: the estimate is printed before the run",
  )
  recipe.add_argument(
    "--chips",
    type=positive_int,
    help="accelerator chips in all (default: the device check's devices per host × processes)",
  )
  recipe.add_argument(
    "--scaling",
    type=positive_float,
    default=0.9,
    help="the share of N × one chip's images/s that N chips reach (default: %(default)s, assumed)",
  )
  recipe.add_argument(
    "--single-steps-platform",
    metavar="PLATFORM",
    help="JAX_PLATFORMS for the one-process steps (cpu on a TPU pod, whose chips only the "
    "whole slice can use)",
  )
  recipe.add_argument(
    "--attempt",
    metavar="ID",
    help="this start's name, the same on every process and new at each start (default "
    "under SLURM: JOB_ID.RESTART_COUNT)",
  )
  recipe.add_argument(
    "--port-base",
    type=positive_int,
    metavar="PORT",
    help="under SLURM / Open MPI: step k's coordinator listens on PORT + k (default: 20000 + "
    "16 × (job id mod 2000))",
  )
  add_process_group_args(recipe)
  # Not given: each step keeps its own default (60 s), and no flag is added to its command.
  recipe.set_defaults(heartbeat_timeout=None)
  (heartbeat,) = [a for a in recipe._actions if a.dest == "heartbeat_timeout"]
  heartbeat.help = (
    "passed to train and embed: when a process has been silent this long, the others stop "
    "with an error naming it (default: theirs, 60)"
  )
  recipe.add_argument(
    "overrides", nargs="*", metavar="key=value", help="overrides of the config, for every step"
  )
  recipe.set_defaults(run=_recipe)
  recipe.__class__ = IntermixedParser
