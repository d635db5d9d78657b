"""Timing and reporting helpers shared by the benchmarks."""

from __future__ import annotations

import json
import pathlib
import platform
import statistics
import time
from typing import Any, Callable, Sequence

import jax


def median_seconds(run: Callable[[], Any], *, warmup: int = 1, repeats: int = 5) -> float:
  """Median wall time of `run()`; the result is blocked on, so device work is included.

  The warm-up calls absorb compilation and allocator growth, which are not what is measured.
  """
  for _ in range(warmup):
    jax.block_until_ready(run())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(run())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
  """(fn(), its wall time in seconds): one measurement, for work that is not repeated."""
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def compiled_flops(compiled) -> float | None:
  """FLOPs of one run of a compiled program, as XLA's cost analysis counts them (None where
  the backend does not count); given a `Lowered` program, of its unoptimised form."""
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older JAX: one dict per program
    analysis = analysis[0] if analysis else None
  flops = (analysis or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


def machine_description() -> str:
  device = jax.devices()[0]
  return (
    f"{platform.processor() or platform.machine()}, {jax.device_count()}× "
    f"{device.device_kind} ({device.platform}), JAX {jax.__version__}"
  )


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
  """A Markdown table, so that the output pastes straight into docs/benchmarks.md."""

  def cell(value):
    if value is None:  # not measured, or not defined (an MFU without a known peak)
      return "—"
    return f"{value:,.2f}" if isinstance(value, float) else str(value)

  lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
  lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
  return "\n".join(lines)


def write_json(path: str, payload: Any) -> None:
  with open(path, "w") as f:
    json.dump(payload, f, indent=2)


def directory_bytes(path: pathlib.Path) -> int:
  """Total size of the files under `path` (what an index costs on disk)."""
  return sum(p.stat().st_size for p in pathlib.Path(path).rglob("*") if p.is_file())
