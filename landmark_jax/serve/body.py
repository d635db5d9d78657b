"""Request bodies read against a byte limit and a read timeout (an ASGI middleware).

A declared ``Content-Length`` over the limit is answered 413 before any of the body is
read; a chunked body is cut when the bytes received pass the limit; a client that stops
sending mid-body gets a 408 after `read_timeout_s`. So an upload costs at most the limit in
memory, and a stalled one does not hold its connection forever.

Every upload together is bounded too (`BodyBudget`): 100 clients each sending 20 MiB and
then one byte every 20 s held 2.4 GB (issue 33). A declared length is reserved before any
byte is read, a chunked body as it arrives, and the reservation is released when the
request is answered (the body is held through its decode). When a reservation does not
fit, the uploads that have stalled are cut first (408 ``upload_stalled``), else the
newcomer waits for room, at most `WAIT_S`, and then gets 503 ``server_busy`` with
Retry-After: tricklers cannot keep good requests out, and honest uploads are cut only while
the budget is full.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Callable

from landmark_jax.serve.errors import RequestError, error_response
from landmark_jax.serve.memory import malloc_trim

# An upload has stalled when it has not sent PROGRESS_BYTES within STALL_S: a byte a second
# keeps a connection alive but is no upload (16 KiB/s is 128 kbit/s; slower, a 1 MB photo
# would not arrive within the request deadline of 60 s anyway).
PROGRESS_BYTES = 16 * 2**10
STALL_S = 1.0
# How long a body waits for room in the budget before its request is refused (503).
WAIT_S = 2.0
# Freed upload memory is handed back to the OS once this much was released since the last
# trim (or a quarter of the budget, when that is less).
TRIM_STEP_BYTES = 64 * 2**20


class Upload:
  """One request body being read: its reservation, and when it last made progress."""

  def __init__(self, now: float):
    self.reserved = 0  # bytes counted in the budget for it
    self.progress_at = now  # when it last sent PROGRESS_BYTES (or began)
    self.since_progress = 0  # bytes since then
    self.complete = False  # its whole body arrived
    self.task: asyncio.Task | None = None  # set while it waits for bytes, else None
    self.cut = False

  def received(self, n: int, complete: bool, now: float) -> None:
    self.since_progress += n
    self.complete = complete
    if self.since_progress >= PROGRESS_BYTES or complete:
      self.progress_at, self.since_progress = now, 0


class _Waiter:
  def __init__(self, upload: Upload, n: int, future: asyncio.Future):
    self.upload = upload
    self.n = n
    self.future = future
    self.granted = False


class BodyBudget:
  """The bytes of request bodies held at once, every connection together (`limit`).

  A reservation that does not fit waits, at most `WAIT_S`, for room: uploads that finish,
  or stalled ones cut for it. Waiters get room smallest first: a photo waits behind no
  20 MiB trickler, and a small reservation holds little and ends soon. Touched on the
  event loop only. `on_cut(reason)` counts each upload cut (``stalled``) or refused
  (``busy``)."""

  def __init__(self, limit: int, on_cut: Callable[[str], None] = lambda reason: None):
    self.limit = limit
    self.on_cut = on_cut
    self.in_flight = 0
    self.peak = 0
    self.uploads: set[Upload] = set()
    self._waiters: list[tuple[int, int, _Waiter]] = []  # a heap: smallest, then first
    self._arrivals = itertools.count()
    self._timer: asyncio.TimerHandle | None = None
    self._trim = malloc_trim()
    self._trim_step = min(TRIM_STEP_BYTES, max(1, limit // 4))
    self._high = 0  # the most in flight since the last trim
    self._trimming = False

  async def reserve(self, upload: Upload, n: int) -> None:
    """Counts `n` more bytes of `upload`, once there is room; 503 ``server_busy`` when
    there is none within `WAIT_S`."""
    if n <= 0:
      return
    if not self._waiters and self._make_room(n, upload):
      self._take(upload, n)
      return
    waiter = _Waiter(upload, n, asyncio.get_running_loop().create_future())
    heapq.heappush(self._waiters, (n, next(self._arrivals), waiter))
    self._check_later()
    try:
      async with asyncio.timeout(WAIT_S):
        await waiter.future
    except TimeoutError:
      if not waiter.granted:
        self.on_cut("busy")
        raise RequestError(
          503,
          "server_busy",
          f"{self.in_flight:,} bytes of uploads are being received, the most this service "
          f"holds ({self.limit:,}); retry in a second",
          headers={"retry-after": "1"},
        ) from None

  def release(self, upload: Upload) -> None:
    """Gives back everything `upload` holds (its request was answered)."""
    self._drop(upload)
    self._admit()
    if self._high - self.in_flight >= self._trim_step and not self._trimming:
      self._high = self.in_flight
      self._trimming = True
      asyncio.get_running_loop().run_in_executor(None, self._trim).add_done_callback(self._trimmed)

  def _trimmed(self, future) -> None:
    self._trimming = False

  def _take(self, upload: Upload, n: int) -> None:
    if not upload.reserved:  # its time to send begins now, not when it began to wait
      upload.progress_at = time.monotonic()
    self.uploads.add(upload)
    upload.reserved += n
    self.in_flight += n
    self.peak = max(self.peak, self.in_flight)
    self._high = max(self._high, self.in_flight)

  def _drop(self, upload: Upload) -> None:
    self.in_flight -= upload.reserved
    upload.reserved = 0
    self.uploads.discard(upload)

  def _admit(self) -> None:
    """Room to the waiters, smallest first, while there is room (or stalled uploads to cut)."""
    while self._waiters:
      n, _, waiter = self._waiters[0]
      if waiter.future.done():  # timed out or cancelled
        heapq.heappop(self._waiters)
        continue
      if not self._make_room(n, waiter.upload):
        return
      heapq.heappop(self._waiters)
      self._take(waiter.upload, n)
      waiter.granted = True
      waiter.future.set_result(None)

  def _check_later(self) -> None:
    # Uploads stall with time alone, no event tells: while someone waits, look again.
    if self._timer is None:
      self._timer = asyncio.get_running_loop().call_later(STALL_S / 4, self._check)

  def _check(self) -> None:
    self._timer = None
    self._admit()
    if self._waiters:
      self._check_later()

  def _make_room(self, needed: int, newcomer: Upload) -> bool:
    """Whether `needed` fits, once the uploads that have stalled longest (each waiting for
    bytes) are cut, if cutting them makes it fit. Their reservations are released at
    once: their buffers go as their tasks unwind."""
    if self.in_flight + needed <= self.limit:
      return True
    now = time.monotonic()
    stalled = sorted(
      (
        u
        for u in self.uploads
        if u is not newcomer and u.task is not None and now - u.progress_at >= STALL_S
      ),
      key=lambda u: u.progress_at,
    )
    if self.in_flight - sum(u.reserved for u in stalled) + needed > self.limit:
      return False
    for upload in stalled:
      if self.in_flight + needed <= self.limit:
        break
      upload.cut = True
      self._drop(upload)
      upload.task.cancel()
      self.on_cut("stalled")
    return True


class BodyLimit:
  """`limit_for(path)`: the largest body accepted on that path, in bytes."""

  def __init__(
    self,
    app,
    limit_for: Callable[[str], int],
    read_timeout_s: float,
    budget: BodyBudget | None = None,
  ):
    self.app = app
    self.limit_for = limit_for
    self.read_timeout_s = read_timeout_s
    self.budget = budget or BodyBudget(2**62)  # none given: only the per-request limit

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    limit = self.limit_for(scope["path"])
    upload = Upload(time.monotonic())
    try:
      declared = _declared_length(scope, limit)
      await self.budget.reserve(upload, declared or 0)
    except RequestError as error:
      return await error_response(error)(scope, receive, send)
    try:
      await self.app(scope, self._limited(receive, limit, upload, declared is None), send)
    finally:
      self.budget.release(upload)

  def _limited(self, receive, limit: int, upload: Upload, reserve_as_received: bool):
    received, complete = 0, False

    async def limited_receive():
      nonlocal received, complete
      if complete:  # after the body only a disconnect can come: no timeout on waiting for it
        return await receive()
      upload.task = asyncio.current_task()
      try:
        # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives as
        # `receive()` completes, and the request's deadline (`limits.RequestDeadline`),
        # which cancels once, was then lost while a client kept sending.
        async with asyncio.timeout(self.read_timeout_s):
          message = await receive()
      except TimeoutError:
        raise RequestError(
          408,
          "body_timeout",
          f"upload stalled: no bytes of the request body for {self.read_timeout_s:g} s",
        ) from None
      except asyncio.CancelledError:
        if not upload.cut:
          raise
        upload.task.uncancel()
        raise RequestError(
          408,
          "upload_stalled",
          "upload cut: it sent almost nothing while the service's memory for uploads was "
          "full; send the body without pausing",
        ) from None
      finally:
        upload.task = None
      if message["type"] == "http.request":
        chunk = len(message.get("body", b""))
        received += chunk
        complete = not message.get("more_body", False)
        if received > limit:
          raise RequestError(
            413, "body_too_large", f"request body over the limit of {limit:,} bytes"
          )
        if reserve_as_received:  # chunked: counted as it arrives
          await self.budget.reserve(upload, chunk)
        upload.received(chunk, complete, time.monotonic())
      return message

    return limited_receive


def _declared_length(scope, limit: int) -> int | None:
  """The request's Content-Length (None: none, the body is chunked or absent); 413 over
  `limit`."""
  for name, value in scope["headers"]:
    if name == b"content-length":
      try:
        length = int(value)
      except ValueError:
        raise RequestError(400, "bad_request", "Content-Length is not a number") from None
      if length > limit:
        raise RequestError(
          413,
          "body_too_large",
          f"request body of {length:,} bytes is over the limit of {limit:,} bytes",
        )
      return length
  return None
