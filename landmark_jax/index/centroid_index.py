"""`CentroidIndex`: nearest-centroid search by dot product (ScaNN, or exact), saved atomically.

A directory holds ``manifest.json`` (format version, dimension, counts, backend and ScaNN
settings, the model checkpoint it came from, the threshold η once calibrated, and the size
and sha256 of every other file), ``centroids.npy`` / ``labels.npy`` / ``cluster_sizes.npy``
(read with ``allow_pickle=False``), ``label_map.json`` and ``landmarks.csv`` (names,
coordinates) when given, and ``scann/`` (ScaNN's assets).
`save` writes everything into a temporary sibling and swaps it into place with renames, so
a crash mid-write leaves the previous index readable.

`load` trusts nothing it reads: a damaged, truncated, missing or stray file, or an index
whose parts disagree (labels for fewer centroids, a NaN centroid, a label the label map
lacks, an η that is not a similarity), raises `IndexFormatError` naming the file, instead of
loading an index that fails every query later. The checksums cost one more read of every
file at save and at load, 1-2 s per GB on one core: a GLDv2-size index (1M × 512 float32
centroids, 2 GB, plus ScaNN's copy of them) takes several seconds more each way;
`hashlib.file_digest` streams, so memory does not grow. Indexes of format version 1 (no
checksums) still load, with every check but the checksums; saving one again writes version 2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import pathlib
import time
from typing import Any

import numpy as np

from landmark_jax.errors import ConfigError, UserError
from landmark_jax.data.labels import LabelMap
from landmark_jax.folders import atomic_folder, exclusive_writer, readable_folder
from landmark_jax.index import scann_backend
from landmark_jax.index.exact import ExactSearcher
from landmark_jax.index.landmarks import LandmarkInfo, load_landmarks_csv, save_landmarks_csv

FORMAT_VERSION = 2  # 2: the manifest records every file's size and sha256
READABLE_VERSIONS = (1, 2)  # 1: no checksums, read so that users' existing indexes still work
MANIFEST = "manifest.json"
REQUIRED_FILES = ("centroids.npy", "labels.npy", "cluster_sizes.npy")
OPTIONAL_FILES = ("label_map.json", "landmarks.csv")
SCANN_DIR = "scann"
# Calibration puts η one float32 step above a similarity, and float32 dot products of unit
# vectors can exceed 1 by rounding, so a calibrated η may sit a hair outside [-1, 1].
ETA_SLACK = 1e-4


class IndexFormatError(UserError, ValueError):
  """An index directory that cannot be loaded; the message names the problem."""


BACKENDS = ("auto", "scann", "exact")


@dataclasses.dataclass(frozen=True)
class IndexConfig:
  """How the index is built. ScaNN's settings follow its own guidance for each size."""

  backend: str = "auto"  # "auto" (ScaNN, exact if unavailable), "scann" or "exact"
  brute_force_below: int = 20_000  # ScaNN brute force (exact scores) under this many vectors
  num_leaves: int = 0  # partitions; 0 = round(√n)
  leaves_to_search: int = 0  # partitions probed per query; 0 = max(num_leaves / 5, 16)
  reorder: int = 100  # candidates re-scored exactly after asymmetric hashing
  anisotropic_threshold: float = 0.2  # ScaNN's recommended value for dot product
  dims_per_block: int = 2  # asymmetric-hashing block size (2: ScaNN's default)
  training_sample_size: int = 100_000  # vectors used to train the partitioner

  def __post_init__(self):
    if self.backend not in BACKENDS:
      raise ConfigError(f"unknown index backend {self.backend!r}: one of {', '.join(BACKENDS)}")


