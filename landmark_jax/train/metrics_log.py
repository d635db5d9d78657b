"""Training metrics: JSON lines and TensorBoard event files, written on process 0 only."""

from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Any

import jax

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


class NonFiniteLossError(FloatingPointError):
  """The loss became NaN or Inf; the message names the step."""


def check_finite(step: int, metrics: dict[str, float]) -> None:
  # The parameters after the step too: a finite loss computed before an overflowing update
  # must not let that update into a checkpoint.
  bad = {
    k: metrics[k] for k in ("loss", "grad_norm", "param_norm") if not math.isfinite(metrics[k])
  }
  if bad:
    raise NonFiniteLossError(
      f"non-finite {', '.join(f'{k}={v}' for k, v in bad.items())} at step {step}: stopping; "
      "the last checkpoint (before this step) is intact"
    )


def rows_up_to(lines: list[str], step: int) -> list[str]:
  """The lines that are complete rows of steps up to `step`.

  A resumed run repeats the steps after its checkpoint, so their rows would appear twice;
  a line that is not valid JSON is the tail of a write killed mid-line.
  """
  kept = []
  for line in lines:
    try:
      row = json.loads(line)
    except ValueError:
      continue
    if isinstance(row, dict) and row.get("step", math.inf) <= step:
      kept.append(line)
  return kept


def truncate_metrics(path: pathlib.Path, step: int) -> None:
  """Rewrites `path` to `rows_up_to(step)`; atomically, so a crash now loses no rows."""
  if not path.exists():
    return
  kept = rows_up_to(path.read_text().splitlines(), step)
  tmp = path.with_name(path.name + ".tmp")  # same folder: os.replace stays one rename
  tmp.write_text("".join(line + "\n" for line in kept))
  os.replace(tmp, path)


class MetricsLog:
  """``workdir/metrics.jsonl`` (one object per logged step) and ``workdir/tensorboard``.

  `resume_step`: the step of the checkpoint a run resumes from; rows past it are dropped,
  since the run logs those steps again. None (a fresh run) appends to any existing file.
  """

  def __init__(self, workdir: pathlib.Path, resume_step: int | None = None):
    self._enabled = jax.process_index() == 0
    if self._enabled:
      from tensorboardX import SummaryWriter

      if resume_step is not None:
        truncate_metrics(workdir / METRICS_FILE, resume_step)
      self._jsonl = open(workdir / METRICS_FILE, "a")
      self._writer = SummaryWriter(str(workdir / TENSORBOARD_DIR))

  def write(self, step: int, values: dict[str, Any]) -> None:
    if not self._enabled:
      return
    self._jsonl.write(json.dumps({"step": step, **values}) + "\n")
    self._jsonl.flush()
    for key, value in values.items():
      if isinstance(value, (int, float)):
        self._writer.add_scalar(key, value, step)

  def close(self) -> None:
    if self._enabled:
      self._jsonl.close()
      self._writer.close()
