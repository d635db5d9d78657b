"""Live index edits: a running service swaps in an edited index without a restart.

A reload is triggered by a change of the index's manifest (polled: one `stat` every
`reload_poll_s`), by SIGHUP, or by ``POST /v1/admin/reload``. The new index is loaded and
checked beside the old one on a worker thread (every file against its manifest's checksums,
`CentroidIndex.load`; built from this model's embeddings, `provenance`; a `Decision` made
from it answers an embedding; a `Verifier` for an index that verifies, its program compiled),
and only then replaces the served `ServedIndex`: one reference, which a request reads once (a
batch request once for all its photos), so every request is answered from exactly one index
version, and the swap needs no lock. An index that fails any check is refused in one log
line and the old one stays.

Editors replace the index folder by renames (`folders.atomic_folder`) while a reload may be
reading it: a load is kept only when the manifest's digest is the same before and after it
(the files were checked against that manifest), and read again otherwise.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime
import hashlib
import json
import logging
import os
import pathlib
import signal
import threading
import time
from typing import Any, Callable, Mapping

import numpy as np

from landmark_jax.folders import real_path
from landmark_jax.index import integrity
from landmark_jax.index.centroid_index import CentroidIndex
from landmark_jax.index.provenance import check_same_model
from landmark_jax.recognize.decision import Decision
from landmark_jax.recognize.recognizer import can_verify
from landmark_jax.train.checkpoints import TrainedModel

logger = logging.getLogger(__name__)

_READ_ATTEMPTS = 5  # loads torn by a concurrent save are read again this many times
_RETRY_PAUSE_S = 0.2


@dataclasses.dataclass(frozen=True)
class IndexVersion:
  """An index folder as saved: its manifest's digest, its edits, and the manifest file's
  identity on disk (what the poll compares: every save writes a new file)."""

  sha256: str  # the manifest's own `manifest_sha256` (format 1: the sha256 of its bytes)
  edits: int
  stat: tuple[int, int, int]  # (inode, mtime in ns, size) of manifest.json

  @property
  def short(self) -> str:
    """What answers and /v1/info call the version: enough of the digest to tell versions
    apart, and to find in manifest.json."""
    return self.sha256[:16]


def manifest_stat(directory: pathlib.Path) -> tuple[int, int, int] | None:
  try:
    st = os.stat(directory / integrity.MANIFEST)
  except OSError:  # gone, or between an editor's two renames
    return None
  return (st.st_ino, st.st_mtime_ns, st.st_size)


def read_version(directory: str | os.PathLike) -> IndexVersion:
  """The version of the index saved at `directory` (`IndexFormatError`, `OSError`: none)."""
  # The real folder (a symlink followed), never the backup an interrupted save left.
  path = real_path(directory) / integrity.MANIFEST
  with open(path, "rb") as f:  # one open file: its identity and its bytes belong together
    stat = os.fstat(f.fileno())
    if stat.st_size > integrity.MAX_MANIFEST_BYTES:
      raise integrity.IndexFormatError(
        f"{path}: {stat.st_size} bytes, more than a manifest ever needs "
        f"({integrity.MAX_MANIFEST_BYTES // 2**20} MiB); not read"
      )
    data = f.read(integrity.MAX_MANIFEST_BYTES + 1)
  if len(data) > integrity.MAX_MANIFEST_BYTES:  # grew since the stat
    raise integrity.IndexFormatError(f"{path}: more than {integrity.MAX_MANIFEST_BYTES} bytes")
  try:
    manifest = json.loads(data.decode("utf-8"))
  except ValueError as e:
    raise integrity.IndexFormatError(f"{path}: not a JSON manifest ({e})") from None
  if not isinstance(manifest, dict):
    raise integrity.IndexFormatError(f"{path}: not a JSON object")
  digest = manifest.get(integrity.MANIFEST_DIGEST)
  if not isinstance(digest, str):  # format 1: no digest of its own
    digest = hashlib.sha256(data).hexdigest()
  edits = manifest.get("edits")
  return IndexVersion(
    digest,
    len(edits) if isinstance(edits, list) else 0,
    (stat.st_ino, stat.st_mtime_ns, stat.st_size),
  )


def _read_version_or_none(directory: pathlib.Path) -> IndexVersion | None:
  try:
    return read_version(directory)
  except (OSError, integrity.IndexFormatError):
    return None


@dataclasses.dataclass(frozen=True)
class ServedIndex:
  """One index version as the service answers from it. Immutable: a reload makes another."""

  decision: Decision
  version: IndexVersion | None  # None: the service was given an index, not its folder
  loaded_at: float = dataclasses.field(default_factory=time.time)  # Unix time
  # Settles this version's answers in its band (`recognize.verifier`), built on `decision`
  # from this version's store and band; None: the index cannot verify, or verification is off
  verifier: Any = None

  def info(self) -> dict[str, Any]:
    index = self.decision.index
    return {
      "version": None if self.version is None else self.version.short,
      "manifest_sha256": None if self.version is None else self.version.sha256,
      "edits": None if self.version is None else self.version.edits,
      "loaded_at": datetime.datetime.fromtimestamp(self.loaded_at, datetime.timezone.utc)
      .isoformat(timespec="seconds")
      .replace("+00:00", "Z"),
      "centroids": len(index),
      "landmarks": int(len(np.unique(index.labels))),
      "backend": index.backend,
    }


@dataclasses.dataclass(frozen=True)
class IndexSource:
  """Where the served index lives and how a reloaded one becomes a `Decision`.

  `version` must be read (`read_version`) BEFORE the served index was loaded: if an editor
  saved in between, the first poll then sees a change and loads the newer index, rather
  than taking the newer version's name for the older content.
  """

  directory: pathlib.Path
  version: IndexVersion | None
  # Decision options the service was started with (eta, names, radius_km, top_k, …): an
  # η given on the command line stays; otherwise each index's own calibrated η applies.
  decision_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  allow_other_model: bool = False
  # As `Recognizer`'s `verify`: None verifies each version that can (store and band), True
  # refuses a version that cannot, False never verifies.
  verify: bool | None = None


@dataclasses.dataclass(frozen=True)
class ReloadResult:
  outcome: str  # "reloaded", "unchanged" or "refused"
  served: ServedIndex  # what is served now
  reason: str | None = None  # why it was refused


def load_checked(source: IndexSource, trained: TrainedModel) -> ServedIndex:
  """The index at `source.directory` as a `ServedIndex`, after every check; raises when
  it cannot be served (or when it kept changing while it was read)."""
  directory = pathlib.Path(source.directory)
  for attempt in range(_READ_ATTEMPTS):
    if attempt:
      time.sleep(_RETRY_PAUSE_S)
    before = _read_version_or_none(directory)
    if before is None:  # gone, or between an editor's two renames
      continue
    try:
      decision = _decision(source, trained)
    except Exception:
      if _read_version_or_none(directory) != before:
        continue  # torn by a save that landed meanwhile: read the new one
      raise
    if _read_version_or_none(directory) == before:
      return ServedIndex(decision, before, verifier=verifier_for(decision, trained, source.verify))
  read_version(directory)  # raises why there is no index to read, if that is the reason
  raise RuntimeError(f"{directory} kept changing while it was read; will try again")


def _decision(source: IndexSource, trained: TrainedModel) -> Decision:
  index = CentroidIndex.load(source.directory, expected_dim=trained.model.embedding_dim)
  check_same_model(
    index.metadata.get("checkpoint"),
    trained.checkpoint_id,
    allow_other_model=source.allow_other_model,
    index=source.directory,
  )
  decision = Decision(
    index, label_map=index.label_map or trained.label_map, **source.decision_options
  )
  # A decision that cannot answer a query fails here, not on the first request after it.
  probe = np.zeros((1, index.dim), np.float32)
  probe[0, 0] = 1.0
  (prediction,) = decision.predict(probe)
  if not np.isfinite(prediction.score):
    raise ValueError(f"a probe query scored {prediction.score}")
  return decision


def verifier_for(decision: Decision, trained: TrainedModel, verify: bool | None):
  """The `Verifier` of `decision`'s index (None: off, or it cannot verify and `verify` is
  None), its single-photo program compiled: a version swapped in must not make its first
  uncertain request wait for a compile. `verify` True and an index that cannot verify:
  `UsageError` naming the missing step (a reload is then refused)."""
  if verify is False or (verify is None and not can_verify(decision.index)):
    return None
  from landmark_jax.recognize.verifier import Verifier

  verifier = Verifier(trained, decision)
  warm_up_verifier(verifier)
  return verifier


def warm_up_verifier(verifier) -> None:
  """Compiles `verifier`'s single-photo program: every photo is fitted to one square size
  first, so a small grey one compiles the program every query runs."""
  verifier.describe(np.full((64, 64, 3), 128, np.uint8))


class IndexReloader:
  """Keeps `served` current with the index folder of `source`.

  `served` is replaced, never mutated; a request takes the reference once. Reloads run one
  at a time, their loads on their own thread (the event loop keeps answering).
  """

  def __init__(
    self,
    source: IndexSource,
    trained: TrainedModel,
    served: ServedIndex,
    *,
    on_result: Callable[[ReloadResult], None] = lambda result: None,
  ):
    self.source = source
    self.trained = trained
    self.served = served
    self.on_result = on_result
    self._seen_stat = None if source.version is None else source.version.stat
    self._lock: asyncio.Lock | None = None
    self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="reload")
    self._tasks: set[asyncio.Task] = set()
    self._sighup = False

  async def reload(self, trigger: str, *, force: bool = True) -> ReloadResult:
    """Loads the index again and swaps it in if it changed and passes every check.
    Without `force` (the poll), only when the manifest file changed since last seen."""
    if self._lock is None:
      self._lock = asyncio.Lock()
    async with self._lock:  # one reload at a time: SIGHUP during a poll's load waits
      stat = manifest_stat(self.source.directory)
      if not force and stat is not None and stat == self._seen_stat:
        return ReloadResult("unchanged", self.served)
      loop = asyncio.get_running_loop()
      try:
        new = await loop.run_in_executor(self._executor, load_checked, self.source, self.trained)
      except Exception as error:
        # Remembered, so that a damaged index is refused (and logged) once, not every poll.
        # The stat from before the load: a save that landed since is still seen as new.
        self._seen_stat = stat
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        logger.warning(
          "index reload (%s) refused, still serving version %s: %s",
          trigger,
          self._version_name(self.served),
          reason,
        )
        return self._done(ReloadResult("refused", self.served, reason))
      self._seen_stat = new.version.stat
      old = self.served
      if old.version is not None and new.version.sha256 == old.version.sha256:
        return ReloadResult("unchanged", old)
      self.served = new  # the swap: requests from now on answer from `new`
      logger.info(
        "index reloaded (%s): version %s → %s, %d edits, %d centroids",
        trigger,
        self._version_name(old),
        new.version.short,
        new.version.edits,
        len(new.decision.index),
      )
      return self._done(ReloadResult("reloaded", new))

  def _done(self, result: ReloadResult) -> ReloadResult:
    self.on_result(result)
    return result

  @staticmethod
  def _version_name(served: ServedIndex) -> str:
    return "unknown" if served.version is None else served.version.short

  async def start(self, poll_s: float) -> None:
    if poll_s > 0:
      self._spawn(self._poll(poll_s))
    # Signal handlers can only be set from the main thread (a test runs the server in
    # another; there, the admin route and the poll trigger reloads).
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGHUP"):
      asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._on_sighup)
      self._sighup = True

  def _on_sighup(self) -> None:
    self._spawn(self.reload("SIGHUP"))

  def _spawn(self, coroutine) -> None:
    task = asyncio.get_running_loop().create_task(coroutine)
    self._tasks.add(task)  # held: the loop keeps only weak references to tasks
    task.add_done_callback(self._tasks.discard)

  async def _poll(self, poll_s: float) -> None:
    while True:
      await asyncio.sleep(poll_s)
      try:
        await self.reload("manifest changed", force=False)
      except Exception:  # never let the poll die: it is the only automatic trigger
        logger.exception("index poll failed")

  async def stop(self) -> None:
    if self._sighup:
      asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
      self._sighup = False
    for task in list(self._tasks):
      task.cancel()
    await asyncio.gather(*self._tasks, return_exceptions=True)
    self._executor.shutdown(wait=False, cancel_futures=True)
