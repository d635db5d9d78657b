"""`train --profile-steps A:B`: a trace of steps A to B (counted over the whole run, from 1)
that TensorBoard's profile plugin and Perfetto (ui.perfetto.dev) open.

Each process writes its own trace under ``workdir/profile/process_I`` (two processes on one
host would otherwise write the same file name). The trace stops after step B has finished
on the devices, not when the host has queued it.
"""

from __future__ import annotations

import logging
import pathlib

import jax

from landmark_jax.errors import UsageError

logger = logging.getLogger(__name__)

PROFILE_DIR = "profile"


def parse_profile_steps(text: str) -> tuple[int, int]:
  """``"A:B"`` → (A, B), with 1 ≤ A ≤ B; a UsageError naming the form otherwise."""
  first, sep, last = text.partition(":")
  try:
    steps = (int(first), int(last if sep else first))
  except ValueError:
    steps = (0, 0)
  if not 1 <= steps[0] <= steps[1]:
    raise UsageError(
      f"--profile-steps {text!r}: give A:B, the first and last step to trace, 1 ≤ A ≤ B "
      "(e.g. 10:20: after compilation and the first batches' warm-up)"
    )
  return steps


class StepProfiler:
  """Starts JAX's profiler before step `first` and stops it once step `last` is done."""

  def __init__(self, steps: tuple[int, int] | None, workdir: pathlib.Path):
    self.steps = steps
    self.folder = workdir / PROFILE_DIR / f"process_{jax.process_index()}"
    self.tracing = self.traced = False

  def before(self, step: int) -> None:
    """Called before step `step` (counted from 1) is dispatched."""
    if self.steps and step == self.steps[0] and not self.tracing:
      self.folder.mkdir(parents=True, exist_ok=True)
      jax.profiler.start_trace(str(self.folder), create_perfetto_trace=True)
      self.tracing = self.traced = True

  def after(self, step: int, outputs) -> None:
    """Called after step `step` was dispatched, with its outputs."""
    if self.tracing and step >= self.steps[1]:
      self.stop(outputs)

  def close(self, last_step: int) -> None:
    """At the run's end: ends a trace the run ended inside, or says that the run never
    reached step A (a resume past it, or fewer steps)."""
    if self.steps and not self.traced:
      logger.warning(
        "--profile-steps %d:%d: step %d did not run in this call (it ended at step %d, or "
        "resumed past it): no trace",
        *self.steps,
        self.steps[0],
        last_step,
      )
    self.stop()

  def stop(self, outputs=None) -> None:
    """Ends the trace once `outputs` (step B's) are computed."""
    if not self.tracing:
      return
    if outputs is not None:
      jax.block_until_ready(outputs)
    jax.profiler.stop_trace()
    self.tracing = False
    logger.info(
      "profile of steps %d:%d in %s (tensorboard --logdir %s; or its perfetto_trace.json.gz "
      "at ui.perfetto.dev)",
      *self.steps,
      self.folder,
      self.folder,
    )
