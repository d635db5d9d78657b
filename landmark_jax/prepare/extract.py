"""Extracting an image tar safely: regular files only, each inside the destination.

Every member is checked before anything is written, so a tar with one hostile member
(an absolute path, a ``..`` component, a link, a device) writes nothing at all. Each file is
written beside its final name and renamed, so an interrupted extraction leaves whole files
(and temporary ones, which a rerun overwrites), never a truncated photo under a real name.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tarfile

from landmark_jax.errors import DataError


class UnsafeArchiveError(DataError):
  """A tar member that would be written outside the destination, or is not a plain file."""


def _check_member(archive: pathlib.Path, member: tarfile.TarInfo) -> None:
  path = pathlib.PurePosixPath(member.name)
  if path.is_absolute() or member.name.startswith(("/", "\\")):
    raise UnsafeArchiveError(
      f"{archive.name}: member {member.name!r} has an absolute path; "
      "refusing to extract the archive"
    )
  if ".." in path.parts:
    raise UnsafeArchiveError(
      f"{archive.name}: member {member.name!r} leads out of the "
      "destination (..); refusing to extract the archive"
    )
  if not (member.isfile() or member.isdir()):
    raise UnsafeArchiveError(
      f"{archive.name}: member {member.name!r} is not a regular file "
      "(a link or device); refusing to extract the archive"
    )


def extract_tar(archive: str | os.PathLike, destination: str | os.PathLike) -> int:
  """Extracts the regular files of `archive` under `destination`; returns their number.

  Raises:
    UnsafeArchiveError: a member with an absolute path, ``..``, or of another type than a
      file or folder (nothing is extracted then).
    DataError: the file is not a readable tar.
  """
  archive, destination = pathlib.Path(archive), pathlib.Path(destination)
  try:
    with tarfile.open(archive, "r:*") as tar:
      members = tar.getmembers()
      for member in members:
        _check_member(archive, member)
      files = [m for m in members if m.isfile()]
      for member in files:
        target = destination / member.name
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.tmp")
        with tar.extractfile(member) as source, open(staging, "wb") as out:
          shutil.copyfileobj(source, out, 1 << 20)
        os.replace(staging, target)
  except tarfile.TarError as error:
    raise DataError(f"{archive.name} is not a readable tar archive: {error}") from None
  return len(files)
