"""uvicorn's h11 protocol with the connection guards it lacks (issue 33).

uvicorn 0.55 arms no timer while a request's head is read, none on a new connection that
never sends, and has no cap on connections that keeps the process below its file limit
(`limit_concurrency` is checked only once a request is parsed and counts slowloris sockets
against good requests, which then get 503). At `ulimit -n 1024`, 1,100 connections sending
one header line per 10 s left no good request answered. `GuardedH11Protocol` adds:

- a header deadline: a request's head must arrive within `header_timeout_s` of the
  connection opening, or of the first byte of the next request on a kept-alive
  connection; past it the connection gets 408 ``header_timeout`` (if it sent anything)
  and is closed. A connection that never sends is closed at the same deadline, which is
  the idle timeout of a new connection (uvicorn's keep-alive timer covers the time between
  requests);
- a connection cap below the file limit (`default_max_connections`): a connection past it
  closes the one that has waited longest for a request head, so slowloris sockets make room
  for clients that send theirs at once; only when every connection is inside a request
  does the newcomer get 503 ``too_many_connections``. Staying below the limit matters:
  after EMFILE the event loop stops accepting for a while, good clients included;
- h11's protocol errors answered as the service's JSON (400 ``malformed_request``), not
  text/plain;
- a lingering close: a connection answered and closed while its client may still be
  sending (an upload cut by a guard, a refusal, a malformed head) half-closes, then reads
  and drops what still comes until the client closes its side, is quiet for
  `LINGER_QUIET_S`, or `LINGER_MAX_S` pass, as nginx and Apache do. Closing at once with
  bytes unread, or arriving after, makes the kernel answer with a reset, and a reset can
  reach the client before it has read the answer, which it then never sees (a 408 was lost
  that way in CI).

It overrides uvicorn internals (`connection_made`, `connection_lost`, `data_received`,
`handle_events`, `on_response_complete`, `send_400_response`; reads `conn`, `connections`,
`transport`; hands uvicorn a transport whose `close()` lingers, relying on uvicorn to close
through it), so uvicorn is pinned below 0.56 and `test_uvicorn_hooks_exist` fails on an
upgrade that moves them. The exit, if uvicorn changes too much, is a reverse proxy in
front (docs/decisions.md, "Hostile connections").
"""

from __future__ import annotations

import heapq
import http
import json
import logging
import resource
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from landmark_jax.serve.security import COMMON_HEADERS, JSON_POLICY

logger = logging.getLogger(__name__)

# File descriptors kept for everything but client connections: the listening socket, JAX,
# logs, the index's files, the decode and verify threads' files.
RESERVED_FDS = 128
MAX_CONNECTIONS = 1000
# Evictions and refusals are logged at most this often: an attack must not flood the log.
_LOG_EVERY_S = 10.0
# A lingering close ends when the client has been quiet this long, or at the latest after
# LINGER_MAX_S (nginx's lingering_timeout and lingering_time are 5 s and 30 s; ours are
# shorter because a lingering connection holds a descriptor, though the cap evicts those
# first).
LINGER_QUIET_S = 2.0
LINGER_MAX_S = 10.0


def default_max_connections() -> int:
  """1000, or fewer when the process may open fewer files (RLIMIT_NOFILE − 128)."""
  soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
  if soft == resource.RLIM_INFINITY:
    return MAX_CONNECTIONS
  return max(1, min(MAX_CONNECTIONS, soft - RESERVED_FDS))


def error_bytes(status: int, code: str, message: str) -> bytes:
  """A whole HTTP/1.1 response in the service's JSON error shape (`errors`), closing."""
  body = json.dumps({"error": code, "message": message, "status": status}).encode()
  head = (
    f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"
    "content-type: application/json\r\n"
    f"content-length: {len(body)}\r\n"
    "connection: close\r\n"
    + "".join(f"{name.decode()}: {value.decode()}\r\n" for name, value in COMMON_HEADERS)
    + f"content-security-policy: {JSON_POLICY}\r\n\r\n"
  )
  return head.encode("ascii") + body


