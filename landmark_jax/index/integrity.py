"""Checking a saved index against itself: `CentroidIndex.load` trusts nothing it reads.

The manifest records the size and sha256 of every other file at save (format version 2),
and its own sha256 over the rest of it; at load each file must match, no index file may be
there that the manifest does not list, and
the parts must agree (labels for as many centroids as there are, finite centroids, labels
the label map covers, an η that is a similarity, a verification band beside the local
features it verifies with). Any failure is an `IndexFormatError`
naming the file, instead of an index that loads and then fails every query. The checksums
cost one more read of every file at save and at load, 1-2 s per GB on one core;
`hashlib.file_digest` streams, so memory does not grow. Version 1 indexes (no checksums)
are read only when the caller allows it (`--allow-unchecked-index`), and then checked for
everything but the checksums.

Checksums catch damage, not a file written on purpose (or by another tool) and re-sealed,
so the parts are also checked against each other before anything large is read: every
``.npy`` header (ScaNN's too) against the shape the manifest implies and the file's size,
ScaNN's copy of the data against the centroids, unit-norm vectors, a manifest of bounded
size.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import math
import os
import pathlib
from typing import Any, Iterator

import numpy as np

from landmark_jax.data.labels import LabelMap
from landmark_jax.errors import UserError

FORMAT_VERSION = 2  # 2: the manifest records every file's size and sha256
READABLE_VERSIONS = (1, 2)  # 1: no checksums, read so that users' existing indexes still work
MANIFEST = "manifest.json"
MANIFEST_DIGEST = "manifest_sha256"  # the manifest's own checksum, over the rest of it
REQUIRED_FILES = ("centroids.npy", "labels.npy", "cluster_sizes.npy")
OPTIONAL_FILES = (
  "label_map.json",
  "landmarks.csv",
  "validation_embeddings.npy",
  "validation.json",
  "references.npy",
  "reference_labels.npy",
  # The reference photos' local features (`local_features`: all six or none).
  "local_descriptors.npy",
  "local_keypoints.npy",
  "local_offsets.npy",
  "local_photo_labels.npy",
  "local_photos.json",
  "local_extractor.safetensors",
)
SCANN_DIR = "scann"
# Calibration puts η one float32 step above a similarity, and float32 dot products of unit
# vectors can exceed 1 by rounding, so a calibrated η may sit a hair outside [-1, 1].
ETA_SLACK = 1e-4
# A manifest is read whole before anything else; a GLDv2 build's edit records are about
# 2 MB, so 16 MiB leaves room and bounds what a hostile manifest costs.
MAX_MANIFEST_BYTES = 16 * 2**20
# Centroids, references and validation embeddings are unit vectors (dot product = cosine):
# float32 rounding leaves ~1e-7; anything past this was not built by this library.
NORM_TOLERANCE = 1e-3
UNCHECKED_HINT = (
  "format 1 has no checksums; pass --allow-unchecked-index once to an edit "
  "(e.g. update-landmarks) to re-save it as format 2"
)
# Whether `CentroidIndex.load` reads format-1 indexes when its caller does not say: the
# command line sets it for one command (`--allow-unchecked-index`, `allowing_unchecked`).
_unchecked_allowed = contextvars.ContextVar("unchecked_index_allowed", default=False)


@contextlib.contextmanager
def allowing_unchecked(allowed: bool = True) -> Iterator[None]:
  """Format-1 indexes (no checksums) load inside the block (`--allow-unchecked-index`)."""
  token = _unchecked_allowed.set(allowed)
  try:
    yield
  finally:
    _unchecked_allowed.reset(token)


def unchecked_allowed(allow: bool | None = None) -> bool:
  """`allow`, or (None) what the enclosing `allowing_unchecked` says."""
  return _unchecked_allowed.get() if allow is None else allow


class IndexFormatError(UserError, ValueError):
  """An index directory that cannot be loaded; the message names the problem."""


def read_file(path: pathlib.Path, reader):
  """`reader(path)`, with any failure to parse a damaged file reported as the index's."""
  try:
    return reader(path)
  except IndexFormatError:
    raise
  except Exception as e:  # numpy, JSON, CSV, Unicode and ScaNN each fail their own way
    reason = " ".join(f"{type(e).__name__}: {e}".split())  # one line, as the CLI prints it
    if "pickled" in reason:  # numpy suggests allow_pickle: an index never holds objects
      reason = "not a plain numeric array (object data), as an index file always is"
    raise IndexFormatError(f"damaged index file {path}: {reason}") from None


