"""Fetching a file over HTTP(S) with the standard library: an interrupted download is
continued with a ``Range`` request, the result is checked against its md5, and a bounded
number of attempts is made before an error that names the file.

Files are downloaded into ``<name>.part`` and renamed when complete, so a complete-looking
name is never a half-written file; a ``.part`` left by a killed run is where the next run
continues.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import pathlib
import re
import threading
import time
import urllib.error
import urllib.request

from landmark_jax.errors import DataError

logger = logging.getLogger(__name__)

CHUNK = 1 << 20
USER_AGENT = "landmark-jax-prepare"
TIMEOUT_S = 60.0  # per socket operation: a stalled connection fails and is resumed


class DownloadError(DataError):
  """A file that could not be fetched, or whose bytes stay wrong, after every attempt."""


class DownloadCancelled(Exception):
  """Another download failed or the user pressed Ctrl-C: this one stops, keeping its .part."""


class ByteProgress:
  """One progress bar over the bytes of several concurrent downloads. The total grows as
  each file's size becomes known (its first response), so no HEAD requests are needed.
  `cancel()` makes every download using it stop at its next chunk (threads cannot be
  interrupted from outside)."""

  def __init__(self, bar):
    self._bar = bar
    self._sizes: dict[str, int] = {}
    self._lock = threading.Lock()
    self._cancelled = threading.Event()

  def cancel(self) -> None:
    self._cancelled.set()

  @property
  def cancelled(self) -> bool:
    return self._cancelled.is_set()

  def expect(self, name: str, size: int) -> None:
    with self._lock:
      self._bar.total = (self._bar.total or 0) + size - self._sizes.get(name, 0)
      self._sizes[name] = size
      self._bar.refresh()

  def advance(self, count: int) -> None:
    with self._lock:
      self._bar.update(count)


def md5_of(path: str | os.PathLike) -> str:
  digest = hashlib.md5()
  with open(path, "rb") as f:
    while chunk := f.read(CHUNK):
      digest.update(chunk)
  return digest.hexdigest()


def _request(url: str, offset: int, timeout: float):
  headers = {"User-Agent": USER_AGENT}
  if offset:
    headers["Range"] = f"bytes={offset}-"
  return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def fetch_bytes(url: str, *, timeout: float = TIMEOUT_S) -> bytes:
  """A small file's content (an md5 list)."""
  with _request(url, 0, timeout) as response:
    return response.read()


def _resumed_from(response, offset: int) -> int:
  """Where the body of `response` starts: `offset` for a 206 whose Content-Range says so,
  else 0 (a 200: the server ignored the Range header and sends the whole file)."""
  if response.status != 206:
    return 0
  match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
  if not match or int(match.group(1)) != offset:
    raise DownloadError(
      f"{response.url}: asked for bytes from {offset}, the server sent "
      f"{response.headers.get('Content-Range')!r}"
    )
  return offset


def download(
  url: str, dest: pathlib.Path, progress: ByteProgress | None = None, *, timeout: float = TIMEOUT_S
) -> None:
  """Downloads `url` to `dest` through ``<dest>.part``, continuing a ``.part`` already
  there with a ``Range: bytes=<its size>-`` request.

  Raises:
    OSError, http.client.HTTPException: the connection failed or ended early (what was
      received stays in the ``.part``, for the next attempt to continue).
  """
  part = dest.with_name(dest.name + ".part")
  offset = part.stat().st_size if part.exists() else 0
  try:
    response = _request(url, offset, timeout)
  except urllib.error.HTTPError as error:
    if error.code != 416 or not offset:
      raise
    # Range not satisfiable: the .part is as long as the file or longer, so it is not a
    # prefix of it; start over.
    error.close()
    offset = 0
    response = _request(url, 0, timeout)
  counted = 0  # bytes this call added to the progress bar: taken back if it fails
  try:
    with response:
      start = _resumed_from(response, offset)
      length = response.headers.get("Content-Length")
      size = None if length is None else start + int(length)
      if progress is not None:
        if size is not None:
          progress.expect(dest.name, size)
        progress.advance(start)  # bytes already on disk count as done
        counted = start
      received = start
      with open(part, "ab" if start else "wb") as f:
        while chunk := response.read(CHUNK):
          f.write(chunk)
          received += len(chunk)
          if progress is not None:
            progress.advance(len(chunk))
            counted += len(chunk)
            if progress.cancelled:
              raise DownloadCancelled(dest.name)
    if size is not None and received != size:  # a server that closed early, no error
      raise http.client.IncompleteRead(b"", size - received)
  except BaseException:
    if progress is not None:
      progress.advance(-counted)
    raise
  os.replace(part, dest)


def fetch_verified(
  url: str,
  dest: pathlib.Path,
  md5: str,
  *,
  attempts: int = 3,
  progress: ByteProgress | None = None,
  timeout: float = TIMEOUT_S,
  backoff_s: float = 1.0,
) -> None:
  """`dest` with the content whose md5 is `md5`, downloaded as needed.

  A `dest` already there with the right md5 is kept. A wrong one (a short file, say) and a
  ``.part`` are continued with a Range request first; a download that completes with the
  wrong md5 (corrupt bytes) is deleted and fetched again from the start. Connection errors
  are retried too, continuing where they stopped.

  Raises:
    DownloadError: naming the file, after `attempts` failed attempts or on an HTTP error
      that another attempt cannot fix (404).
  """
  part = dest.with_name(dest.name + ".part")
  if dest.exists():
    if md5_of(dest) == md5:
      return
    os.replace(dest, part)  # perhaps a prefix: continue it (a wrong one restarts below)
  last = ""
  for attempt in range(1, attempts + 1):
    try:
      download(url, dest, progress, timeout=timeout)
    except urllib.error.HTTPError as error:
      if error.code in (403, 404, 410):
        raise DownloadError(f"{dest.name}: HTTP {error.code} {error.reason}: {url}") from None
      last = f"HTTP {error.code} {error.reason}"
    except (OSError, http.client.HTTPException) as error:  # URLError, reset, timeout, cut
      last = f"{type(error).__name__}: {error}"
    else:
      actual = md5_of(dest)
      if actual == md5:
        return
      last = f"md5 {actual}, expected {md5}"
      if progress is not None:
        progress.advance(-dest.stat().st_size)
      dest.unlink()  # corrupt bytes: a Range request would only keep them
    logger.warning(
      "%s: attempt %d of %d failed (%s)%s",
      dest.name,
      attempt,
      attempts,
      last,
      "; trying again" if attempt < attempts else "",
    )
    if attempt < attempts:
      time.sleep(backoff_s * attempt)
  raise DownloadError(f"{dest.name}: still failing after {attempts} attempts ({last}): {url}")
