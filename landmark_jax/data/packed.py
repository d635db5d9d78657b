"""Photos packed into ArrayRecord shards: writing a packed folder from an image folder, and
reading it back (through grain's `ArrayRecordDataSource`) by the photos' names.

A packed folder holds ``shard-NNNNN-of-MMMMM.array_record`` files (one encoded image per
record, in the sorted order of the photos' relative paths), ``index.csv``
(``path,shard,position``: a photo's path relative to the image folder, e.g.
``3/2/a/32aa90aef76a33aa.jpg``, its shard's file name and its position there) and
``manifest.json`` (the shards with their record counts and the settings they were packed
with). Keyed by relative path, not by id, so that a source finds a photo by exactly the
rule it finds its file by (`GLDv2Source.image_path`).

Why pack: one JPEG file per photo costs an open, a stat and a small random read each, which
on network or spinning disks dominates decoding; a few large files read with positioned reads
do not. Resizing while packing (longest side N) also makes every later decode cheaper.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import logging
import os
import pathlib
import shutil
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, ImageOps

from landmark_jax.data.config import DEFAULT_FORMATS, DEFAULT_MAX_JPEG_SCANS
from landmark_jax.data.image_guard import allowed_format, jpeg_structure
from landmark_jax.data.transforms import to_rgb
from landmark_jax.errors import DataError, MissingFileError
from landmark_jax.folders import atomic_folder, atomic_write_text
from landmark_jax.text import spreadsheet_cell, unquote_cell

logger = logging.getLogger(__name__)

FORMAT = 1  # manifest.json's "format": bumped when the layout changes
MANIFEST = "manifest.json"
INDEX = "index.csv"
# group_size:1 — grain reads one record at a time, at random; a larger group would decode a
# whole group per photo. Uncompressed: JPEG bytes do not compress further.
WRITER_OPTIONS = "group_size:1,uncompressed"
JPEG_QUALITY = 90  # re-encoding a resized photo (Pillow's default 75 shows blocking)
DEFAULT_SHARD_SIZE = 5000  # photos per shard: GLDv2's 4.1 M photos make ~820 shards
PACKED_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


# Resizing -------------------------------------------------------------------------------


def shrink_image(data: bytes, longest: int, *, quality: int = JPEG_QUALITY) -> bytes:
  """`data` with its longest side made `longest` pixels (aspect kept), re-encoded as JPEG;
  a photo that is already no larger is returned as it is (no second lossy encoding).

  The EXIF orientation is applied to the pixels and dropped from the tag (a decoder would
  otherwise rotate the already-rotated image); the rest of the EXIF (GPS) and the colour
  profile are kept. Pillow's `thumbnail` does the resize: JPEG draft decoding at a reduced
  DCT scale down to twice the target, then Lanczos, so a 12 Mpx photo is cheap to shrink.

  Raises:
    OSError, ValueError: not an image Pillow can decode, in another format than JPEG, PNG
      or WebP, or a JPEG of too many scans (the caller skips it).
  """
  # The formats and scans any decode of the library accepts, checked before Pillow
  # decodes: a scan bomb in a downloaded dataset would otherwise stall packing.
  formats = allowed_format(data, DEFAULT_FORMATS)
  if formats == ("JPEG",):
    jpeg_structure(data, max_scans=DEFAULT_MAX_JPEG_SCANS)
  with Image.open(io.BytesIO(data), formats=formats) as image:
    if max(image.size) <= longest:
      return data
    # Bounded by a square, so shrinking before the orientation is applied gives the same size.
    image.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    icc_profile = image.info.get("icc_profile")
    image = ImageOps.exif_transpose(image)
    exif = image.getexif()
    exif.pop(0x0112, None)  # orientation: the pixels are upright now
    if image.mode not in ("RGB", "L"):
      image = to_rgb(image)
    out = io.BytesIO()
    image.save(
      out,
      "JPEG",
      quality=quality,
      exif=exif.tobytes() if len(exif) else b"",
      icc_profile=icc_profile,
    )
    return out.getvalue()


# Writing --------------------------------------------------------------------------------


def list_images(image_dir: pathlib.Path) -> list[str]:
  """Every image under `image_dir`, as sorted POSIX paths relative to it (the packing order)."""
  names = []
  for folder, _, files in os.walk(image_dir):
    relative = pathlib.Path(folder).relative_to(image_dir)
    names += [
      (relative / name).as_posix()
      for name in files
      if name.lower().endswith(PACKED_EXTENSIONS) and not name.startswith(".")
    ]
  return sorted(names)


@dataclasses.dataclass(frozen=True)
class PackResult:
  folder: pathlib.Path
  records: int  # photos packed
  shards: int
  skipped: tuple[str, ...]  # relative paths of photos that could not be read or resized
  reused: bool  # the folder was already packed with these settings: nothing was written


def _shard_name(index: int, count: int) -> str:
  return f"shard-{index:05d}-of-{count:05d}.array_record"


def _plan(names: Sequence[str], resize: int | None, shard_size: int) -> dict:
  """What decides the shards' content: a rerun with the same plan reuses finished shards."""
  listing = hashlib.md5("\n".join(names).encode()).hexdigest()
  return {
    "format": FORMAT,
    "resize": resize,
    "quality": JPEG_QUALITY if resize else None,
    "shard_size": shard_size,
    "photos": len(names),
    "listing_md5": listing,
  }