def sha256_of(path: pathlib.Path) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def file_records(
  folder: pathlib.Path, manifest: str | None = MANIFEST
) -> dict[str, dict[str, Any]]:
  """Size and sha256 of every file under `folder` but its `manifest` (an index's, or another
  checksummed folder's: an inference bundle's; None: every file), by relative posix path."""
  return {
    path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size, "sha256": sha256_of(path)}
    for path in sorted(folder.rglob("*"))
    if path.is_file() and (manifest is None or path != folder / manifest)
  }


def _index_files(directory: pathlib.Path) -> list[str]:
  """The files in `directory` that belong to an index (what `load` reads, and ScaNN's)."""
  names = [name for name in REQUIRED_FILES + OPTIONAL_FILES if (directory / name).is_file()]
  return names + sorted(
    path.relative_to(directory).as_posix()
    for path in (directory / SCANN_DIR).rglob("*")
    if path.is_file()
  )


def read_bounded(
  path: pathlib.Path, limit: int | None = None, error: type[UserError] | None = None
) -> bytes:
  """`path`'s bytes, refused (`error`, by default `IndexFormatError`) past `limit` (by
  default `MAX_MANIFEST_BYTES`) before they are read: its size from the open file, and
  never more than `limit` + 1 bytes read."""
  limit = MAX_MANIFEST_BYTES if limit is None else limit
  error = error or IndexFormatError
  with open(path, "rb") as f:
    size = os.fstat(f.fileno()).st_size
    data = f.read(limit + 1) if size <= limit else b""
  if size > limit or len(data) > limit:
    raise error(
      f"{path}: {max(size, len(data))} bytes, more than a manifest ever needs "
      f"({limit // 2**20} MiB); not read"
    )
  return data


def read_manifest(path: pathlib.Path) -> dict[str, Any]:
  # Strict UTF-8 whatever the locale; `_read` reports the decoding and JSON errors.
  manifest = json.loads(read_bounded(path).decode("utf-8"))
  if not isinstance(manifest, dict):
    raise IndexFormatError(f"{path}: holds a JSON {type(manifest).__name__}, not an object")
  return manifest


def manifest_digest(manifest: dict[str, Any]) -> str:
  """sha256 of the manifest's content but its own digest, as canonical JSON (sorted keys)."""
  content = {key: value for key, value in manifest.items() if key != MANIFEST_DIGEST}
  return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def sealed(manifest: dict[str, Any]) -> dict[str, Any]:
  """`manifest` with its digest, computed over what `load` will parse back (JSON turns
  tuples into lists and keys into strings)."""
  parsed = json.loads(json.dumps(manifest))
  return {**parsed, MANIFEST_DIGEST: manifest_digest(parsed)}


def check_manifest_digest(path: pathlib.Path, manifest: dict[str, Any]) -> None:
  """A byte changed in the manifest (its counts, η, the other files' checksums) is caught
  like one changed in any other file. Version 1 manifests have no digest."""
  if manifest["format_version"] == 1:
    return
  if manifest.get(MANIFEST_DIGEST) != manifest_digest(manifest):
    raise IndexFormatError(
      f"{path}: damaged or edited after it was saved ({MANIFEST_DIGEST} "
      "does not match its content); restore the index, or build it again "
      "(η is stored by `landmark-jax calibrate`)"
    )


def check_format_version(
  path: pathlib.Path, manifest: dict[str, Any], *, allow_unchecked: bool = False
) -> None:
  """A version this library reads; version 1 (no checksums: a manifest can be made one by
  deleting two keys) only with `allow_unchecked`."""
  version = manifest.get("format_version")
  if type(version) is not int or version not in READABLE_VERSIONS:  # JSON true == 1 in Python
    raise IndexFormatError(
      f"{path}: format_version {version!r}, this library reads "
      f"{' and '.join(map(str, READABLE_VERSIONS))}"
    )
  if version == 1 and not allow_unchecked:
    raise IndexFormatError(f"{path}: {UNCHECKED_HINT}")


