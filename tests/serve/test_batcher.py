"""The batcher: what waits joins one batch, at most `max_batch`, each request gets its own
result, and a failed batch fails only its own requests."""

import asyncio
import threading

from landmark_jax.serve.batcher import Batcher


def run(coroutine):
  return asyncio.run(coroutine)


async def submit_all(batcher: Batcher, items):
  # The loop's task and the requests are scheduled together; every request puts its item
  # before the loop, woken by the first, takes it: they are all waiting when it gathers.
  await batcher.start()
  tasks = [asyncio.create_task(batcher.submit(item)) for item in items]
  return await asyncio.gather(*tasks, return_exceptions=True)


def test_items_already_waiting_join_one_batch_even_without_a_wait():
  seen = []

  def run_batch(items):
    seen.append(list(items))
    return [item * 10 for item in items]

  async def scenario():
    batcher = Batcher(run_batch, max_batch=8, max_wait_s=0.0)
    try:
      return await submit_all(batcher, range(11))
    finally:
      await batcher.stop()

  results = run(scenario())
  # 11 waiting with batches of 8: 8 then 3, in order (a zero wait took 1 at a time before).
  assert seen == [list(range(8)), list(range(8, 11))]
  assert results == [(i * 10, 8) for i in range(8)] + [(i * 10, 3) for i in range(8, 11)]


def test_a_failed_batch_fails_its_own_requests_only():
  def run_batch(items):
    if 0 in items:
      raise RuntimeError("device error")
    return list(items)

  async def scenario():
    batcher = Batcher(run_batch, max_batch=2, max_wait_s=0.0)
    try:
      return await submit_all(batcher, [0, 1, 2, 3])
    finally:
      await batcher.stop()

  first, second, third, fourth = run(scenario())
  assert isinstance(first, RuntimeError) and isinstance(second, RuntimeError)
  assert third == (2, 2) and fourth == (3, 2)


def test_stop_ends_the_loop_while_items_keep_arriving():
  # stop() cancels the loop's task once; on Python 3.11 an asyncio.wait_for that gathers
  # the batch swallowed that cancellation when an item came at the same turn, and stop()
  # then waited for ever. A thread bounds the wait, since an asyncio timeout could be
  # swallowed the same way.

  async def one_trial():
    batcher = Batcher(lambda items: list(items), max_batch=10**9, max_wait_s=60.0)
    await batcher.start()

    async def keep_submitting():
      while True:
        asyncio.get_running_loop().create_task(batcher.submit(0))
        await asyncio.sleep(0)

    producer = asyncio.create_task(keep_submitting())
    await asyncio.sleep(0.005)
    await batcher.stop()
    producer.cancel()

  stopped = []

  def trials():
    for _ in range(40):
      run(one_trial())
      stopped.append(True)

  worker = threading.Thread(target=trials, daemon=True)
  worker.start()
  worker.join(timeout=60)
  assert len(stopped) == 40, f"stop() did not return in trial {len(stopped) + 1} of 40"
