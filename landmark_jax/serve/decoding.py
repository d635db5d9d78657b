"""The decode budget: how many photos decode at once, and giving their memory back.

Decoding is CPU-bound (Pillow releases the GIL), so more decodes at once than cores only
multiply memory: a burst of large uploads queues here instead of each taking ~8 bytes per
pixel at the same time. glibc keeps freed large buffers in its arenas, so after a burst
the process would stay at its peak (measured: 1.8 GB held after six 49 Mpx PNGs, 0.2 GB
after a trim); when the last decode in flight finishes, free memory is handed back to the
OS (`memory.malloc_trim`, on a decode thread).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Callable, TypeVar

from landmark_jax.serve.memory import malloc_trim

T = TypeVar("T")


class DecodeBudget:
  """Runs decodes on `workers` threads; `run` awaits one."""

  def __init__(self, workers: int):
    self.workers = workers
    self._executor = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="decode")
    self._trim = malloc_trim()
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
