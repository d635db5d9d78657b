"""Google Landmarks Dataset v2 onto local disk: its metadata CSVs, its 500 image tars
(each verified against its md5, extracted into the ``train/<a>/<b>/<c>/<id>.jpg`` layout
`GLDv2Source` reads) and, optionally, ArrayRecord shards packed from the photos.

The server's layout is GLDv2's own (https://github.com/cvdfoundation/google-landmark):
``{base}/metadata/train.csv``, ``{base}/train/images_NNN.tar`` and
``{base}/md5sum/train/md5.images_NNN.txt`` (``<md5>  images_NNN.tar``).

Everything is resumable: a part is recorded in ``<out>/prepare_state.json`` once its tar is
verified and extracted, so a rerun skips it; a killed download continues from its ``.part``
file; packing keeps the shards it finished (`landmark_jax.data.packed.pack_folder`).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import http.client
import json
import logging
import pathlib
import re
import threading
import urllib.error

from landmark_jax.errors import DataError, UsageError
from landmark_jax.folders import atomic_write_text
from landmark_jax.prepare.download import (
  ByteProgress,
  DownloadError,
  download,
  fetch_bytes,
  fetch_verified,
)
from landmark_jax.prepare.extract import extract_tar

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://s3.amazonaws.com/google-landmark"
NUM_PARTS = 500  # images_000.tar … images_499.tar
REQUIRED_METADATA = ("train.csv",)
OPTIONAL_METADATA = ("train_clean.csv", "train_label_to_category.csv")
STATE = "prepare_state.json"
IMAGE_DIR = "train"  # where the tars are extracted: GLDv2Source's default image folder
TAR_DIR = "tars"
PACKED_DIR = "packed"


def part_name(part: int) -> str:
  return f"images_{part:03d}"


def tar_url(base_url: str, part: int) -> str:
  return f"{base_url}/train/{part_name(part)}.tar"


def md5_url(base_url: str, part: int) -> str:
  return f"{base_url}/md5sum/train/md5.{part_name(part)}.txt"


def metadata_url(base_url: str, name: str) -> str:
  return f"{base_url}/metadata/{name}"


def parse_parts(text: str) -> range:
  """``A-B`` (inclusive) or ``N`` → the part numbers; each in 0..499.

  Raises:
    UsageError: anything else.
  """
  match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", text)
  if match:
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else first
    if first <= last < NUM_PARTS:
      return range(first, last + 1)
  raise UsageError(
    f"--parts {text!r}: give A-B with 0 ≤ A ≤ B ≤ {NUM_PARTS - 1} (or one part number)"
  )


def parse_md5_list(text: str, name: str) -> str:
  """The md5 of `name` in an md5sum listing (``<md5>  <file name>`` lines)."""
  for line in text.splitlines():
    fields = line.split()
    if (
      len(fields) == 2
      and fields[1].lstrip("*") == name
      and re.fullmatch(r"[0-9a-fA-F]{32}", fields[0])
    ):
      return fields[0].lower()
  raise DataError(f"the md5 list of {name} does not list it: {text[:200]!r}")


@dataclasses.dataclass(frozen=True)
class PrepareResult:
  out: pathlib.Path
  verified: dict[str, str]  # part name → md5 its tar was verified against (all asked parts)
  fetched: tuple[str, ...]  # parts downloaded and extracted by this run
  metadata: tuple[str, ...]  # metadata CSVs present in `out`
  packed: object | None  # landmark_jax.data.packed.PackResult, when packing


class _State:
  """The parts finished (verified and extracted), saved after each one: shared by the
  download threads, written atomically."""

  def __init__(self, path: pathlib.Path):
    self.path = path
    self._lock = threading.Lock()
    self.parts: dict[str, dict] = {}
    if path.is_file():
      try:
        self.parts = json.loads(path.read_text())["parts"]
      except (ValueError, KeyError, TypeError):
        raise DataError(
          f"{path} is not a prepare state file; delete it to start over "
          "(finished parts are then verified again)"
        ) from None

  def finish(self, name: str, md5: str, files: int) -> None:
    with self._lock:
      self.parts[name] = {"md5": md5, "files": files}
      atomic_write_text(self.path, json.dumps({"parts": self.parts}, indent=1, sort_keys=True))


def fetch_metadata(
  base_url: str, out: pathlib.Path, *, attempts: int = 3, progress: ByteProgress | None = None
) -> tuple[str, ...]:
  """The metadata CSVs in `out` (those already there are kept): train.csv must exist on
  the server; the others are skipped with a warning when it has none."""
  present = []
  for name in REQUIRED_METADATA + OPTIONAL_METADATA:
    dest = out / name
    if not dest.is_file():
      for attempt in range(1, attempts + 1):
        try:
          download(metadata_url(base_url, name), dest, progress)
          break
        except urllib.error.HTTPError as error:
          if error.code in (403, 404) and name in OPTIONAL_METADATA:
            logger.warning(
              "%s: HTTP %d, going without it", metadata_url(base_url, name), error.code
            )
            break
          if error.code in (403, 404) or attempt == attempts:
            raise DownloadError(
              f"{name}: HTTP {error.code} {error.reason}: {metadata_url(base_url, name)}"
            ) from None
        except (OSError, http.client.HTTPException) as error:  # reset, timeout, cut short
          if attempt == attempts:
            raise DownloadError(f"{name}: {error}: {metadata_url(base_url, name)}") from None
    if dest.is_file():
      present.append(name)
  return tuple(present)


def _prepare_part(
  part: int,
  base_url: str,
  out: pathlib.Path,
  state: _State,
  *,
  attempts: int,
  keep_tars: bool,
  progress: ByteProgress,
) -> str:
  name = part_name(part)
  try:
    md5 = parse_md5_list(fetch_bytes(md5_url(base_url, part)).decode(), f"{name}.tar")
  except (OSError, UnicodeDecodeError) as error:
    raise DownloadError(
      f"{name}: its md5 list could not be read ({error}): {md5_url(base_url, part)}"
    ) from None
  tar = out / TAR_DIR / f"{name}.tar"
  fetch_verified(tar_url(base_url, part), tar, md5, attempts=attempts, progress=progress)
  files = extract_tar(tar, out / IMAGE_DIR)
  state.finish(name, md5, files)
  if not keep_tars:
    tar.unlink()
  return name


def prepare_gldv2(
  out: str | pathlib.Path,
  *,
  base_url: str = DEFAULT_BASE_URL,
  parts: range = range(NUM_PARTS),
  jobs: int = 4,
  attempts: int = 3,
  keep_tars: bool = False,
  pack: bool = False,
  resize: int | None = None,
  shard_size: int | None = None,
  progress: bool = True,
) -> PrepareResult:
  """Downloads, verifies and extracts GLDv2's `parts` into `out`; then packs, if asked.

  Args:
    base_url: the server's root (GLDv2's layout under it).
    jobs: parts downloaded at once (threads); also the threads that resize when packing.
    attempts: tries per file before an error naming it.
    keep_tars: keep each verified tar in ``<out>/tars`` after extracting it (else deleted:
      GLDv2's tars are ~500 GB).
    pack: pack every photo of ``<out>/train`` into ArrayRecord shards in ``<out>/packed``.
    resize: while packing, shrink photos to this longest side (JPEG re-encode).
    shard_size: photos per shard (default: `packed.DEFAULT_SHARD_SIZE`).

  Raises:
    DownloadError: a file that could not be fetched or stayed corrupt, naming it. Parts
      finished before it stay finished.
  """
  from tqdm import tqdm

  out = pathlib.Path(out)
  base_url = base_url.rstrip("/")
  out.mkdir(parents=True, exist_ok=True)
  (out / TAR_DIR).mkdir(exist_ok=True)
  state = _State(out / STATE)
  todo = [p for p in parts if part_name(p) not in state.parts]
  if not keep_tars:  # a run killed between recording a part and deleting its tar
    for p in parts:
      if part_name(p) in state.parts:
        (out / TAR_DIR / f"{part_name(p)}.tar").unlink(missing_ok=True)

  bar = tqdm(
    total=0,
    desc="download",
    unit="B",
    unit_scale=True,
    unit_divisor=1024,
    disable=not progress,
    dynamic_ncols=True,
  )
  with bar:
    bytes_progress = ByteProgress(bar)
    metadata = fetch_metadata(base_url, out, attempts=attempts, progress=bytes_progress)
    fetched = []
    with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
      futures = [
        pool.submit(
          _prepare_part,
          p,
          base_url,
          out,
          state,
          attempts=attempts,
          keep_tars=keep_tars,
          progress=bytes_progress,
        )
        for p in todo
      ]
      try:
        for future in concurrent.futures.as_completed(futures):
          fetched.append(future.result())
      except BaseException:
        # Parts not started are dropped; running downloads stop at their next chunk, their
        # .part kept for the next run.
        for future in futures:
          future.cancel()
        bytes_progress.cancel()
        raise

  packed = None
  if pack or resize:
    from landmark_jax.data.packed import DEFAULT_SHARD_SIZE, pack_folder

    packed = pack_folder(
      out / IMAGE_DIR,
      out / PACKED_DIR,
      resize=resize,
      shard_size=shard_size or DEFAULT_SHARD_SIZE,
      jobs=max(1, jobs),
      progress=progress,
    )
  verified = {part_name(p): state.parts[part_name(p)]["md5"] for p in parts}
  return PrepareResult(out, verified, tuple(sorted(fetched)), metadata, packed)
