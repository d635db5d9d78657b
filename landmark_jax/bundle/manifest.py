"""An inference bundle's layout and its one checksummed manifest, ``bundle.json``.

The manifest records the size and sha256 of every file of the bundle (the index's own
files and manifest among them) and its own sha256 over the rest of it, with the code of
`index.integrity`; `verified_manifest` checks them all before anything is read, so a
damaged, missing or extra file is refused naming it. Editing the bundle's index
(`editing_index`) refreshes the index's records under the index's write lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pathlib
import time
from typing import Any, Iterator

from landmark_jax.errors import UserError
from landmark_jax.folders import atomic_write_text, exclusive_writer
from landmark_jax.index import integrity

FORMAT_VERSION = 1
KIND = "landmark-jax inference bundle"
MANIFEST = "bundle.json"
WEIGHTS = "weights.safetensors"  # params/… and batch_stats/…, flattened with "/"
CONFIG = "config.json"  # the run's whole TrainConfig
LABEL_MAP = "label_map.json"
INDEX_DIR = "index"  # a copy of the index folder, with its own manifest
JAX_EXPORT = "embed.jax_export"  # optional: `LandmarkNet.embed`, weights baked in
REQUIRED = (WEIGHTS, CONFIG, LABEL_MAP, f"{INDEX_DIR}/{integrity.MANIFEST}")
# What writers leave beside the folders they replace, at the bundle's top level: the
# index's lock, staging and backup folders (`folders`), the manifest's staging file.
WRITER_PREFIXES = (f".{INDEX_DIR}.", f".{MANIFEST}.")


class BundleError(UserError, ValueError):
  """An inference bundle that cannot be loaded or written; the message names the file."""


def _writers_entry(name: str) -> bool:
  return name.split("/", 1)[0].startswith(WRITER_PREFIXES)


def bundle_records(folder: pathlib.Path) -> dict[str, dict[str, Any]]:
  """Size and sha256 of every file of the bundle at `folder` but its manifest."""
  records = integrity.file_records(folder, MANIFEST)
  return {name: record for name, record in records.items() if not _writers_entry(name)}


def model_id(records: dict[str, dict[str, Any]]) -> str:
  """The bundle's own model id: the weights' and the config's checksums, in one."""
  both = (records[WEIGHTS]["sha256"] + records[CONFIG]["sha256"]).encode()
  return f"sha256:{hashlib.sha256(both).hexdigest()[:16]}"


def write_manifest(folder: pathlib.Path, fields: dict[str, Any]) -> dict[str, Any]:
  """Writes `fields` with the records of every file now in `folder`, sealed; returns it."""
  records = bundle_records(folder)
  manifest = integrity.sealed(
    {
      "format_version": FORMAT_VERSION,
      "kind": KIND,
      "model_id": model_id(records),
      **fields,
      "files": records,
    }
  )
  atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=2))
  return manifest


def _read(path: pathlib.Path) -> dict[str, Any]:
  try:
    # Bounded as an index's manifest is: a huge one is refused before it is read.
    data = integrity.read_bounded(path, error=BundleError)
    manifest = json.loads(data.decode("utf-8"))
  except (UnicodeDecodeError, json.JSONDecodeError) as e:
    raise BundleError(f"damaged bundle file {path}: {type(e).__name__}: {e}") from None
  if not isinstance(manifest, dict):
    raise BundleError(f"{path}: holds a JSON {type(manifest).__name__}, not an object")
  return manifest


def _missing_bundle(folder: pathlib.Path) -> BundleError:
  if not folder.exists():
    return BundleError(f"no bundle at {folder}")
  if not folder.is_dir():
    return BundleError(f"{folder} is a file; a bundle is a folder (the --out of export)")
  if (folder / CONFIG).is_file() and (folder / "checkpoints").is_dir():
    return BundleError(
      f"{folder} is a training workdir, not a bundle: give its index too (--checkpoint "
      "and --index), or make a bundle with `landmark-jax export`"
    )
  return BundleError(f"bundle file missing: {folder / MANIFEST} (is {folder} a bundle?)")


def verified_manifest(folder: str | os.PathLike) -> dict[str, Any]:
  """The manifest of the bundle at `folder`, after checking every file against it: each
  listed file there with its size and sha256, no other file, the manifest's own digest.
  Any failure is a `BundleError` naming the file."""
  folder = pathlib.Path(folder).absolute()
  path = folder / MANIFEST
  if not path.is_file():
    raise _missing_bundle(folder)
  manifest = _read(path)
  version = manifest.get("format_version")
  if type(version) is not int or version != FORMAT_VERSION or manifest.get("kind") != KIND:
    raise BundleError(
      f"{path}: not a bundle this library reads ({manifest.get('kind')!r}, format_version "
      f"{version!r}; it reads {KIND!r} version {FORMAT_VERSION})"
    )
  if manifest.get(integrity.MANIFEST_DIGEST) != integrity.manifest_digest(manifest):
    raise BundleError(
      f"{path}: damaged or edited after it was written ({integrity.MANIFEST_DIGEST} does "
      "not match its content); export the bundle again"
    )
  listed = integrity.listed_files(path, manifest, required=REQUIRED, error=BundleError)
  for name, record in listed.items():
    integrity.check_file(folder / name, record, what="bundle", error=BundleError)
  present = (p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*")) if p.is_file())
  stray = [n for n in present if n not in listed and n != MANIFEST and not _writers_entry(n)]
  if stray:
    raise BundleError(
      f"{folder / stray[0]}: not listed in {path}, so not part of the bundle as exported"
    )
  return manifest


@contextlib.contextmanager
def editing_index(folder: str | os.PathLike) -> Iterator[pathlib.Path]:
  """The bundle's index folder, to edit in place (`landmark-jax add-landmarks`, …): under
  the index's write lock, the bundle checked first, and the manifest's records of the index
  refreshed after (also after a failed edit: the index's save is atomic, so the index is
  then the old one or the new one, whole). The records of the model's files are kept as
  they were, so a damaged weights file stays refused."""
  folder = pathlib.Path(folder).absolute()
  index_dir = folder / INDEX_DIR
  with exclusive_writer(index_dir):
    manifest = verified_manifest(folder)
    try:
      yield index_dir
    finally:
      records = {
        name: record
        for name, record in manifest["files"].items()
        if not name.startswith(f"{INDEX_DIR}/")
      }
      records.update(
        (f"{INDEX_DIR}/{name}", record)
        for name, record in integrity.file_records(index_dir, None).items()
      )
      fields = {key: value for key, value in manifest.items() if key != "files"}
      fields["index_edited"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
      sealed = integrity.sealed({**fields, "files": dict(sorted(records.items()))})
      atomic_write_text(folder / MANIFEST, json.dumps(sealed, indent=2))
