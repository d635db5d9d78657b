"""One recipe at a time on a workdir.

Two recipes started on the same workdir (a second terminal, a job submitted twice) would
both train into the same checkpoints. Process 0 of a recipe holds an advisory `flock` on
``W/recipe/lock`` while it runs; a second one is refused, naming the first. The kernel
drops the lock when its holder dies, so a killed run never leaves it stale. Some cluster
file systems do not lock (Lustre without ``-o flock``): there the recipe says so and goes
on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pathlib
import sys
from typing import Callable, Iterator

from landmark_jax.errors import UsageError

# What a file system that cannot lock answers (rather than "held by another").
NO_LOCKING = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class RecipeRunningError(UsageError):
  """Another recipe runs on this workdir."""


@contextlib.contextmanager
def one_recipe_at_a_time(
  folder: pathlib.Path, say: Callable[[str], None] = print
) -> Iterator[None]:
  """Holds ``folder/lock`` for the block (see the module)."""
  folder.mkdir(parents=True, exist_ok=True)
  lock = folder / "lock"
  fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
      raise RecipeRunningError(
        f"another recipe runs on {folder.parent} ({holder}): wait for it, stop it, or use "
        f"another --workdir (its lock: {lock})"
      ) from None
    except OSError as error:
      if error.errno not in NO_LOCKING:
        raise
      say(
        f"note: {folder.parent}'s file system does not lock ({error.strerror}): nothing stops a "
        "second recipe on this workdir, so start one only"
      )
    else:
      os.ftruncate(fd, 0)
      command = " ".join([os.path.basename(sys.argv[0]), *sys.argv[1:]])[:200]
      os.pwrite(fd, f"pid {os.getpid()}: {command}\n".encode(), 0)
    yield
  finally:
    os.close(fd)  # releases the lock