class CentroidIndex:
  """Centroids (L2-normalised, so dot product = cosine similarity) and their labels."""

  def __init__(self, centroids: np.ndarray, labels: np.ndarray, cluster_sizes: np.ndarray,
               config: IndexConfig, *, label_map: LabelMap | None = None,
               metadata: dict[str, Any] | None = None,
               landmarks: dict[Any, LandmarkInfo] | None = None, _scann=None, _scann_info=None):
    self.centroids = np.ascontiguousarray(centroids, np.float32)
    self.labels = np.asarray(labels, np.int64)
    self.cluster_sizes = np.asarray(cluster_sizes, np.int64)
    self.config = config
    self.label_map = label_map
    self.metadata = dict(metadata or {})
    self.landmarks = dict(landmarks or {})  # landmark id → name, coordinates, category
    self._scann = _scann
    self._scann_info = _scann_info or {}
    self._exact = None

  # Construction -----------------------------------------------------------------------

  @classmethod
  def build(cls, vectors: np.ndarray, labels: np.ndarray, config: IndexConfig = IndexConfig(),
            *, cluster_sizes: np.ndarray | None = None, label_map: LabelMap | None = None,
            metadata: dict[str, Any] | None = None,
            landmarks: dict[Any, LandmarkInfo] | None = None) -> "CentroidIndex":
    """An index over `vectors` (n, d), each carrying `labels[i]`."""
    vectors = np.ascontiguousarray(vectors, np.float32)
    labels = np.asarray(labels)
    if vectors.ndim != 2 or len(vectors) != len(labels):
      raise ValueError(f"vectors {vectors.shape} and labels {labels.shape} do not match")
    if len(vectors) == 0:
      raise ValueError("cannot build an index over zero vectors")
    searcher, info = None, {"mode": "exact"}
    if config.backend == "scann" or (config.backend == "auto" and scann_backend.scann_available()):
      searcher, info = scann_backend.build_scann(vectors, config)
    sizes = np.ones(len(vectors), np.int64) if cluster_sizes is None else cluster_sizes
    return cls(vectors, labels, sizes, config, label_map=label_map,
               metadata={"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                         **(metadata or {})},
               landmarks=landmarks, _scann=searcher, _scann_info=info)

  # Search -----------------------------------------------------------------------------

  @property
  def dim(self) -> int:
    return self.centroids.shape[1]

  @property
  def backend(self) -> str:
    return "scann" if self._scann is not None else "exact"

  def __len__(self) -> int:
    return len(self.centroids)

  def exact_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(centroid ids, scores) by exact dot product."""
    if self._exact is None:
      self._exact = ExactSearcher(self.centroids)
    return self._exact.search(queries, k)

  def search(self, queries: np.ndarray, k: int = 5, *, exact: bool = False,
             leaves_to_search: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k centroids per query → (labels (q, k), scores (q, k), centroid ids (q, k)).

    `leaves_to_search` overrides the built setting for this call (ScaNN tree mode only):
    more leaves, higher recall, fewer queries/s."""
    queries = np.ascontiguousarray(queries, np.float32)
    if queries.ndim != 2 or queries.shape[1] != self.dim:
      raise ValueError(f"queries must be (q, {self.dim}), got {queries.shape}")
    k = min(k, len(self))
    if exact or self._scann is None:
      ids, scores = self.exact_search(queries, k)
    else:
      extra = {"leaves_to_search": leaves_to_search} if leaves_to_search else {}
      ids, scores = self._scann.search_batched(queries, final_num_neighbors=k, **extra)
      ids = ids.astype(np.int64)
    return self.labels[ids], scores.astype(np.float32), ids

  # Persistence ------------------------------------------------------------------------

  def manifest(self) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "embedding_dim": self.dim,
            "num_centroids": len(self), "num_landmarks": int(len(np.unique(self.labels))),
            "backend": self.backend, "scann": self._scann_info,
            "config": dataclasses.asdict(self.config), **self.metadata}

  def save(self, directory: str | os.PathLike) -> pathlib.Path:
    """Writes the index to `directory` atomically (see the module docstring), holding its
    write lock (`folders.exclusive_writer`): to edit an index, load and save it inside
    `editing.locked_index` so no other writer comes between."""
    directory = pathlib.Path(directory).absolute()
    with exclusive_writer(directory), atomic_folder(directory, replace=True) as staging:
      np.save(staging / "centroids.npy", self.centroids)
      np.save(staging / "labels.npy", self.labels)
      np.save(staging / "cluster_sizes.npy", self.cluster_sizes)
      if self.label_map is not None:
        self.label_map.save(staging / "label_map.json")
      if self.landmarks:
        save_landmarks_csv(self.landmarks, staging / "landmarks.csv")
      if self._scann is not None:
        (staging / "scann").mkdir()
        self._scann.serialize(str(staging / "scann"))
      # The manifest last: a directory without one was never completed. It records every
      # file written above, so `load` can tell them from damaged or stray ones.
      manifest = {**self.manifest(), "files": _file_records(staging)}
      (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return directory

  @classmethod
  def load(cls, directory: str | os.PathLike, *, expected_dim: int | None = None
           ) -> "CentroidIndex":
    """Loads a saved index after checking its files against the manifest and its parts
    against each other; any problem raises `IndexFormatError` naming the file."""
    # Absolute: ScaNN resolves its asset paths against the process's working directory.
    directory = _readable_index_dir(pathlib.Path(directory).absolute())
    manifest_path = directory / MANIFEST
    manifest = _read(manifest_path, _read_manifest)
    _check_format_version(manifest_path, manifest)
    _check_files(directory, manifest)
    _check_manifest_fields(manifest_path, manifest)
    dim = manifest["embedding_dim"]
    if expected_dim is not None and dim != expected_dim:
      raise IndexFormatError(
          f"{manifest_path}: embedding_dim {dim}, the model produces {expected_dim}")
    arrays = {name: _read(directory / name, lambda path: np.load(path, allow_pickle=False))
              for name in REQUIRED_FILES}
    _check_arrays(directory, manifest, arrays)
    label_map = None
    if (directory / "label_map.json").is_file():
      label_map = _read(directory / "label_map.json", LabelMap.load)
      _check_label_map(directory, arrays["labels.npy"], label_map)
    landmarks = None
    if (directory / "landmarks.csv").is_file():
      landmarks = _read(directory / "landmarks.csv", load_landmarks_csv)
    scann_searcher = None
    if manifest["backend"] == "scann":
      if not (directory / SCANN_DIR / scann_backend.ASSETS_FILE).is_file():
        raise IndexFormatError(
            f"index file missing: {directory / SCANN_DIR / scann_backend.ASSETS_FILE}")
      if scann_backend.scann_available():
        scann_searcher = _read(directory / SCANN_DIR, scann_backend.load_scann)
    known = {"format_version", "embedding_dim", "num_centroids", "num_landmarks", "backend",
             "scann", "config", "files"}
    try:
      config = IndexConfig(**manifest.get("config", {}))
    except (TypeError, ConfigError) as e:
      raise IndexFormatError(f"{manifest_path}: config: {e}") from None
    return cls(arrays["centroids.npy"], arrays["labels.npy"], arrays["cluster_sizes.npy"],
               config, label_map=label_map,
               metadata={k: v for k, v in manifest.items() if k not in known},
               landmarks=landmarks, _scann=scann_searcher, _scann_info=manifest.get("scann"))

  def with_metadata(self, **values) -> "CentroidIndex":
    """The same index with manifest fields added/replaced (e.g. the calibrated ``eta``)."""
    return CentroidIndex(self.centroids, self.labels, self.cluster_sizes, self.config,
                         label_map=self.label_map, metadata={**self.metadata, **values},
                         landmarks=self.landmarks, _scann=self._scann,
                         _scann_info=self._scann_info)


def _read(path: pathlib.Path, reader):
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


def _readable_index_dir(directory: pathlib.Path) -> pathlib.Path:
  readable = readable_folder(directory, MANIFEST)
  if readable is not None:
    return readable
  if not directory.exists():
    raise IndexFormatError(f"no index at {directory}")
  raise IndexFormatError(f"index file missing: {directory / MANIFEST}")


# Checking a saved index ---------------------------------------------------------------


def _sha256(path: pathlib.Path) -> str:
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def _file_records(folder: pathlib.Path) -> dict[str, dict[str, Any]]:
  """Size and sha256 of every file under `folder` but the manifest, by relative posix path."""
  return {path.relative_to(folder).as_posix(): {"bytes": path.stat().st_size,
                                                "sha256": _sha256(path)}
          for path in sorted(folder.rglob("*")) if path.is_file() and path != folder / MANIFEST}


def _index_files(directory: pathlib.Path) -> list[str]:
  """The files in `directory` that belong to an index (what `load` reads, and ScaNN's)."""
  names = [name for name in REQUIRED_FILES + OPTIONAL_FILES if (directory / name).is_file()]
  return names + sorted(path.relative_to(directory).as_posix()
                        for path in (directory / SCANN_DIR).rglob("*") if path.is_file())


def _read_manifest(path: pathlib.Path) -> dict[str, Any]:
  # Strict UTF-8 whatever the locale; `_read` reports the decoding and JSON errors.
  manifest = json.loads(path.read_bytes().decode("utf-8"))
  if not isinstance(manifest, dict):
    raise IndexFormatError(f"{path}: holds a JSON {type(manifest).__name__}, not an object")
  return manifest


def _check_format_version(path: pathlib.Path, manifest: dict[str, Any]) -> None:
  version = manifest.get("format_version")
  if type(version) is not int or version not in READABLE_VERSIONS:  # JSON true == 1 in Python
    raise IndexFormatError(f"{path}: format_version {version!r}, this library reads "
                           f"{' and '.join(map(str, READABLE_VERSIONS))}")


def _listed_files(path: pathlib.Path, manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
  """The manifest's ``files``: each a size and a sha256 of a file inside the index folder
  (a manifest naming ``../x`` must not make `load` read outside it)."""
  files = manifest.get("files")
  if not isinstance(files, dict):
    raise IndexFormatError(f"{path}: format_version 2 without its 'files' table of checksums")
  for name, record in files.items():
    parts = pathlib.PurePosixPath(name).parts
    if (not parts or parts[0] == "/" or ".." in parts or name == MANIFEST
        or not isinstance(record, dict) or type(record.get("bytes")) is not int
        or not isinstance(record.get("sha256"), str)):
      raise IndexFormatError(f"{path}: files: malformed entry {name!r}: {record!r}")
  unlisted = [name for name in REQUIRED_FILES if name not in files]
  if unlisted:
    raise IndexFormatError(f"{path}: files does not list {', '.join(unlisted)}")
  return files


def _check_file(path: pathlib.Path, record: dict[str, Any]) -> None:
  if not path.is_file():
    raise IndexFormatError(f"index file missing: {path}")
  size = path.stat().st_size
  if size != record["bytes"]:
    raise IndexFormatError(f"{path}: truncated or extended: {size} bytes, manifest says "
                           f"{record['bytes']}")
  if _sha256(path) != record["sha256"]:
    raise IndexFormatError(f"{path}: damaged: checksum mismatch (sha256 differs from the "
                           f"manifest's)")


def _check_files(directory: pathlib.Path, manifest: dict[str, Any]) -> None:
  """Every listed file is there, of the size and sha256 the manifest recorded, and no index
  file is there that it does not list (one from another save would be read as this one's).
  A version-1 manifest records nothing: only the required files' presence is checked."""
  if manifest["format_version"] == 1:
    for name in REQUIRED_FILES:
      if not (directory / name).is_file():
        raise IndexFormatError(f"index file missing: {directory / name}")
    return
  listed = _listed_files(directory / MANIFEST, manifest)
  for name, record in listed.items():
    _check_file(directory / name, record)
  stray = [name for name in _index_files(directory) if name not in listed]
  if stray:
    raise IndexFormatError(f"{directory / stray[0]}: not listed in {directory / MANIFEST}, "
                           f"so not part of the index as saved")


def _check_manifest_fields(path: pathlib.Path, manifest: dict[str, Any]) -> None:
  """The counts and backend that the files are read and checked by."""
  for key in ("embedding_dim", "num_centroids", "num_landmarks"):
    value = manifest.get(key)
    if type(value) is not int or value < 1:
      raise IndexFormatError(f"{path}: {key} {value!r}, expected a positive integer")
  if manifest.get("backend") not in ("scann", "exact"):
    raise IndexFormatError(f"{path}: backend {manifest.get('backend')!r}, expected scann or exact")
  _check_eta(path, manifest)


def _check_eta(path: pathlib.Path, manifest: dict[str, Any]) -> None:
  """A calibrated η is a cosine similarity. Python's JSON parses NaN and Infinity, and an η of
  NaN (or above 1) would quietly answer "no landmark" to every photo."""
  eta = manifest.get("eta")
  if eta is None:  # never calibrated: `Recognizer` answers the nearest landmark, and warns
    return
  if type(eta) not in (int, float) or not math.isfinite(eta) or abs(eta) > 1 + ETA_SLACK:
    raise IndexFormatError(f"{path}: eta {eta!r} is not a similarity threshold (a finite number "
                           f"in [-1, 1]); run `landmark-jax calibrate` again")


def _all_finite(array: np.ndarray, rows: int = 65_536) -> bool:
  # In slices: np.isfinite over a GLDv2 index's 2 GB of centroids would allocate 0.5 GB more.
  return all(np.isfinite(array[i:i + rows]).all() for i in range(0, len(array), rows))


def _check_per_centroid(path: pathlib.Path, array: np.ndarray, num_centroids: int,
                        minimum: int) -> None:
  """`array` holds one integer ≥ `minimum` per centroid."""
  if array.ndim != 1 or array.dtype.kind not in "iu" or len(array) != num_centroids:
    raise IndexFormatError(f"{path}: {array.dtype} array of shape {array.shape}, expected "
                           f"{num_centroids} integers, one per centroid")
  if array.min() < minimum:
    raise IndexFormatError(f"{path}: holds {array.min()}, every value must be ≥ {minimum}")


def _check_arrays(directory: pathlib.Path, manifest: dict[str, Any],
                  arrays: dict[str, np.ndarray]) -> None:
  """The three arrays agree with the manifest's counts and with each other."""
  path, centroids = directory / "centroids.npy", arrays["centroids.npy"]
  num_centroids, dim = manifest["num_centroids"], manifest["embedding_dim"]
  if centroids.dtype != np.float32 or centroids.shape != (num_centroids, dim):
    raise IndexFormatError(
        f"{path}: {centroids.dtype} array of shape {centroids.shape}, {directory / MANIFEST} "
        f"says float32 ({num_centroids}, {dim}) (num_centroids, embedding_dim)")
  if not _all_finite(centroids):
    raise IndexFormatError(f"{path}: holds NaN or infinite values")
  labels = arrays["labels.npy"]
  _check_per_centroid(directory / "labels.npy", labels, num_centroids, minimum=0)
  _check_per_centroid(directory / "cluster_sizes.npy", arrays["cluster_sizes.npy"],
                      num_centroids, minimum=1)
  distinct = len(np.unique(labels))
  if distinct != manifest["num_landmarks"]:
    raise IndexFormatError(f"{directory / MANIFEST}: num_landmarks {manifest['num_landmarks']}, "
                           f"{directory / 'labels.npy'} holds {distinct} distinct labels")


def _check_label_map(directory: pathlib.Path, labels: np.ndarray, label_map: LabelMap) -> None:
  """Every centroid's label names a landmark of the label map (else `recognize` fails)."""
  largest = int(labels.max())
  if largest >= label_map.num_classes:
    raise IndexFormatError(
        f"{directory / 'labels.npy'}: label {largest} is beyond "
        f"{directory / 'label_map.json'} ({label_map.num_classes} landmarks)")
