"""Damaging a bundle's files, and reading them as a user would, without the library."""

import hashlib
import pathlib


def flip_byte(path: pathlib.Path, offset: int | None = None) -> None:
  """Changes one bit of one byte (the middle one by default): same size, other content."""
  data = bytearray(path.read_bytes())
  data[len(data) // 2 if offset is None else offset] ^= 0x01
  path.write_bytes(bytes(data))


def sha256(path: pathlib.Path) -> str:
  return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(folder: pathlib.Path) -> set[str]:
  return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
