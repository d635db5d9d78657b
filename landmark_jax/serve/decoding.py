"""The decode budget: how many photos decode at once, and giving their memory back.

Decoding is CPU-bound (Pillow releases the GIL), so more decodes at once than cores only
multiply memory: a burst of large uploads queues here instead of each taking ~8 bytes per
pixel at the same time. glibc keeps freed large buffers in its arenas, so after a burst
the process would stay at its peak (measured: 1.8 GB held after six 49 Mpx PNGs, 0.2 GB
after a trim); when the last decode in flight finishes, free memory is handed back to the
OS (`malloc_trim`, under 2 ms, on a decode thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import ctypes.util
import os
from typing import Callable, TypeVar

T = TypeVar("T")


def default_decode_workers() -> int:
  """One decode per core this process may run on, at most 8."""
  return max(
    1,
    min(
      8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    ),
  )


def _malloc_trim() -> Callable[[], None]:
  try:
    trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
  except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
    return lambda: None
  return lambda: trim(0)


class DecodeBudget:
  """Runs decodes on `workers` threads; `run` awaits one."""

  def __init__(self, workers: int):
    self.workers = workers
    self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="decode")
    self._trim = _malloc_trim()
    self._pending = 0  # decodes queued or running; touched on the event loop only
    self.peak_pending = 0

  async def run(self, decode: Callable[[], T]) -> T:
    """`decode()` on a decode thread, after the decodes queued before it."""
    loop = asyncio.get_running_loop()
    self._pending += 1
    self.peak_pending = max(self.peak_pending, self._pending)
    try:
      return await loop.run_in_executor(self._executor, decode)
    finally:
      self._pending -= 1
      if self._pending == 0:
        loop.run_in_executor(self._executor, self._trim)

  def shutdown(self) -> None:
    self._executor.shutdown(wait=False, cancel_futures=True)
