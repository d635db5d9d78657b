"""`landmark-jax recipe`'s three modes: the dry run (every step, its command line and
whether it is done; the inputs still lacking), the estimate, and the run itself."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys

from landmark_jax.errors import DataError, UsageError, UserError
from landmark_jax.experiment import check_same_config
from landmark_jax.recipe import split
from landmark_jax.recipe.inputs import SETTINGS, lacking_inputs
from landmark_jax.recipe.options import RecipeOptions
from landmark_jax.recipe.outcome import print_outcome, record_timings
from landmark_jax.recipe.run import Place, Runner
from landmark_jax.recipe.steps import SPLIT_STEP, plan_steps
from landmark_jax.recipe.workdir_lock import one_recipe_at_a_time

PORT_BASE = 20_000  # + 16 ports per SLURM job (job id mod 2000): steps use base + number


def place_of(
  rank: int, count: int, launcher: str, *, attempt=None, coordinator=None, port_base=None
):
  """This process's `Place`: the attempt and ports from the flags, else from SLURM."""
  job = os.environ.get("SLURM_JOB_ID", "")
  if attempt is None:
    if job:
      attempt = f"{job}.{os.environ.get('SLURM_RESTART_COUNT', '0')}"
    elif count > 1:
      raise UsageError(
        "give --attempt ID with several processes outside SLURM: the same on every process "
        "and new at each start (e.g. the date and time), so that a failure recorded by an "
        "earlier start is not taken for this one's"
      )
    else:
      attempt = "alone"
  if port_base is None and coordinator is None:
    port_base = PORT_BASE + (int(job) % 2000) * 16 if job.isdigit() else PORT_BASE
  return Place(rank, count, launcher, attempt, coordinator, port_base)


def _describe_data(options: RecipeOptions, listed) -> str:
  if not options.data.is_dir():
    return f"{options.data}: {'not a folder' if options.data.exists() else 'does not exist'}"
  if listed is None:
    return f"{options.data}: no list of photos read (the lacks: lines below)"
  landmark, non_landmark = listed.counts()
  landmarks = len({lid for lid in listed.photos.landmark_ids if lid is not None})
  return (
    f"{options.data}: {landmark} photos of {landmarks} landmarks, {non_landmark} non-landmark "
    "photos" + (" (its own val.csv and test.csv)" if options.own_split else "")
  )


def check_workdir(options: RecipeOptions) -> None:
  """Refuses a workdir whose runs were made with other settings (`check_same_config`)."""
  # The recipe has no --fresh (deleting a shared workdir from N processes at once is
  # unsafe): starting over is the user's own deletion.
  start_over = f"`rm -r {shlex.quote(str(options.workdir))}`"
  check_same_config(options.workdir, options.run_config(), start_over, second_round=True)


def dry_run(options: RecipeOptions, place: Place) -> int:
  """Prints the plan (process 0 only); 0 when the recipe can run, 2 when inputs lack."""
  lacks, listed = lacking_inputs(options)
  steps = [] if any(x.startswith(f"{SETTINGS}:") for x in lacks) else plan_steps(options)
  if steps:
    try:
      check_workdir(options)
    except UserError as error:
      lacks.append(f"workdir: {error}")
  if place.rank != 0:
    return 2 if lacks else 0
  print(f"recipe: {place.count} process(es) ({place.launcher}); workdir {options.workdir}")
  print(f"data: {_describe_data(options, listed)}")
  for step in steps:
    who = f"every process ({place.count})" if step.every_process else "process 0"
    state = "done (reused)" if step.is_done() else "to do"
    extra = place.joint_flags(step) if step.every_process else ()
    print(f"{step.number:2d}. {step.name} — {who} — {state}")
    print(f"    {step.command_line(extra)}")
  for lack in lacks:
    print(f"lacks: {lack}")
  if lacks:
    print(
      f"landmark-jax recipe: error: {len(lacks)} input(s) lacking (the lacks: lines above)",
      file=sys.stderr,
    )
    return 2
  return 0


def _say(text: str) -> None:
  # Flushed: under srun the output is a pipe, shared with the steps' own output.
  print(text, flush=True)


def run(options: RecipeOptions, place: Place, *, say=_say) -> int:
  """Runs (or finishes) the recipe as this process's part of it."""
  lacks, listed = lacking_inputs(options)
  if lacks:
    raise DataError(f"{len(lacks)} input(s) lacking (`--dry-run` lists them): " + "; ".join(lacks))
  check_workdir(options)
  layout = options.layout
  record = split.split_record(options.data, options.split_seed, options.held_out_max, listed)
  if not options.own_split:
    split.check_same_split(layout.split, record)

  def run_in_recipe(step):
    assert step.name == SPLIT_STEP, step.name
    made = split.make_split(listed, options.split_seed, options.held_out_max)
    split.write_split(made, layout.split, record)
    say(
      "   "
      + "; ".join(
        f"{name} {c['landmark_photos']} landmark + {c['non_landmark_photos']} non-landmark"
        for name, c in split.photo_split.split_counts(made).items()
      )
    )

  runner = Runner(
    plan_steps(options),
    place,
    layout,
    run_in_recipe=run_in_recipe,
    single_steps_platform=options.single_steps_platform,
    say=say,
  )
  # Process 0 alone: it writes the attempt the others follow, and on one host (the tests,
  # one task per GPU) a lock of every process would refuse the recipe's own peers.
  with one_recipe_at_a_time(layout.own, say) if place.rank == 0 else contextlib.nullcontext():
    status = runner.run()
  if place.rank == 0:
    total = record_timings(layout, runner.timings)
    if status == 0:
      print_outcome(layout, total, options.export)
  return status