def listed_files(
  path: pathlib.Path,
  manifest: dict[str, Any],
  *,
  required: tuple[str, ...] = REQUIRED_FILES,
  error: type[UserError] = IndexFormatError,
) -> dict[str, dict[str, Any]]:
  """The manifest's (at `path`) ``files``: each a size and a sha256 of a file inside its
  folder (a manifest naming ``../x`` must not make `load` read outside it), `required` among
  them."""
  files = manifest.get("files")
  if not isinstance(files, dict):
    raise error(
      f"{path}: format_version {manifest.get('format_version')} without its "
      "'files' table of checksums"
    )
  for name, record in files.items():
    parts = pathlib.PurePosixPath(name).parts
    if (
      not parts
      or parts[0] == "/"
      or ".." in parts
      or name == path.name
      or not isinstance(record, dict)
      or type(record.get("bytes")) is not int
      or not isinstance(record.get("sha256"), str)
    ):
      raise error(f"{path}: files: malformed entry {name!r}: {record!r}")
  unlisted = [name for name in required if name not in files]
  if unlisted:
    raise error(f"{path}: files does not list {', '.join(unlisted)}")
  return files


def check_file(
  path: pathlib.Path,
  record: dict[str, Any],
  *,
  what: str = "index",
  error: type[UserError] = IndexFormatError,
) -> None:
  """`path` is there, of its manifest `record`'s size and sha256; else `error` naming it
  (`what`: whose file, for the message)."""
  if not path.is_file():
    raise error(f"{what} file missing: {path}")
  size = path.stat().st_size
  if size != record["bytes"]:
    raise error(f"{path}: truncated or extended: {size} bytes, manifest says {record['bytes']}")
  if sha256_of(path) != record["sha256"]:
    raise error(f"{path}: damaged: checksum mismatch (sha256 differs from the manifest's)")


def check_files(directory: pathlib.Path, manifest: dict[str, Any]) -> None:
  """Every listed file is there, of the size and sha256 the manifest recorded, and no index
  file is there that it does not list (one from another save would be read as this one's).
  A version-1 manifest records nothing: only the required files' presence is checked."""
  if manifest["format_version"] == 1:
    for name in REQUIRED_FILES:
      if not (directory / name).is_file():
        raise IndexFormatError(f"index file missing: {directory / name}")
    return
  listed = listed_files(directory / MANIFEST, manifest)
  for name, record in listed.items():
    check_file(directory / name, record)
  stray = [name for name in _index_files(directory) if name not in listed]
  if stray:
    raise IndexFormatError(
      f"{directory / stray[0]}: not listed in {directory / MANIFEST}, "
      f"so not part of the index as saved"
    )


def check_manifest_fields(path: pathlib.Path, manifest: dict[str, Any]) -> None:
  """The counts and backend that the files are read and checked by."""
  for key in ("embedding_dim", "num_centroids", "num_landmarks"):
    value = manifest.get(key)
    if type(value) is not int or value < 1:
      raise IndexFormatError(f"{path}: {key} {value!r}, expected a positive integer")
  if manifest.get("backend") not in ("scann", "exact"):
    raise IndexFormatError(f"{path}: backend {manifest.get('backend')!r}, expected scann or exact")
  _check_eta(path, manifest)
  _check_search_settings(path, manifest)
  _check_local_features(path, manifest)
  _check_verification(path, manifest)


def _check_search_settings(path: pathlib.Path, manifest: dict[str, Any]) -> None:
  """A ScaNN tree's settings, which every search passes on (`CentroidIndex.search`), are
  positive counts; the record of a tuning (`build-index --target-recall`, optional: indexes
  built before it have none) holds recalls that are shares."""
  scann = manifest.get("scann")
  if scann is None:  # the searcher's defaults, as saved in its assets
    return
  if not isinstance(scann, dict):
    raise IndexFormatError(f"{path}: scann {scann!r}, expected an object")
  if manifest["backend"] == "scann" and scann.get("mode") == "tree_ah":
    for key in ("num_leaves", "leaves_to_search", "reorder"):
      if type(scann.get(key)) is not int or scann[key] < 1:
        raise IndexFormatError(
          f"{path}: scann.{key} {scann.get(key)!r}, expected a positive integer"
        )
  tuning = scann.get("tuning")
  if tuning is None:
    return
  if not isinstance(tuning, dict):
    raise IndexFormatError(f"{path}: scann.tuning {tuning!r}, expected an object")
  for key in ("target_recall", "recall_at_1", "recall_at_1_above_eta"):
    value = tuning.get(key)
    if value is not None and (type(value) not in (int, float) or not 0 <= value <= 1):
      raise IndexFormatError(f"{path}: scann.tuning.{key} {value!r}, expected a share in [0, 1]")


