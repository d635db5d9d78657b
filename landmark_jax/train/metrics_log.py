"""Training metrics: JSON lines and TensorBoard event files, written on process 0 only."""

from __future__ import annotations

import json
import math
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
  bad = {k: metrics[k] for k in ("loss", "grad_norm", "param_norm") if not math.isfinite(metrics[k])}
  if bad:
    raise NonFiniteLossError(
        f"non-finite {', '.join(f'{k}={v}' for k, v in bad.items())} at step {step}: stopping; "
        "the last checkpoint (before this step) is intact")


class MetricsLog:
  """``workdir/metrics.jsonl`` (one object per logged step) and ``workdir/tensorboard``."""

  def __init__(self, workdir: pathlib.Path):
    self._enabled = jax.process_index() == 0
    if self._enabled:
      from tensorboardX import SummaryWriter
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