def _read(image_dir: pathlib.Path, name: str, resize: int | None) -> bytes | str:
  """The bytes to store for `name`, or why it cannot be stored (a string)."""
  try:
    data = (image_dir / name).read_bytes()
    return shrink_image(data, resize) if resize else data
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
    return f"{type(error).__name__}: {error}"


def _write_shard(
  path: pathlib.Path,
  image_dir: pathlib.Path,
  names: Sequence[str],
  resize: int | None,
  pool: concurrent.futures.Executor,
  bar,
) -> dict:
  """One shard, written beside its final name and renamed into place; returns its index
  part (``{"records": n, "names": [...], "skipped": [...]}``), which the caller saves as the
  shard's done-marker."""
  from array_record.python.array_record_module import ArrayRecordWriter

  staging = path.with_name(path.name + ".tmp")
  writer = ArrayRecordWriter(str(staging), WRITER_OPTIONS)
  stored, skipped = [], []
  try:
    # Threads: Pillow releases the GIL while decoding, resampling and encoding.
    for name, data in zip(names, pool.map(lambda n: _read(image_dir, n, resize), names)):
      if isinstance(data, str):
        logger.warning("not packed: %s (%s)", name, data)
        skipped.append(name)
      else:
        writer.write(data)
        stored.append(name)
      bar.update(1)
  finally:
    writer.close()
  os.replace(staging, path)
  return {"records": len(stored), "names": stored, "skipped": skipped}