def _check_eta(path: pathlib.Path, manifest: dict[str, Any]) -> None:
  """A calibrated η (and ρ with η alone beside it, with class references; an older index's
  `eta_with_references`, `calibration_fields`) is a cosine similarity.
  Python's JSON parses NaN and Infinity, and an η of NaN (or above 1) would quietly answer
  "no landmark" to every photo."""
  for key in ("eta", "reference_threshold", "eta_without_references", "eta_with_references"):
    value = manifest.get(key)
    if value is None:  # never calibrated: `Recognizer` answers the nearest landmark, and warns
      continue
    if type(value) not in (int, float) or not math.isfinite(value) or abs(value) > 1 + ETA_SLACK:
      raise IndexFormatError(
        f"{path}: {key} {value!r} is not a similarity threshold (a finite "
        "number in [-1, 1]); run `landmark-jax calibrate` again"
      )


def _check_local_features(path: pathlib.Path, manifest: dict[str, Any]) -> None:
  """The ``local_features`` record (`local_features.LocalFeatureStore.summary`): counts, and
  settings that are JSON values; its loader checks the counts against the files."""
  record = manifest.get("local_features")
  if record is None:  # no stored local features
    return
  if not isinstance(record, dict):
    raise IndexFormatError(f"{path}: local_features {record!r}, expected an object")
  for key, least in (("photos", 0), ("features", 0), ("descriptor_dim", 1)):
    if type(record.get(key)) is not int or record[key] < least:
      raise IndexFormatError(
        f"{path}: local_features.{key} {record.get(key)!r}, expected an integer ≥ {least}"
      )
  settings = record.get("settings")
  try:  # Python's JSON parses NaN, which no setting is
    valid = isinstance(settings, dict) and bool(json.dumps(settings, allow_nan=False))
  except ValueError:
    valid = False
  if not valid:
    raise IndexFormatError(
      f"{path}: local_features.settings {settings!r}, expected an object of JSON values"
    )


def _check_verification(path: pathlib.Path, manifest: dict[str, Any]) -> None:
  """The calibrated band of verified answers (`index.verify_rule.VerifyBand`, and the budget
  it was chosen within), applied with the stored local features: a NaN edge would quietly
  verify nothing, or everything."""
  record = manifest.get("verification")
  if record is None:  # never calibrated: recognition verifies nothing
    return
  if not isinstance(record, dict):
    raise IndexFormatError(f"{path}: verification {record!r}, expected an object")
  for key, low, high in (("below", 0, 2), ("above", 0, 2), ("budget", 0, 1)):
    value = record.get(key)
    if type(value) not in (int, float) or not math.isfinite(value) or not low <= value <= high:
      raise IndexFormatError(
        f"{path}: verification.{key} {value!r}, expected a number in [{low}, {high}]; "
        "run `landmark-jax calibrate` again"
      )
  for key, least in (("min_inliers", 0), ("candidates", 1)):
    if type(record.get(key)) is not int or record[key] < least:
      raise IndexFormatError(
        f"{path}: verification.{key} {record.get(key)!r}, expected an integer ≥ {least}"
      )
  if manifest.get("local_features") is None:
    raise IndexFormatError(
      f"{path}: verification calibrated, but the index stores no local features to verify with"
    )


def _all_finite(array: np.ndarray, rows: int = 65_536) -> bool:
  # In slices: np.isfinite over a GLDv2 index's 2 GB of centroids would allocate 0.5 GB more.
  return all(np.isfinite(array[i : i + rows]).all() for i in range(0, len(array), rows))


def _check_per_centroid(
  path: pathlib.Path, array: np.ndarray, num_centroids: int, minimum: int
) -> None:
  """`array` holds one integer ≥ `minimum` per centroid."""
  if array.ndim != 1 or array.dtype.kind not in "iu" or len(array) != num_centroids:
    raise IndexFormatError(
      f"{path}: {array.dtype} array of shape {array.shape}, expected "
      f"{num_centroids} integers, one per centroid"
    )
  if array.min() < minimum:
    raise IndexFormatError(f"{path}: holds {array.min()}, every value must be ≥ {minimum}")


