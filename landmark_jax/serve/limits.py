"""A whole request's deadline (an ASGI middleware).

`body.BodyLimit`'s read timeout bounds each gap between a body's bytes, not the upload: a
client sending one byte every 20 s held its connection and its buffers for as long as it
liked (issue 33). `RequestDeadline` bounds everything after the request's head (body,
queue, decode, answer) by `timeout_s`. The head itself is bounded by the protocol's header
deadline (`protocol`). A decode already running on its thread is not interrupted; its
cost is bounded by the decode budget instead.
"""

from __future__ import annotations

import asyncio

from landmark_jax.serve.errors import RequestError, error_response


class RequestTimedOut(Exception):
  """Raised to the server when a request ran out of time after its answer had begun: the
  connection is then closed, the only way left to end the answer."""


class RequestDeadline:
  def __init__(self, app, timeout_s: float):
    self.app = app
    self.timeout_s = timeout_s

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    started = False

    async def send_started(message):
      nonlocal started
      if message["type"] == "http.response.start":
        started = True
      await send(message)

    try:
      async with asyncio.timeout(self.timeout_s) as deadline:
        await self.app(scope, receive, send_started)
    except TimeoutError:
      if not deadline.expired():  # the app's own TimeoutError, not this deadline
        raise
      if started:
        raise RequestTimedOut(f"answer cut at the {self.timeout_s:g} s deadline") from None
      error = RequestError(
        408,
        "request_timeout",
        f"the request was not done within {self.timeout_s:g} s (upload and answer together)",
      )
      await error_response(error)(scope, receive, send)
