"""Dynamic batching: concurrent requests share one device call.

Requests put their item on a queue and await a future. One background task takes every
waiting item (up to `max_batch`), gathers more until `max_batch` items or `max_wait_s` have
passed, runs
the batch in a worker thread (the event loop keeps accepting requests meanwhile) and hands
each request its own result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any, Callable, Sequence


class Batcher:
  def __init__(
    self,
    run_batch: Callable[[Sequence[Any]], Sequence[Any]],
    max_batch: int = 16,
    max_wait_s: float = 0.005,
  ):
    self._run_batch = run_batch
    self.max_batch = max_batch
    self.max_wait_s = max_wait_s
    self._queue: asyncio.Queue | None = None
    self._task: asyncio.Task | None = None
    # One thread: device calls are serial anyway, and it keeps them off the event loop.
    self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="batcher")
    self.batches = 0
    self.items = 0

  async def start(self) -> None:
    self._queue = asyncio.Queue()
    self._task = asyncio.create_task(self._loop())

  async def stop(self) -> None:
    if self._task:
      self._task.cancel()
      try:
        await self._task
      except asyncio.CancelledError:
        pass
    self._executor.shutdown(wait=False, cancel_futures=True)

  async def submit(self, item: Any) -> tuple[Any, int]:
    """The item's result and the size of the batch it ran in."""
    future = asyncio.get_running_loop().create_future()
    await self._queue.put((item, future))
    return await future

  @property
  def mean_batch_size(self) -> float:
    return self.items / self.batches if self.batches else 0.0

  async def _loop(self) -> None:
    loop = asyncio.get_running_loop()
    while True:
      batch = [await self._queue.get()]
      # What already waits joins at once: awaiting it item by item costs an event-loop turn
      # each, shared with the answers of the batch before, and the deadline below passed
      # with photos still queued (batches of 6.2 of 8 on average with 16 clients).
      while len(batch) < self.max_batch and not self._queue.empty():
        batch.append(self._queue.get_nowait())
      deadline = time.monotonic() + self.max_wait_s
      while len(batch) < self.max_batch:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
          break
        try:
          # Not asyncio.wait_for: on Python 3.11 it can swallow `stop()`'s cancellation.
          async with asyncio.timeout(remaining):
            batch.append(await self._queue.get())
        except TimeoutError:
          break
      items = [item for item, _ in batch]
      try:
        results = await loop.run_in_executor(self._executor, self._run_batch, items)
      except Exception as error:  # the batch failed: every request in it gets the error
        for _, future in batch:
          if not future.done():
            future.set_exception(error)
        continue
      self.batches += 1
      self.items += len(batch)
      for (_, future), result in zip(batch, results):
        if not future.done():
          future.set_result((result, len(batch)))
