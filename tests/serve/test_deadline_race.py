"""A whole request's deadline against a body that keeps coming (the race behind a CI
failure after issue 34): Python 3.11's `asyncio.wait_for` swallows a cancellation that
arrives as the awaitable it waits on completes, so the body's read timeout, built on it,
could eat the deadline's cancellation, and the request then ran on past its deadline for
as long as the client kept sending. Without a socket: the race is in the middlewares.
"""

import asyncio

from landmark_jax.serve.body import BodyLimit
from landmark_jax.serve.limits import RequestDeadline

SCOPE = {"type": "http", "method": "POST", "path": "/upload", "headers": []}
BODY_ENDS_AFTER_S = 1.0  # the client stops here: a deadline missed is then a 200


async def _read_the_body_then_answer(scope, receive, send):
  while (await receive()).get("more_body"):
    pass
  await send({"type": "http.response.start", "status": 200, "headers": []})
  await send({"type": "http.response.body", "body": b""})


async def _one_upload(deadline_s: float) -> int:
  loop = asyncio.get_running_loop()
  ends = loop.time() + BODY_ENDS_AFTER_S

  async def receive():
    await asyncio.sleep(0)  # a chunk ready at every turn of the loop, as from a fast client
    return {"type": "http.request", "body": b"x", "more_body": loop.time() < ends}

  statuses = []

  async def send(message):
    if message["type"] == "http.response.start":
      statuses.append(message["status"])

  body_limit = BodyLimit(_read_the_body_then_answer, lambda path: 2**40, read_timeout_s=30.0)
  await RequestDeadline(body_limit, timeout_s=deadline_s)(SCOPE, receive, send)
  return statuses[0]


def test_the_deadline_ends_a_body_that_keeps_coming():
  # With wait_for, 31 to 39 of these (three runs) ran to the body's end and answered 200.
  statuses = [asyncio.run(_one_upload(deadline_s=0.01)) for _ in range(40)]
  assert statuses == [408] * 40, statuses
