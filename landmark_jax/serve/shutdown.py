"""SIGTERM: a bounded drain, then exit 0.

On SIGTERM the service refuses new requests (503 ``shutting_down``, connection closed) while
it keeps listening, waits for the requests in flight to be answered, at most
`drain_timeout_s`, and then hands over to uvicorn's own shutdown (listener closed, idle
connections closed, anything still running cancelled after a second). Listening through the
drain, rather than closing the socket at once as uvicorn does, means a client that arrives
meanwhile gets an answer it can act on (retry elsewhere) instead of a connection error.

`uvicorn_config` is the one place uvicorn's settings are made, for the service and for the
tests' servers alike: they run the same guarded protocol (`protocol`).
"""

from __future__ import annotations

import logging
import signal
import time
from typing import TYPE_CHECKING

import uvicorn

from landmark_jax.serve.errors import RequestError, error_response
from landmark_jax.serve.protocol import GuardedH11Protocol, default_max_connections

if TYPE_CHECKING:
  from landmark_jax.serve.config import ServeConfig

logger = logging.getLogger(__name__)

# uvicorn's own wait for connections still open once the drain has ended.
_FINAL_GRACE_S = 1.0


class Drain:
  """Whether the service still takes requests, and how many it is answering."""

  def __init__(self, timeout_s: float):
    self.timeout_s = timeout_s
    self.in_flight = 0  # touched on the event loop only
    self.started: float | None = None  # time.monotonic() when the drain began

  @property
  def draining(self) -> bool:
    return self.started is not None

  def begin(self) -> None:
    if self.started is None:
      self.started = time.monotonic()

  def remaining_s(self) -> float:
    return self.timeout_s - (time.monotonic() - self.started) if self.draining else self.timeout_s

  def finished(self) -> bool:
    return self.draining and (self.in_flight == 0 or self.remaining_s() <= 0)


class DrainGate:
  """ASGI middleware: counts requests in flight, and refuses new ones once draining."""

  def __init__(self, app, drain: Drain):
    self.app = app
    self.drain = drain

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    if self.drain.draining:
      error = RequestError(
        503, "shutting_down", "the service is shutting down; retry on another instance"
      )
      return await error_response(error)(scope, receive, send)
    self.drain.in_flight += 1
    try:
      await self.app(scope, receive, send)
    finally:
      self.drain.in_flight -= 1


class DrainingServer(uvicorn.Server):
  """uvicorn's server, with SIGTERM starting a `Drain` instead of its immediate shutdown.

  uvicorn polls its exit flag every 0.1 s (`on_tick`); the drain is polled there too, so
  its signal handling, its shutdown sequence and its logs stay uvicorn's own.
  """

  def __init__(self, config: uvicorn.Config, drain: Drain):
    super().__init__(config)
    self.drain = drain
    self._drain_requested = False
    self._announced = False

  def begin_drain(self) -> None:
    """What SIGTERM does; callable from any thread (the tests' servers run in one). New
    requests are refused from here on; the log line follows at the next tick."""
    self.drain.begin()
    self._drain_requested = True

  def handle_exit(self, sig, frame) -> None:
    if sig == signal.SIGTERM:
      # Not recorded among uvicorn's captured signals: it raises those again once it has
      # stopped, and SIGTERM's default action would end a cleanly drained process with
      # status -15 instead of 0.
      self.begin_drain()
      return
    super().handle_exit(sig, frame)  # SIGINT: uvicorn's immediate shutdown (twice: forced)

  async def on_tick(self, counter: int) -> bool:
    if self._drain_requested and not self._announced:
      self._announced = True
      self.drain.begin()
      logger.warning(
        "shutting down: %d request(s) in flight, new ones get 503; waiting at most %g s",
        self.drain.in_flight,
        self.drain.timeout_s,
      )
    if self.drain.finished() and not self.should_exit:
      if self.drain.in_flight:
        logger.warning(
          "drain timeout of %g s: %d request(s) still in flight are cut",
          self.drain.timeout_s,
          self.drain.in_flight,
        )
      else:
        logger.warning("drained in %.1f s", self.drain.timeout_s - self.drain.remaining_s())
      self.config.timeout_graceful_shutdown = _FINAL_GRACE_S
      self.should_exit = True
    return await super().on_tick(counter)


def uvicorn_config(
  app, host: str, port: int, serve_config: ServeConfig | None = None, **overrides
) -> uvicorn.Config:
  """uvicorn's settings for the service (`overrides`: any other `uvicorn.Config` argument).

  The protocol is always our guarded h11 (`protocol`), never uvicorn's "auto" choice, which
  would switch to httptools, without these guards, the day it is installed. uvicorn's
  `limit_concurrency` stays off: the protocol's connection cap replaces it. `serve_config`
  defaults to the app's service's (`create_app`), else to `ServeConfig()` (an app with no
  service, as in some tests).
  """
  if serve_config is None:
    service = getattr(getattr(app, "state", None), "service", None)
    if service is not None:
      serve_config = service.config
    else:
      from landmark_jax.serve.config import ServeConfig

      serve_config = ServeConfig()
  protocol = GuardedH11Protocol.configured(
    header_timeout_s=serve_config.header_timeout_s,
    max_connections=serve_config.max_connections or default_max_connections(),
  )
  settings = {
    "http": protocol,
    "ws": "none",  # the service has no WebSocket route: an upgrade is not even attempted
    "timeout_keep_alive": serve_config.keep_alive_s,
    "limit_concurrency": None,
    "h11_max_incomplete_event_size": 16 * 2**10,  # a request head; h11's default, named
    # Bounds SIGINT's shutdown as SIGTERM's drain is bounded.
    "timeout_graceful_shutdown": serve_config.drain_timeout_s,
  }
  return uvicorn.Config(app, host=host, port=port, **{**settings, **overrides})


def serve_until_drained(app, host: str, port: int) -> bool:
  """`uvicorn.run` for the app of `create_app`, with SIGTERM draining it; whether it
  started (False: uvicorn logged why not, e.g. the port was taken)."""
  service = app.state.service
  config = uvicorn_config(app, host, port, service.config, log_level="info")
  server = DrainingServer(config, service.drain)
  try:
    server.run()
  except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it handled: stopping was asked for
    pass
  return server.started