def pack_folder(
  image_dir: str | os.PathLike,
  out: str | os.PathLike,
  *,
  resize: int | None = None,
  shard_size: int = DEFAULT_SHARD_SIZE,
  jobs: int = 4,
  progress: bool = True,
) -> PackResult:
  """Packs every image under `image_dir` into ArrayRecord shards in the folder `out`.

  Resumable and atomic: shards are written into ``.<out>.partial`` beside `out`, each
  renamed into place when complete with its index part saved after it, so a killed run's
  rerun (same photos and settings) keeps the finished shards; `out` appears, whole, when
  the last one is written. A folder already packed with the same photos and settings is
  left as it is.

  Args:
    resize: shrink photos whose longest side is larger to this many pixels (JPEG quality
      `JPEG_QUALITY`); None stores the files' bytes unchanged.
    shard_size: photos per shard.
    jobs: threads reading and resizing photos.
  """
  from tqdm import tqdm

  image_dir, out = pathlib.Path(image_dir), pathlib.Path(out).absolute()
  if not image_dir.is_dir():
    raise MissingFileError(f"image folder not found: {image_dir}")
  if (resize is not None and resize < 1) or shard_size < 1 or jobs < 1:
    raise ValueError(f"resize, shard_size and jobs must be ≥ 1: {resize}, {shard_size}, {jobs}")
  names = list_images(image_dir)
  if not names:
    raise DataError(f"no images ({', '.join(PACKED_EXTENSIONS)}) under {image_dir}")
  plan = _plan(names, resize, shard_size)
  if (out / MANIFEST).is_file():
    manifest = json.loads((out / MANIFEST).read_text())
    if manifest.get("plan") == plan:
      return PackResult(
        out, manifest["records"], len(manifest["shards"]), tuple(manifest["skipped"]), reused=True
      )

  partial = out.with_name(f".{out.name}.partial")
  if partial.is_dir():
    try:
      same = json.loads((partial / "plan.json").read_text()) == plan
    except (OSError, ValueError):
      same = False
    if not same:  # another run's leftovers: other photos or settings
      shutil.rmtree(partial)
  partial.mkdir(parents=True, exist_ok=True)
  atomic_write_text(partial / "plan.json", json.dumps(plan))

  count = -(-len(names) // shard_size)
  parts = []
  bar = tqdm(total=len(names), desc="pack", unit="img", disable=not progress, dynamic_ncols=True)
  with bar, concurrent.futures.ThreadPoolExecutor(jobs) as pool:
    for i in range(count):
      shard = partial / _shard_name(i, count)
      done = shard.with_name(shard.name + ".json")
      chunk = names[i * shard_size : (i + 1) * shard_size]
      if shard.is_file() and done.is_file():  # finished by an earlier, interrupted run
        parts.append(json.loads(done.read_text()))
        bar.update(len(chunk))
        continue
      parts.append(_write_shard(shard, image_dir, chunk, resize, pool, bar))
      atomic_write_text(done, json.dumps(parts[-1]))

  skipped = [name for part in parts for name in part["skipped"]]
  manifest = {
    "format": FORMAT,
    "plan": plan,
    "source": str(image_dir.absolute()),
    "records": sum(part["records"] for part in parts),
    "skipped": skipped,
    "shards": [
      {"file": _shard_name(i, count), "records": part["records"]} for i, part in enumerate(parts)
    ],
  }
  with atomic_folder(out, replace=True) as staging:
    with open(staging / INDEX, "w", newline="", encoding="utf-8") as f:
      writer = csv.writer(f)
      writer.writerow(["path", "shard", "position"])
      for i, part in enumerate(parts):
        writer.writerows(
          (spreadsheet_cell(name), _shard_name(i, count), position)
          for position, name in enumerate(part["names"])
        )
    for i in range(count):
      os.rename(partial / _shard_name(i, count), staging / _shard_name(i, count))
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
  shutil.rmtree(partial, ignore_errors=True)
  return PackResult(out, manifest["records"], count, tuple(skipped), reused=False)


# Reading --------------------------------------------------------------------------------


class PackedImages:
  """A packed folder, opened: `records` is the shards as one grain `ArrayRecordDataSource`
  (random access by global key, picklable: its readers open lazily in each process), and
  `keys_of` maps photos' relative paths to keys in it.

  The index (a dict of every photo) stays in the process that opened the folder; sources
  hand grain's workers only `records` and an array of keys.
  """

  def __init__(self, folder: str | os.PathLike):
    import grain

    self.folder = pathlib.Path(folder)
    manifest_path = self.folder / MANIFEST
    if not manifest_path.is_file():
      raise MissingFileError(
        f"not a packed folder (no {MANIFEST}; `landmark-jax prepare "
        f"gldv2 --pack` writes one): {self.folder}"
      )
    self.manifest = json.loads(manifest_path.read_text())
    if self.manifest.get("format") != FORMAT:
      raise DataError(
        f"{manifest_path}: packed format {self.manifest.get('format')!r}, this "
        f"version reads {FORMAT}: pack it again"
      )
    shards = self.manifest["shards"]
    for shard in shards:
      if not (self.folder / shard["file"]).is_file():
        raise MissingFileError(f"packed shard missing: {self.folder / shard['file']}")
    self.records = grain.sources.ArrayRecordDataSource(
      [str(self.folder / shard["file"]) for shard in shards]
    )
    if len(self.records) != self.manifest["records"]:
      raise DataError(
        f"{self.folder}: the shards hold {len(self.records)} records, the "
        f"manifest says {self.manifest['records']}: pack it again"
      )
    first_key = dict(
      zip((s["file"] for s in shards), np.cumsum([0] + [s["records"] for s in shards]).tolist())
    )
    self._keys: dict[str, int] = {}
    with open(self.folder / INDEX, newline="", encoding="utf-8") as f:
      rows = csv.reader(f)  # not DictReader: GLDv2's 4.1 M rows, a dict each, take seconds
      if next(rows, None) != ["path", "shard", "position"]:
        raise DataError(f"{self.folder / INDEX}: not a packed index (path,shard,position)")
      for path, shard, position in rows:
        if path[:1] == "'":  # `spreadsheet_cell`'s quote, if it added one
          path = unquote_cell(path)
        self._keys[path] = first_key[shard] + int(position)

  @property
  def resize(self) -> int | None:
    return self.manifest["plan"]["resize"]

  def __len__(self) -> int:
    return len(self.records)

  def __contains__(self, name: str) -> bool:
    return name in self._keys

  def keys_of(self, names: Sequence[str]) -> np.ndarray:
    """The record key of each relative path in `names`; -1 where a photo is not packed."""
    return np.fromiter(
      map(self._keys.get, names, itertools.repeat(-1, len(names))), np.int64, count=len(names)
    )

  def items(self) -> Iterator[tuple[str, bytes]]:
    """(relative path, encoded image) of every packed photo, in key order."""
    for name, key in sorted(self._keys.items(), key=lambda item: item[1]):
      yield name, self.records[key]
