"""Writing a folder atomically: every writer of a folder-shaped artifact (an index, an
embedding shard, the generated demo dataset) goes through `atomic_folder`.

The content is written into a hidden staging folder beside the target, flushed to disk, and
renamed into place, so a reader (or a crash) never sees half a folder. A folder that is
edited (read, changed, written back: an index) is edited under `exclusive_writer`, so two
writers cannot both read the old content and each write back their own change.

A target reached through a symlink (``current -> index-v1``) is written, locked and swapped
under its real path: the link stays as it is, and writers through either name exclude each
other. A replacing write keeps a journal (`swap_journal_path`) for the two renames of its
swap; the next exclusive writer finishes or undoes a swap that a crash interrupted, and
readers never fall back to the backup on their own.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import pathlib
import secrets
import shutil
import sys
import threading
import time
from typing import Callable, Iterator

from landmark_jax.errors import UserError

logger = logging.getLogger(__name__)


class DiskFullError(UserError, OSError):
  """A write ran out of room (no space, a quota, a read-only file system); what it was
  replacing is left as it was."""


# What a full (or read-only) disk raises: the user's to fix, not a bug.
_NO_ROOM = {
  errno.ENOSPC: "no space left",
  errno.EDQUOT: "disk quota exceeded",
  errno.EROFS: "read-only file system",
}


def real_path(target: str | os.PathLike) -> pathlib.Path:
  """`target` with every symlink resolved (a dangling link: the path it points to), so a
  folder reached by two names is locked and swapped under one."""
  return pathlib.Path(os.path.realpath(target))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
  """Writes a small file whose presence means "done" (a run's result): written beside it and
  renamed into place, so a killed writer leaves the old file or none, never half of one."""
  path = pathlib.Path(path)
  staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
  staging.write_text(text)
  os.replace(staging, path)


def fsync_tree(root: pathlib.Path) -> None:
  for path in root.rglob("*"):
    if path.is_file():
      with open(path, "rb") as f:
        os.fsync(f.fileno())


def backup_path(target: pathlib.Path) -> pathlib.Path:
  """Where `atomic_folder(replace=True)` keeps the previous folder during the swap."""
  target = real_path(target)
  return target.with_name(f".{target.name}.previous")


def swap_journal_path(target: pathlib.Path) -> pathlib.Path:
  """A file that exists while a swap of `target` is under way: from before its first rename
  until its backup is removed. Readers seeing `target` missing with it present retry; the
  next exclusive writer finds it after a crash (`recover_interrupted_swap`)."""
  target = real_path(target)
  return target.with_name(f".{target.name}.swap")


def _swap_into_place(staging: pathlib.Path, target: pathlib.Path) -> None:
  # Two renames: target → backup, staging → target, inside the journal's lifetime, so a
  # crash between them is recognised as such (and not as a user's `rm -rf target`).
  backup, journal = backup_path(target), swap_journal_path(target)
  if target.exists():
    shutil.rmtree(backup, ignore_errors=True)
    _write_synced(journal, f"{staging.name} -> {target.name}\n")
    os.rename(target, backup)
  os.rename(staging, target)
  shutil.rmtree(backup, ignore_errors=True)
  journal.unlink(missing_ok=True)


def _write_synced(path: pathlib.Path, text: str) -> None:
  with open(path, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  directory = os.open(path.parent, os.O_RDONLY)
  try:  # the journal's own name must survive a power cut before the renames do
    os.fsync(directory)
  finally:
    os.close(directory)


def recover_interrupted_swap(
  target: pathlib.Path, notify: Callable[[str], None] | None = None
) -> None:
  """Settles what a killed replacing writer of `target` left, under `target`'s write lock:
  a journal with `target` missing puts the backup back (the crash fell between the two
  renames); a journal with `target` there drops the backup (the new folder was in place); a
  backup without a journal is stale and dropped. `notify` hears of a restored folder."""
  target = real_path(target)
  backup, journal = backup_path(target), swap_journal_path(target)
  if journal.exists() and not target.exists() and backup.is_dir():
    os.rename(backup, target)
    message = f"{target}: restored the version that an interrupted save had moved to {backup}"
    (notify or logger.warning)(message)
  elif backup.exists():
    shutil.rmtree(backup, ignore_errors=True)
  journal.unlink(missing_ok=True)


def _no_room(error: OSError, target: pathlib.Path, what: str) -> DiskFullError | None:
  reason = _NO_ROOM.get(error.errno)
  if reason is None:
    return None
  return DiskFullError(f"{reason} writing {target}; {what} is unchanged")


@contextlib.contextmanager
def atomic_folder(
  target: str | os.PathLike, *, replace: bool = False, sync: bool = True, what: str = "the folder"
) -> Iterator[pathlib.Path]:
  """Yields an empty staging folder; when the block ends without an error, the staging
  folder becomes `target` (its real path: a symlink to it stays a symlink).

  A full disk (or quota, or read-only file system) anywhere in the write is a
  `DiskFullError` saying that `what` is unchanged; the staging folder is removed.

  Args:
    replace: an existing `target` is replaced (through a backup and a journal, see
      `recover_interrupted_swap`). Without it, an existing `target` wins: a concurrent
      writer of the same content finished first, and this one's staging folder is dropped.
    sync: fsync every file before the rename (durability across a power cut).
    what: what the user calls `target`, for the full-disk message ("the index").
  """
  target = real_path(target)
  target.parent.mkdir(parents=True, exist_ok=True)
  staging = _staging_folder(target)
  try:
    yield staging
    if sync:
      fsync_tree(staging)
    if replace:
      _swap_into_place(staging, target)
    else:
      try:
        os.rename(staging, target)
      except OSError:
        if not target.exists():
          raise
  except OSError as error:
    full = _no_room(error, target, what)
    if full is None:
      raise
    raise full from error
  finally:
    shutil.rmtree(staging, ignore_errors=True)


def _staging_folder(target: pathlib.Path) -> pathlib.Path:
  """A new empty sibling of `target` with the permissions the umask gives any new folder.
  (Not `tempfile.mkdtemp`: its folder is private, 0700, and after the rename so would be
  the index, unreadable to a service running as another user.)"""
  while True:
    staging = target.parent / f".{target.name}.tmp-{secrets.token_hex(6)}"
    try:
      staging.mkdir()
      return staging
    except FileExistsError:
      continue


def swap_under_way(target: pathlib.Path) -> bool:
  """Whether a live writer of `target` is between its swap's renames: its journal is there
  and its lock is held. A reader that finds `target` missing then waits for it; a journal
  left by a killed writer (nobody holds the lock) is no reason to wait."""
  return swap_journal_path(target).exists() and writer_active(target)


def writer_active(target: pathlib.Path) -> bool:
  """Whether some writer (this process included) holds `target`'s write lock now. Tested
  with a shared lock taken and dropped at once, on a read-only descriptor: a reader may
  not be allowed to write beside the folder."""
  try:
    fd = os.open(lock_path(target), os.O_RDONLY)
  except OSError:  # no lock file: never written by a locking writer
    return False
  try:
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
  except BlockingIOError:
    return True
  finally:
    os.close(fd)  # closing drops the shared lock, if it was taken
  return False


def left_backup(target: pathlib.Path) -> pathlib.Path | None:
  """The backup that an interrupted replacing write left beside a missing `target` (never
  read in its place: it may be older than what the user last saved, or deleted)."""
  backup = backup_path(target)
  return backup if not real_path(target).exists() and backup.exists() else None


# Exclusive writers ---------------------------------------------------------------------


class FolderBusyError(UserError):
  """Another process holds a folder's write lock for longer than this one would wait."""


def lock_path(target: pathlib.Path) -> pathlib.Path:
  """The lock file beside `target`'s real path. It outlives the folder's swaps (a lock inside
  the folder would be renamed away with it) and is never deleted (deleting it would let two
  writers lock two different files)."""
  target = real_path(target)
  return target.with_name(f".{target.name}.lock")


class _HeldLock:
  """One process's hold on a lock file: an RLock orders its threads, the flock orders
  processes; a thread that already holds it may enter again (save inside an edit)."""

  def __init__(self):
    self.threads = threading.RLock()
    self.depth = 0
    self.fd: int | None = None


_held: dict[pathlib.Path, _HeldLock] = {}
_held_guard = threading.Lock()


def _holder(fd: int) -> str:
  """Who holds the lock, as its holder wrote it: "pid N: command"."""
  try:
    return os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
  except OSError:
    return "unknown"


def _flock(
  fd: int,
  lock: pathlib.Path,
  target: pathlib.Path,
  timeout: float | None,
  on_wait: Callable[[str], None] | None,
) -> None:
  deadline = None if timeout is None else time.monotonic() + timeout
  holder = None  # read once, when this writer first has to wait
  while True:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
      return
    except BlockingIOError:
      if holder is None:
        holder = _holder(fd)
        if on_wait is not None:
          on_wait(f"waiting for {target}: another writer holds it ({holder})")
      if deadline is not None and time.monotonic() >= deadline:
        raise FolderBusyError(
          f"{target} is being written by another process ({holder}); waited {timeout:g} s. "
          f"Try again when it has finished (its lock: {lock})"
        ) from None
      time.sleep(0.05)


@contextlib.contextmanager
def exclusive_writer(
  target: str | os.PathLike,
  *,
  timeout: float | None = None,
  on_wait: Callable[[str], None] | None = None,
) -> Iterator[pathlib.Path]:
  """Holds `target`'s write lock for the block: other writers (processes or threads) wait.
  The lock is its real path's, so writers through a symlink and through the folder's own
  name exclude each other; yields that real path.

  Reading, changing and writing `target` inside the block cannot lose another writer's
  change. The lock is an advisory `flock`, released by the kernel if the holder dies, so a
  killed writer never leaves a stale lock; its staging folders are removed here, and a swap
  it left half done is settled (`recover_interrupted_swap`).

  Args:
    timeout: seconds to wait for another writer (None: as long as it takes), then
      `FolderBusyError` naming the holder.
    on_wait: called once with a message when this writer has to wait, and with one when it
      restores a folder that an interrupted writer had moved away.
  """
  target = real_path(target)
  target.parent.mkdir(parents=True, exist_ok=True)
  lock = lock_path(target)
  with _held_guard:
    held = _held.setdefault(lock, _HeldLock())
  if not held.threads.acquire(timeout=-1 if timeout is None else timeout):
    raise FolderBusyError(f"{target} is being written by another thread; waited {timeout:g} s")
  try:
    if held.depth == 0:
      fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
      try:
        _flock(fd, lock, target, timeout, on_wait)
      except BaseException:
        os.close(fd)
        raise
      os.ftruncate(fd, 0)
      command = " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])[:200]
      os.pwrite(fd, f"pid {os.getpid()}: {command}\n".encode(), 0)
      held.fd = fd
      remove_staging_leftovers(target)
      recover_interrupted_swap(target, on_wait)
    held.depth += 1
    try:
      yield target
    finally:
      held.depth -= 1
      if held.depth == 0:
        fcntl.flock(held.fd, fcntl.LOCK_UN)
        os.close(held.fd)
        held.fd = None
  finally:
    held.threads.release()


def remove_staging_leftovers(target: pathlib.Path) -> None:
  """Removes `atomic_folder` staging folders of `target` left by killed writers. Only an
  exclusive writer may: any other writer's staging folder would be in use."""
  for staging in target.parent.glob(f".{target.name}.tmp-*"):
    shutil.rmtree(staging, ignore_errors=True)
