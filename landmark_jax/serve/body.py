"""Request bodies read against a byte limit and a read timeout (an ASGI middleware).

A declared ``Content-Length`` over the limit is answered 413 before any of the body is
read; a chunked body is cut when the bytes received pass the limit; a client that stops
sending mid-body gets a 408 after `read_timeout_s`. So an upload costs at most the limit in
memory, and a stalled one does not hold its connection forever.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from landmark_jax.serve.errors import RequestError, error_response


class BodyLimit:
  """`limit_for(path)`: the largest body accepted on that path, in bytes."""

  def __init__(self, app, limit_for: Callable[[str], int], read_timeout_s: float):
    self.app = app
    self.limit_for = limit_for
    self.read_timeout_s = read_timeout_s

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    limit = self.limit_for(scope["path"])
    try:
      _check_declared_length(scope, limit)
    except RequestError as error:
      return await error_response(error)(scope, receive, send)
    await self.app(scope, self._limited(receive, limit), send)

  def _limited(self, receive, limit: int):
    received, complete = 0, False

    async def limited_receive():
      nonlocal received, complete
      if complete:  # after the body only a disconnect can come: no timeout on waiting for it
        return await receive()
      try:
        message = await asyncio.wait_for(receive(), self.read_timeout_s)
      except asyncio.TimeoutError:
        raise RequestError(
          408,
          "body_timeout",
          f"upload stalled: no bytes of the request body for {self.read_timeout_s:g} s",
        ) from None
      if message["type"] == "http.request":
        received += len(message.get("body", b""))
        complete = not message.get("more_body", False)
        if received > limit:
          raise RequestError(
            413, "body_too_large", f"request body over the limit of {limit:,} bytes"
          )
      return message

    return limited_receive


def _check_declared_length(scope, limit: int) -> None:
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
