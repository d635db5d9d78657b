"""Time and peak memory of one step of a benchmark, in this process and its workers.

Peak resident memory is the kernel's high-water mark (``VmHWM``), reset before each step by
writing ``5`` to ``/proc/self/clear_refs`` (Linux ≥ 4.0), so each step's peak is its own.
Where that file cannot be written, the peak is the process's lifetime peak
(``ru_maxrss``), and the row says so. Worker processes' peak is the largest child's own
``VmHWM``, polled from ``/proc`` while the step runs (not ``RUSAGE_CHILDREN``: a spawned
worker is forked before it execs, and that fork's RSS is the parent's).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import resource
import threading
import time

MB = 2**20
_STATUS = pathlib.Path("/proc/self/status")
_CLEAR_REFS = pathlib.Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
  try:
    for line in _STATUS.read_text().splitlines():
      if line.startswith(field + ":"):
        return int(line.split()[1])
  except OSError:
    pass
  return None


def children_peak_mb() -> float:
  """The largest `VmHWM` among this process's child processes now (0: none)."""
  me, peak = str(os.getpid()), 0
  for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
    try:
      if stat.read_text().rsplit(")", 1)[1].split()[1] != me:  # the parent pid
        continue
      for line in (stat.parent / "status").read_text().splitlines():
        if line.startswith("VmHWM:"):
          peak = max(peak, int(line.split()[1]))
    except (OSError, IndexError, ValueError):  # gone meanwhile
      continue
  return peak / 1024


def reset_peak() -> bool:
  """Resets this process's peak resident memory to its current one; False if it cannot."""
  try:
    _CLEAR_REFS.write_text("5")
    return True
  except OSError:
    return False


def rss_mb() -> float:
  """This process's resident memory now."""
  kb = _status_kb("VmRSS")
  return (kb or 0) / 1024


def peak_rss_mb() -> float:
  kb = _status_kb("VmHWM")
  if kb is None:  # no /proc: the lifetime peak (kilobytes on Linux)
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
  return kb / 1024


@dataclasses.dataclass
class Measurement:
  """Filled in when the `measure()` block ends."""

  seconds: float = 0.0  # wall time
  cpu_seconds: float = 0.0  # this process's and its finished workers' CPU time
  rss_before_mb: float = 0.0
  peak_rss_mb: float = 0.0  # this process's peak during the step
  workers_peak_rss_mb: float = 0.0  # the largest worker process's peak (0: none)
  peak_is_step_own: bool = True  # False: the lifetime peak (clear_refs not writable)

  def as_row(self) -> dict:
    return {
      "seconds": self.seconds,
      "cpu seconds": self.cpu_seconds,
      "rss before MB": self.rss_before_mb,
      "peak RSS MB": self.peak_rss_mb,
      "added MB": max(0.0, self.peak_rss_mb - self.rss_before_mb),
      "workers peak MB": self.workers_peak_rss_mb,
      "peak is the step's own": self.peak_is_step_own,
    }


class measure:
  """``with measure() as m: …`` → `m` holds the block's time and peak memory."""

  def __enter__(self) -> Measurement:
    self.result = Measurement(peak_is_step_own=reset_peak())
    self.result.rss_before_mb = rss_mb()
    self._children = resource.getrusage(resource.RUSAGE_CHILDREN)
    self._stop = threading.Event()
    self._poller = threading.Thread(target=self._poll_children, daemon=True)
    self._poller.start()
    self._cpu = time.process_time()
    self._wall = time.perf_counter()
    return self.result

  def _poll_children(self) -> None:
    while not self._stop.wait(0.25):
      self.result.workers_peak_rss_mb = max(self.result.workers_peak_rss_mb, children_peak_mb())

  def __exit__(self, *exc) -> None:
    result = self.result
    result.seconds = time.perf_counter() - self._wall
    self._stop.set()
    self._poller.join()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    result.cpu_seconds = (
      time.process_time()
      - self._cpu
      + children.ru_utime
      + children.ru_stime
      - self._children.ru_utime
      - self._children.ru_stime
    )
    result.peak_rss_mb = peak_rss_mb()