def check_arrays(
  directory: pathlib.Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray]
) -> None:
  """The three arrays agree with the manifest's counts and with each other; the centroids
  are finite unit vectors."""
  path, centroids = directory / "centroids.npy", arrays["centroids.npy"]
  num_centroids, dim = manifest["num_centroids"], manifest["embedding_dim"]
  if centroids.dtype != np.float32 or centroids.shape != (num_centroids, dim):
    raise IndexFormatError(
      f"{path}: {centroids.dtype} array of shape {centroids.shape}, {directory / MANIFEST} "
      f"says float32 ({num_centroids}, {dim}) (num_centroids, embedding_dim)"
    )
  if not _all_finite(centroids):
    raise IndexFormatError(f"{path}: holds NaN or infinite values")
  check_unit_norms(path, centroids)
  labels = arrays["labels.npy"]
  _check_per_centroid(directory / "labels.npy", labels, num_centroids, minimum=0)
  _check_per_centroid(
    directory / "cluster_sizes.npy", arrays["cluster_sizes.npy"], num_centroids, minimum=1
  )
  distinct = len(np.unique(labels))
  if distinct != manifest["num_landmarks"]:
    raise IndexFormatError(
      f"{directory / MANIFEST}: num_landmarks {manifest['num_landmarks']}, "
      f"{directory / 'labels.npy'} holds {distinct} distinct labels"
    )


def check_label_map(directory: pathlib.Path, labels: np.ndarray, label_map: LabelMap) -> None:
  """Every centroid's label names a landmark of the label map (else `recognize` fails)."""
  largest = int(labels.max())
  if largest >= label_map.num_classes:
    raise IndexFormatError(
      f"{directory / 'labels.npy'}: label {largest} is beyond "
      f"{directory / 'label_map.json'} ({label_map.num_classes} landmarks)"
    )


# Arrays checked before they are read ----------------------------------------------------

INTEGERS = "iu"


def check_npy(
  path: pathlib.Path,
  shape: tuple[int | None, ...] | None = None,
  kinds: str | np.dtype | None = None,
  said_by: pathlib.Path | None = None,
) -> tuple[tuple[int, ...], np.dtype]:
  """`path`'s ``.npy`` header, checked before the array is read (by numpy or by ScaNN's
  C++, which trusts it): a plain array whose header's shape × itemsize is exactly the
  bytes after it, of `shape` (None: any length on that axis) and of dtype `kinds` (a dtype,
  or dtype kinds such as "iu"; `said_by`: the manifest the shape comes from, named in the
  error). A header claiming more rows than the file holds would otherwise be read past its
  end or allocated whole. Returns (shape, dtype)."""
  with open(path, "rb") as f:
    try:
      version = np.lib.format.read_magic(f)
      if version == (1, 0):
        found, fortran, dtype = np.lib.format.read_array_header_1_0(f)
      elif version == (2, 0):
        found, fortran, dtype = np.lib.format.read_array_header_2_0(f)
      else:
        raise ValueError(f"npy format {version}")
    except ValueError as e:
      raise IndexFormatError(f"{path}: not a .npy array ({' '.join(str(e).split())})") from None
    offset = f.tell()
    size = os.fstat(f.fileno()).st_size
  if dtype.hasobject or dtype.itemsize == 0 or fortran and len(found) > 1:
    raise IndexFormatError(
      f"{path}: {dtype} array (object data would need allow_pickle), not a plain C-ordered "
      "numeric array as an index file always is"
    )
  expected = offset + math.prod(found) * dtype.itemsize
  if size != expected:
    raise IndexFormatError(
      f"{path}: its header says {dtype} {found} ({expected} bytes with it), the file has {size}"
    )
  wrong_dtype = kinds is not None and (
    dtype.kind not in kinds if isinstance(kinds, str) else dtype != np.dtype(kinds)
  )
  wrong_shape = shape is not None and (
    len(found) != len(shape) or any(want not in (None, n) for want, n in zip(shape, found))
  )
  if wrong_dtype or wrong_shape:
    wanted = "" if shape is None else " " + _shape_name(shape)
    raise IndexFormatError(
      f"{path}: {dtype} array of shape {found}, expected "
      f"{'an array' if kinds is None else _dtype_name(kinds)}{wanted}"
      + (f" as {said_by} says" if said_by is not None else "")
    )
  return found, dtype


def _shape_name(shape: tuple[int | None, ...]) -> str:
  names = ["n" if n is None else str(n) for n in shape]
  return f"({names[0]},)" if len(names) == 1 else f"({', '.join(names)})"


