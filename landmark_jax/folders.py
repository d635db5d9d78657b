"""Writing a folder atomically: every writer of a folder-shaped artifact (an index, an
embedding shard, the generated demo dataset) goes through `atomic_folder`.

The content is written into a hidden staging folder beside the target, flushed to disk, and
renamed into place, so a reader (or a crash) never sees half a folder. A folder that is
edited (read, changed, written back: an index) is edited under `exclusive_writer`, so two
writers cannot both read the old content and each write back their own change.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pathlib
import secrets
import shutil
import sys
import threading
import time
from typing import Callable, Iterator

from landmark_jax.errors import UserError


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
  return target.with_name(f".{target.name}.previous")


def _swap_into_place(staging: pathlib.Path, target: pathlib.Path) -> None:
  # Two renames: target → backup, staging → target. A crash between them leaves the backup,
  # which `readable_folder` falls back to.
  backup = backup_path(target)
  if target.exists():
    shutil.rmtree(backup, ignore_errors=True)
    os.rename(target, backup)
  os.rename(staging, target)
  shutil.rmtree(backup, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(
  target: str | os.PathLike, *, replace: bool = False, sync: bool = True
) -> Iterator[pathlib.Path]:
  """Yields an empty staging folder; when the block ends without an error, the staging
  folder becomes `target`.

  Args:
    replace: an existing `target` is replaced (through a backup, see `readable_folder`).
      Without it, an existing `target` wins: a concurrent writer of the same content
      finished first, and this one's staging folder is dropped.
    sync: fsync every file before the rename (durability across a power cut).
  """
  target = pathlib.Path(target).absolute()
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


def readable_folder(target: pathlib.Path, marker: str) -> pathlib.Path | None:
  """`target` if it holds `marker`; else the backup of an interrupted replacing write when
  `target` is gone and the backup is complete; else None."""
  if (target / marker).is_file():
    return target
  backup = backup_path(target)
  if not target.exists() and (backup / marker).is_file():
    return backup
  return None


# Exclusive writers ---------------------------------------------------------------------


class FolderBusyError(UserError):
  """Another process holds a folder's write lock for longer than this one would wait."""


def lock_path(target: pathlib.Path) -> pathlib.Path:
  """The lock file beside `target`. It outlives the folder's swaps (a lock inside the folder
  would be renamed away with it) and is never deleted (deleting it would let two writers
  lock two different files)."""
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

  Reading, changing and writing `target` inside the block cannot lose another writer's
  change. The lock is an advisory `flock`, released by the kernel if the holder dies, so a
  killed writer never leaves a stale lock; its staging folders are removed here.

  Args:
    timeout: seconds to wait for another writer (None: as long as it takes), then
      `FolderBusyError` naming the holder.
    on_wait: called once with a message when this writer has to wait.
  """
  target = pathlib.Path(target).absolute()
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
