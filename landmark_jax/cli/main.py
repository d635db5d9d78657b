"""`main`: parse the command line, run the command, and the one error boundary.

A user's mistake — a missing or wrong file, an unknown config key, a value out of range, a
corrupt index, no data — is printed as one line naming the problem and exits with status 2.
``--debug`` (or ``LANDMARK_JAX_DEBUG=1``) shows the traceback instead. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from landmark_jax import lifeline, runtime
from landmark_jax.cli import (
  benchmark,
  calibrate,
  evaluate,
  export,
  offline,
  prepare,
  recipe,
  recognize,
  regions,
  serve,
  train,
)
from landmark_jax.cli.common import OneLineErrorParser, debug_flag
from landmark_jax.errors import TrainingStopped, UserError
from landmark_jax.text import printable

# Command groups, in the order `--help` lists them.
GROUPS = (
  prepare,
  train,
  regions,
  offline,
  calibrate,
  recognize,
  evaluate,
  export,
  serve,
  recipe,
  benchmark,
)

# Besides the library's own `UserError`s: what the operating system says about a path the
# user gave (a checkpoint folder that is a file, an unreadable output folder, …).
USER_MISTAKES = (
  UserError,
  FileNotFoundError,
  NotADirectoryError,
  IsADirectoryError,
  PermissionError,
  FileExistsError,
)


def version() -> str:
  """The installed distribution's version, else (a source tree not installed) the
  package's own."""
  from importlib import metadata

  try:
    return metadata.version("landmark-jax")
  except metadata.PackageNotFoundError:
    import landmark_jax

    return landmark_jax.__version__


class _PrintVersion(argparse.Action):
  """``--version``: argparse's own action, but the version is looked up only when asked, so
  no other command reads the distribution's metadata."""

  def __init__(self, option_strings, dest, **kwargs):
    super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

  def __call__(self, parser, namespace, values, option_string=None):
    print(f"landmark-jax {version()}")
    parser.exit()


def build_parser() -> argparse.ArgumentParser:
  parser = OneLineErrorParser(
    prog="landmark-jax",
    description="Large-scale landmark recognition via deep metric learning, in JAX.",
    epilog="A mistake prints one line and exits with status 2; --debug (or "
    "LANDMARK_JAX_DEBUG=1) shows the traceback.",
  )
  parser.add_argument(
    "--debug", action="store_true", help="show tracebacks instead of one-line errors"
  )
  parser.add_argument(
    "--version", action=_PrintVersion, help="print landmark-jax's version and exit"
  )
  commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
  for group in GROUPS:
    group.register(commands, debug_flag())
  return parser


# Commands that run the network forward only (and `benchmark` suites that time inference):
# they get XLA:CPU's faster inference kernels (`runtime.set_cpu_kernel_flag`). Training
# commands keep XLA's defaults, which train small models faster on CPU.
INFERENCE_COMMANDS = {
  "serve",
  "recognize",
  "embed",
  "evaluate",
  "evaluate-revisited",
  "calibrate",
  "add-landmarks",
  ("benchmark", "index"),
  ("benchmark", "compare"),
  ("benchmark", "serve"),
}


def _infers_only(args: argparse.Namespace) -> bool:
  return (
    args.command in INFERENCE_COMMANDS
    or (args.command, getattr(args, "suite", None)) in INFERENCE_COMMANDS
  )


def _one_line(error: BaseException) -> str:
  if isinstance(error, OSError) and error.filename and not isinstance(error, UserError):
    message = f"{error.strerror or error}: {error.filename}"
  else:
    message = str(error) or type(error).__name__
  # One line, whatever the message held; `printable`: it may quote a user's file.
  return printable(" ".join(message.split()))


def _index_checks(args: argparse.Namespace) -> contextlib.AbstractContextManager:
  """--allow-unchecked-index (`cli.export`): format-1 indexes load for this command."""
  if not getattr(args, "allow_unchecked_index", False):
    return contextlib.nullcontext()
  from landmark_jax.index.integrity import allowing_unchecked

  return allowing_unchecked()


def _is_main_process() -> bool:
  if "landmark_jax.distributed" not in sys.modules:  # only a multi-host command imports it
    return True
  from landmark_jax import distributed

  return distributed.is_main_process()


def main(argv: list[str] | None = None) -> int:
  if argv is None:  # the program itself: a recipe's step stops with its recipe
    lifeline.stop_with_parent()
  parser = build_parser()
  args = parser.parse_args(argv)
  debug = args.debug or os.environ.get("LANDMARK_JAX_DEBUG", "") not in ("", "0")
  if _infers_only(args):
    runtime.set_cpu_kernel_flag()  # before the command starts JAX
  try:
    with _index_checks(args):
      return args.run(args)
  except USER_MISTAKES as error:
    if debug:
      raise
    print(f"landmark-jax {args.command}: error: {_one_line(error)}", file=sys.stderr)
    return 2
  except BrokenPipeError:
    # The reader went away (`… | head`): stop quietly; point stdout at /dev/null so that
    # Python's own flush at exit does not raise again.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1
  except TrainingStopped as stopped:
    if _is_main_process():  # every process stopped at the same step: one of them says so
      print(
        f"landmark-jax {args.command}: {stopped}; run the same command again to resume "
        f"from step {stopped.step}",
        file=sys.stderr,
      )
    return stopped.exit_status
  except KeyboardInterrupt:
    print(f"landmark-jax {args.command}: interrupted", file=sys.stderr)
    if argv is None:  # the program itself, not a caller in Python
      # Ending the interpreter normally with XLA's or ScaNN's threads still at work crashed
      # at exit, 3 times in 12 interrupted `local-features` runs (status 139 after this
      # line). Every file the command writes is written atomically and its staging removed
      # as the interrupt unwound, so nothing is left to finalise: leave at once.
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(130)
    return 130
  except Exception as error:
    if "landmark_jax.distributed" in sys.modules:  # only a multi-host command imports it
      from landmark_jax import distributed

      distributed.await_verdict_on_peers()  # exits, naming a dead peer, if there is one
    if _out_of_memory(error) and not debug:
      # Sizes the user chose (a batch, an image size) that the device cannot hold: theirs
      # to change, as the message says; XLA's own text names the allocation.
      smaller = (
        "--batch-size or --image-sizes smaller, or --smoke on a CPU"
        if args.command == "benchmark"
        else "a smaller batch (pipeline.batch_size, --batch-size) or image size"
      )
      print(
        f"landmark-jax {args.command}: error: out of memory on the device: "
        f"{_one_line(error)[:300]} ({smaller}; --debug shows the traceback)",
        file=sys.stderr,
      )
      return 2
    raise


def _out_of_memory(error: BaseException) -> bool:
  """XLA's allocation failure (`jax.errors.JaxRuntimeError`, told by its name so that this
  module needs no JAX)."""
  return type(error).__name__ == "JaxRuntimeError" and str(error).startswith("RESOURCE_EXHAUSTED")


if __name__ == "__main__":
  sys.exit(main())