def _dtype_name(kinds: str | np.dtype) -> str:
  return "integers" if kinds == INTEGERS else str(np.dtype(kinds))


def npy_expectations(manifest: dict[str, Any]) -> dict[str, tuple[tuple, str | np.dtype]]:
  """The shape and dtype of each ``.npy`` file an index may hold, from its manifest's counts
  (None: a count the manifest does not record; the file's size still bounds it)."""
  n, dim = manifest["num_centroids"], manifest["embedding_dim"]
  local = manifest.get("local_features") or {}
  features, local_dim = local.get("features"), local.get("descriptor_dim")
  return {
    "centroids.npy": ((n, dim), np.float32),
    "labels.npy": ((n,), INTEGERS),
    "cluster_sizes.npy": ((n,), INTEGERS),
    "references.npy": ((None, dim), np.float32),
    "reference_labels.npy": ((None,), INTEGERS),
    "validation_embeddings.npy": ((None, dim), np.float32),
    "local_descriptors.npy": ((features, local_dim), np.int8),
    "local_keypoints.npy": ((features, 2), np.float16),
    "local_offsets.npy": ((None,), INTEGERS),
    "local_photo_labels.npy": ((local.get("photos"),), INTEGERS),
    # ScaNN's assets: its copy of the centroids, and (a tree) each one's partition and code.
    f"{SCANN_DIR}/dataset.npy": ((n, dim), np.float32),
    f"{SCANN_DIR}/datapoint_to_token.npy": ((n,), INTEGERS),
    f"{SCANN_DIR}/hashed_dataset.npy": ((n, None), np.uint8),
  }


def check_npy_files(
  directory: pathlib.Path, manifest: dict[str, Any], *, skip: tuple[str, ...] = ()
) -> None:
  """Every ``.npy`` file of the index (`check_npy`), ScaNN's included, before any is read,
  but those in `skip` (read later, and checked then)."""
  expected = npy_expectations(manifest)
  for name in _index_files(directory):
    if name.endswith(".npy") and name not in skip:
      check_npy(directory / name, *expected.get(name, (None, None)), directory / MANIFEST)


def check_unit_norms(path: pathlib.Path, vectors: np.ndarray, rows: int = 65_536) -> None:
  """Each row of `vectors` is a unit vector, within `NORM_TOLERANCE` (in slices, as
  `_all_finite`): scores are cosines only then, and η is calibrated on cosines."""
  for start in range(0, len(vectors), rows):
    block = np.asarray(vectors[start : start + rows], np.float64)
    norms = np.sqrt(np.einsum("ij,ij->i", block, block))
    bad = np.flatnonzero(~(np.abs(norms - 1) <= NORM_TOLERANCE))
    if len(bad):
      row = start + int(bad[0])
      raise IndexFormatError(
        f"{path}: row {row} has norm {norms[bad[0]]:.6g}, and an index holds unit vectors "
        f"(norm 1 ± {NORM_TOLERANCE:g}); built by another tool? build it again with "
        "`landmark-jax build-index`"
      )


def check_scann_assets(
  directory: pathlib.Path, manifest: dict[str, Any], centroids: np.ndarray
) -> None:
  """ScaNN's saved data agrees with the index before ScaNN reads it (its headers already
  checked, `check_npy_files`): its copy of the dataset is the centroids (ScaNN keeps them
  as given, and scores by them: a different copy answers other neighbours), and a tree's
  partition of each centroid is one of its partitions."""
  folder = directory / SCANN_DIR
  dataset = folder / "dataset.npy"
  if dataset.is_file():
    copy = np.load(dataset, mmap_mode="r")
    rows = 65_536
    same = all(
      np.array_equal(copy[i : i + rows], centroids[i : i + rows])
      for i in range(0, len(centroids), rows)
    )
    if not same:
      raise IndexFormatError(f"{dataset}: ScaNN's copy of the data differs from the centroids")
  tokens = folder / "datapoint_to_token.npy"
  if tokens.is_file():
    leaves = (manifest.get("scann") or {}).get("num_leaves")
    values = np.load(tokens, allow_pickle=False)
    if len(values) and (values.min() < 0 or (type(leaves) is int and values.max() >= leaves)):
      raise IndexFormatError(
        f"{tokens}: partitions {values.min()}..{values.max()}, the tree has {leaves}"
      )
