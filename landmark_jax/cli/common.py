"""What several commands share: the one-line argument errors, the photo-source options, the
config options, argument types that check ranges."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
from typing import Sequence

from landmark_jax.errors import ConfigError, UsageError


class OneLineErrorParser(argparse.ArgumentParser):
  """argparse, but a usage mistake is one line (and status 2), like every other mistake, and
  a flag is spelt out: argparse's default takes a prefix (``--non-landmark`` for
  ``--non-landmarks``), so a misspelt flag would run silently."""

  def __init__(self, *args, **kwargs):
    kwargs.setdefault("allow_abbrev", False)
    super().__init__(*args, **kwargs)

  def error(self, message: str):
    print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
    sys.exit(2)


class IntermixedParser(OneLineErrorParser):
  """A subcommand whose positionals may come before, between and after its options
  (``fit PHOTOS --workdir W key=value``): plain argparse stops at the first option and
  calls the later ``key=value`` unrecognised."""

  _intermixing = False

  def parse_known_args(self, args=None, namespace=None):
    if self._intermixing:  # the two passes of parse_known_intermixed_args
      return super().parse_known_args(args, namespace)
    self._intermixing = True
    try:
      return self.parse_known_intermixed_args(args, namespace)
    finally:
      self._intermixing = False


def debug_flag() -> argparse.ArgumentParser:
  """A parent parser giving a subcommand ``--debug`` too (``landmark-jax train --debug``)."""
  parent = argparse.ArgumentParser(add_help=False)
  parent.add_argument(
    "--debug",
    action="store_true",
    default=argparse.SUPPRESS,
    help="show tracebacks instead of one-line errors",
  )
  return parent


def setup_logging(level: int = logging.WARNING) -> None:
  fmt = (
    "%(asctime)s %(levelname)s %(message)s"
    if level < logging.WARNING
    else "%(levelname)s %(message)s"
  )
  logging.basicConfig(level=logging.WARNING, format=fmt)
  # The library's own messages at `level`; other libraries' (orbax reports every checkpoint
  # at INFO) stay at warnings. Set on our logger, not through basicConfig alone: importing
  # orbax already configured the root logger (absl calls basicConfig), which makes a later
  # basicConfig a no-op, and `train` showed none of its INFO lines ("resumed from step").
  logging.getLogger("landmark_jax").setLevel(level)


def add_allow_other_model_arg(parser: argparse.ArgumentParser) -> None:
  """--allow-other-model, for a command that scores photos against an index with a model."""
  parser.add_argument(
    "--allow-other-model",
    action="store_true",
    help="use an index built from another model's embeddings (refused by default: its "
    "scores mean nothing unless the two are the same model, e.g. a workdir copied "
    "under another name)",
  )


def add_ignore_unmatched_arg(parser: argparse.ArgumentParser) -> None:
  """--ignore-unmatched, for a command that reads a landmarks CSV."""
  parser.add_argument(
    "--ignore-unmatched",
    action="store_true",
    help="skip rows of --landmarks-csv that match no landmark, with one warning "
    "line (refused by default: their landmarks would get no names or coordinates)",
  )


# Argument types: a value out of range is a usage error, found before any work starts.


def _number(text: str, parse, accept, what: str):
  """`parse(text)` if `accept` takes it; else a usage error saying what was expected (a
  word where a number belongs gets the same sentence, not argparse's "invalid int value")."""
  try:
    value = parse(text)
  except ValueError:
    value = None
  if value is None or not accept(value):  # nan fails every comparison, so it is refused
    raise argparse.ArgumentTypeError(f"{text} is not {what}")
  return value


def probability(text: str) -> float:
  return _number(text, float, lambda v: 0 < v <= 1, "in (0, 1]")


def share(text: str) -> float:
  return _number(text, float, lambda v: 0 <= v < 1, "in [0, 1)")


def budget_share(text: str) -> float:
  """A share of the queries a verification may settle, in [0, 1] (0: verification off)."""
  return _number(text, float, lambda v: 0 <= v <= 1, "in [0, 1] (0: verification off)")


def similarity(text: str) -> float:
  """A cosine similarity (a threshold η)."""
  return _number(text, float, lambda v: -1 <= v <= 1, "a cosine similarity in [-1, 1]")


def positive_int(text: str) -> int:
  return _number(text, int, lambda v: v >= 1, "a positive integer")


def non_negative_int(text: str) -> int:
  return _number(text, int, lambda v: v >= 0, "an integer ≥ 0")


def non_negative_float(text: str) -> float:
  return _number(text, float, lambda v: v >= 0 and math.isfinite(v), "a finite number ≥ 0")


def positive_float(text: str) -> float:
  return _number(text, float, lambda v: v > 0 and math.isfinite(v), "a finite number > 0")


def port(text: str) -> int:
  # Not 0: the OS would pick a port that the user is never told.
  return _number(text, int, lambda v: 1 <= v <= 65535, "a TCP port (1–65535)")


# Photos to work on: a GLDv2-layout folder, an image folder, or a split of the model's data.

DEFAULT_CSV = "train.csv"  # --csv with --root


def add_source_args(
  parser: argparse.ArgumentParser, default: str | None = None, *, required: bool = False
) -> None:
  """--root (with --csv, --non-landmark-csv) or --folder: the photos a command works on.

  Args:
    default: what the command uses when neither is given, in words (for the help).
    required: the command cannot run without them; argparse then refuses a command line
      without one, and the help says so instead of naming a default.
  """
  if required:
    where = "this or --folder is required"
  else:
    where = f"without this or --folder: {default}" if default else "optional"
  photos = parser.add_mutually_exclusive_group(required=required)
  photos.add_argument("--root", help=f"the photos: a GLDv2-layout folder ({where})")
  photos.add_argument(
    "--folder",
    help="the photos: an image folder "
    "<folder>/<landmark>/*.{jpg,jpeg,png,webp}, photos of "
    "no landmark in <folder>/non_landmark/; instead of "
    "--root",
  )
  # Default None, not train.csv: so that --csv without --root can be refused.
  parser.add_argument(
    "--csv", help=f"with --root: the image list, relative to it (default: {DEFAULT_CSV})"
  )
  parser.add_argument(
    "--non-landmark-csv",
    help="with --root: a list of non-landmark photo ids, relative to it (default: none)",
  )


def source_from_args(args, label_map):
  """The GLDv2 (--root/--csv) or image-folder (--folder) source the user named, or None.

  Raises:
    UsageError: --csv or --non-landmark-csv without --root.
  """
  from landmark_jax.data import GLDv2Source, ImageFolderSource

  if not getattr(args, "root", None):
    stray = [
      flag
      for flag, name in (("--csv", "csv"), ("--non-landmark-csv", "non_landmark_csv"))
      if getattr(args, name, None)
    ]
    if stray:
      raise UsageError(f"{' and '.join(stray)} name files under --root: give --root too")
  if getattr(args, "folder", None):
    return ImageFolderSource(args.folder, label_map=label_map)
  if getattr(args, "root", None):
    return GLDv2Source(
      args.root,
      csv=args.csv or DEFAULT_CSV,
      non_landmark_csv=args.non_landmark_csv,
      label_map=label_map,
    )
  return None


def photos(args, trained, split: str, label_map=None):
  """The photos the user named, else `split` of the data the model was trained on (the
  embedded dataset has every split; other data needs --root/--csv or --folder)."""
  from landmark_jax.data import source_for

  label_map = label_map or trained.label_map
  return source_from_args(args, label_map) or source_for(trained.config.data, split, label_map)


# Several hosts as one run (`landmark_jax.distributed`).


def add_process_group_args(parser: argparse.ArgumentParser) -> None:
  """--coordinator-address, --num-processes, --process-id: this process's place in a
  multi-host run (all three or none), and --heartbeat-timeout."""
  group = parser.add_argument_group(
    "several hosts",
    "run the same command on every host, each with its --process-id; "
    "without these, a SLURM or Open MPI launch is detected, and otherwise the run is one "
    "process (docs/decisions.md, 'Several hosts')",
  )
  group.add_argument(
    "--coordinator-address",
    metavar="HOST:PORT",
    help="process 0's host and a free port, the same on every process",
  )
  group.add_argument(
    "--num-processes", type=positive_int, metavar="N", help="how many processes (hosts) take part"
  )
  group.add_argument(
    "--process-id",
    type=non_negative_int,
    metavar="I",
    help="this process's index, 0 … N-1 (0 hosts the coordinator and writes the logs)",
  )
  group.add_argument(
    "--heartbeat-timeout",
    type=positive_int,
    metavar="SECONDS",
    default=60,
    help="when a process has been silent this long, the "
    "others stop with an error naming it (default: "
    "%(default)s)",
  )


def join_processes(args, force: bool = False, preemption_notices: bool = False) -> bool:
  """Joins the process group the command line names (see `add_process_group_args`);
  whether this run has several processes (`preemption_notices`: see
  `distributed.initialize`)."""
  from landmark_jax import distributed

  return distributed.initialize(
    distributed.ProcessGroup(
      args.coordinator_address, args.num_processes, args.process_id, args.heartbeat_timeout
    ),
    force=force,
    preemption_notices=preemption_notices,
  )


# Configs: a shipped name or a file, and overrides of one section of it.


def add_config_arg(parser: argparse.ArgumentParser, default_help: str) -> None:
  parser.add_argument(
    "--config",
    help=f"a shipped config name (see `landmark-jax train "
    f"--help`) or a config file; default: {default_help}",
  )


def config_section(config_name: str | None, fallback, section: str, overrides: Sequence[str]):
  """`section` of the named config (else of `fallback`, a config or a name), with
  ``key=value`` overrides of that section's fields."""
  from landmark_jax.config import apply_overrides, load_config

  config = load_config(config_name) if config_name else fallback
  if isinstance(config, str):
    config = load_config(config)
  value = getattr(config, section)
  if not dataclasses.is_dataclass(value):
    raise ConfigError(f"config has no section {section!r}")
  return apply_overrides(value, overrides)


# The persistent compilation cache: serve and recognize with these options; train, demo and
# ablation with the default folder.


def add_compilation_cache_args(parser: argparse.ArgumentParser) -> None:
  cache = parser.add_mutually_exclusive_group()
  cache.add_argument(
    "--compilation-cache",
    metavar="DIR",
    help="keep compiled programs here, so the next start loads them instead "
    "of compiling (default: ~/.cache/landmark_jax/xla, or "
    "$LANDMARK_JAX_CACHE/xla; JAX_COMPILATION_CACHE_DIR wins)",
  )
  cache.add_argument(
    "--no-compilation-cache",
    action="store_true",
    help="compile every program at start, keep nothing",
  )


def use_compilation_cache(args: argparse.Namespace | None = None) -> None:
  """Keeps XLA's compiled programs on disk, so that a second run of a command — a service's
  next start, or the ablation's next variant, whose programs have the same shapes — loads
  them instead of compiling again (`runtime.enable_compilation_cache`). `args`: the options
  of `add_compilation_cache_args`, where the command has them."""
  if args is not None and args.no_compilation_cache:
    return
  from landmark_jax.runtime import enable_compilation_cache

  path = args.compilation_cache if args is not None else None
  if enable_compilation_cache(path) is None:
    logging.getLogger("landmark_jax").warning(
      "cannot create the compilation cache folder %s: compiling at every start", path or "(default)"
    )
