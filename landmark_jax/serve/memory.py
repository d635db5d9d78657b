"""Memory the service holds: handing freed memory back, and the bound it stays within.

glibc keeps freed large buffers in its arenas, so after a burst of uploads or decodes the
process would stay at its peak (measured: 1.98 GB held after 100 slow uploads had left,
1.8 GB after six 49 Mpx PNGs, 0.2 GB after a trim). `malloc_trim` hands them back; it
takes under 2 ms, and is run on a worker thread when a burst has ended.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Callable

# What one open connection may hold beyond the bytes counted in flight: h11's buffer of an
# incomplete request head (16 KiB), uvicorn's body buffer before it stops reading (64 KiB)
# and the objects of the connection and its request.
CONNECTION_BYTES = 128 * 2**10


def malloc_trim() -> Callable[[], None]:
  """A function handing free heap memory back to the OS (a no-op off glibc)."""
  try:
    trim = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
  except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
    return lambda: None
  return lambda: trim(0)


def memory_bound(
  max_bytes_in_flight: int, decode_workers: int, max_decode_bytes: int, max_connections: int
) -> int:
  """Bytes the service may hold above its idle RSS, whatever its clients send.

  Request bodies count twice (Starlette joins a body's chunks into one copy while the
  chunks are still alive); every decode worker and the one verification decode may each
  take `max_decode_bytes`; each open connection its buffers (`CONNECTION_BYTES`).
  """
  return (
    2 * max_bytes_in_flight
    + (decode_workers + 1) * max_decode_bytes
    + max_connections * CONNECTION_BYTES
  )
