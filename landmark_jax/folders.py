"""Writing a folder atomically: every writer of a folder-shaped artifact (an index, an
embedding shard, the generated demo dataset) goes through `atomic_folder`.

The content is written into a hidden staging folder beside the target, flushed to disk, and
renamed into place, so a reader (or a crash) never sees half a folder.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile
from typing import Iterator


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
def atomic_folder(target: str | os.PathLike, *, replace: bool = False,
                  sync: bool = True) -> Iterator[pathlib.Path]:
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
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
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


def readable_folder(target: pathlib.Path, marker: str) -> pathlib.Path | None:
  """`target` if it holds `marker`; else the backup of an interrupted replacing write when
  `target` is gone and the backup is complete; else None."""
  if (target / marker).is_file():
    return target
  backup = backup_path(target)
  if not target.exists() and (backup / marker).is_file():
    return backup
  return None