class _Tally:
  """Counts connections closed by a guard, logged as one line every `_LOG_EVERY_S`."""

  def __init__(self):
    self.counts: dict[str, int] = {}
    self.logged_at = 0.0

  def add(self, what: str) -> None:
    self.counts[what] = self.counts.get(what, 0) + 1
    now = time.monotonic()
    if now - self.logged_at >= _LOG_EVERY_S:
      logger.warning(
        "connections closed by the guards since the last report: %s",
        ", ".join(f"{n} {what}" for what, n in sorted(self.counts.items())),
      )
      self.counts, self.logged_at = {}, now


class _LingeringTransport:
  """The connection's transport as uvicorn sees it: `close()` is the protocol's
  `close_gracefully`, and a lingering connection reads as closing, so uvicorn arms no
  keep-alive timer and starts no next request on it."""

  def __init__(self, transport, protocol: GuardedH11Protocol):
    self._transport = transport
    self._protocol = protocol

  def close(self) -> None:
    self._protocol.close_gracefully()

  def is_closing(self) -> bool:
    return self._transport.is_closing() or self._protocol.lingering

  def __getattr__(self, name):
    return getattr(self._transport, name)


class GuardedH11Protocol(H11Protocol):
  """`H11Protocol` with a header deadline, a connection cap and JSON protocol errors.

  `configured(...)` makes the class uvicorn is given (`uvicorn.Config(http=...)`): uvicorn
  builds one instance per connection with its own arguments, so the limits are class
  attributes."""

  header_timeout_s: float = 10.0
  max_connections: int = MAX_CONNECTIONS
  tally: _Tally = _Tally()

  @classmethod
  def configured(cls, header_timeout_s: float, max_connections: int) -> type[GuardedH11Protocol]:
    return type(
      cls.__name__,
      (cls,),
      {
        "header_timeout_s": header_timeout_s,
        "max_connections": max_connections,
        "tally": _Tally(),  # one per server
      },
    )

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self._header_timer = None
    self._head_bytes = 0  # bytes of the request head being read
    # When this connection began waiting for a request head (monotonic); None while a
    # request is being answered. The cap closes the connection that has waited longest.
    self.waiting_since: float | None = None
    self._raw_transport = None
    self._linger_timer = None
    self._linger_ends = 0.0  # monotonic: LINGER_MAX_S after the lingering began
    self._last_heard = 0.0  # monotonic: the last bytes read while lingering

  @property
  def lingering(self) -> bool:
    return self._linger_timer is not None

  # Connection life.

  def connection_made(self, transport) -> None:
    self._raw_transport = transport
    super().connection_made(_LingeringTransport(transport, self))
    self._await_head()
    self._enforce_cap()

  def connection_lost(self, exc) -> None:
    self._cancel_header_timer()
    self._cancel_linger_timer()
    self.waiting_since = None
    super().connection_lost(exc)

  def data_received(self, data: bytes) -> None:
    if self.lingering:  # the answer is sent: what the client still sends is dropped
      self._last_heard = time.monotonic()
      return
    if self._header_timer is None and self.conn.their_state is h11.IDLE:
      self._await_head()  # the first bytes of the next request on a kept-alive connection
    self._head_bytes += len(data)
    super().data_received(data)

  def handle_events(self) -> None:
    super().handle_events()
    if self.waiting_since is not None and self.conn.their_state is not h11.IDLE:
      # A request head was parsed (or the connection failed): the head's deadline is met,
      # and the whole request has the app's own (`limits.RequestDeadline`).
      self._cancel_header_timer()
      self.waiting_since = None

  def on_response_complete(self) -> None:
    if not self.lingering:
      self.waiting_since = time.monotonic()  # kept alive: waiting again (before a pipelined
      self._head_bytes = 0  # request parsed by the call below)
    super().on_response_complete()

  # Closing.

  def close_gracefully(self) -> None:
    """uvicorn's close: lingers if the answer went out before the request's body was all
    read, else closes. A second close while lingering (the server shutting down) closes."""
    if self.conn.their_state is h11.SEND_BODY and not self.lingering:
      self._linger()
    else:
      self._close_now()

  def _close_now(self) -> None:
    self._cancel_linger_timer()
    self._raw_transport.close()

  def _linger(self) -> None:
    transport = self._raw_transport
    if transport.is_closing() or not transport.can_write_eof():
      transport.close()
      return
    self._cancel_header_timer()
    self.waiting_since = 0.0  # the cap evicts lingering connections first
    now = time.monotonic()
    self._linger_ends, self._last_heard = now + LINGER_MAX_S, now
    transport.write_eof()  # FIN once the answer is flushed
    transport.resume_reading()  # uvicorn may have paused reads for a full body buffer
    self._linger_timer = self.loop.call_later(LINGER_QUIET_S, self._linger_check)

  def _linger_check(self) -> None:
    end = min(self._last_heard + LINGER_QUIET_S, self._linger_ends)
    now = time.monotonic()
    if now >= end:
      self._close_now()
    else:
      self._linger_timer = self.loop.call_later(end - now, self._linger_check)

  def _cancel_linger_timer(self) -> None:
    if self._linger_timer is not None:
      self._linger_timer.cancel()
      self._linger_timer = None

  # The guards.

  def _await_head(self) -> None:
    self._cancel_header_timer()
    self.waiting_since = time.monotonic()
    self._head_bytes = 0
    self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

  def _cancel_header_timer(self) -> None:
    if self._header_timer is not None:
      self._header_timer.cancel()
      self._header_timer = None

  def _header_timeout(self) -> None:
    self._header_timer = None
    if self.transport.is_closing():
      return
    if self._head_bytes:
      self.tally.add("header_timeout")
      self._close_with(
        408,
        "header_timeout",
        f"the request's head did not arrive within {self.header_timeout_s:g} s",
      )
    else:  # never sent a byte: an idle connection, closed without a word
      self.tally.add("idle")
      self.transport.close()

  def _enforce_cap(self) -> None:
    # Lingering connections still hold their descriptors: they count, and go first.
    open_now = [c for c in self.connections if not c._raw_transport.is_closing()]
    excess = len(open_now) - self.max_connections
    if excess <= 0:
      return
    waiting = [
      c for c in open_now if c is not self and getattr(c, "waiting_since", None) is not None
    ]
    for victim in heapq.nsmallest(excess, waiting, key=lambda c: c.waiting_since):
      victim._evict()
    if len(waiting) < excess:  # every other connection is inside a request
      self.tally.add("refused (too_many_connections)")
      self._close_with(
        503,
        "too_many_connections",
        f"{len(open_now) - 1} connections are open, the most this service takes "
        f"({self.max_connections}); retry shortly",
      )

  def _evict(self) -> None:
    if self.lingering:  # answered already
      self._close_now()
      return
    self.tally.add("evicted (waited longest for a request)")
    if self._head_bytes:
      self._close_with(
        503,
        "too_many_connections",
        "closed to make room: this connection's request head "
        f"was the slowest of {self.max_connections} connections",
      )
    else:
      self.transport.close()

  def _close_with(self, status: int, code: str, message: str) -> None:
    """Answers and closes a connection whose client may be sending still (a head cut
    short, a refusal on arrival, a malformed head): so a lingering close."""
    self._cancel_header_timer()
    self.waiting_since = None
    self._raw_transport.write(error_bytes(status, code, message))
    self._linger()

  def send_400_response(self, msg: str) -> None:
    """h11 could not parse the request (malformed, or a head over 16 KiB)."""
    self._close_with(400, "malformed_request", f"malformed HTTP request: {msg}")
