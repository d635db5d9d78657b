"""`CentroidIndex`: nearest-centroid search by dot product (ScaNN, or exact), saved atomically.

A directory holds ``manifest.json`` (format version, dimension, counts, backend and ScaNN
settings, the model checkpoint it came from, the threshold η once calibrated, and the size
and sha256 of every other file), ``centroids.npy`` / ``labels.npy`` / ``cluster_sizes.npy``
(read with ``allow_pickle=False``), ``label_map.json`` and ``landmarks.csv`` (names,
coordinates) when given, the class references (`references`: each landmark's reference
photos, embedded) when the cleaning gave them, a few reference photos' local features
(`local_features`, to verify uncertain answers) when given, the embedded photos η was
calibrated on (`validation`) once calibrated, and ``scann/`` (ScaNN's assets).
`save` writes everything into a temporary sibling and swaps it into place with renames, so
a crash mid-write leaves the previous index readable.

`load` checks every file against the manifest and the parts against each other first
(`integrity`); a damaged or inconsistent index raises `IndexFormatError` naming the file.
A load that a concurrent `save` tore (the folder swapped between reading the manifest and
the files) is read again, so a reader sees one whole version, never an error, while an
index damaged with no writer around fails at once. A symlink to an index is read, locked
and saved through as its real folder (`folders.real_path`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
from typing import Any, Callable

import numpy as np

from landmark_jax.data.labels import LabelMap
from landmark_jax.data.tables import parse_id
from landmark_jax.errors import ConfigError
from landmark_jax.folders import (
  atomic_folder,
  exclusive_writer,
  left_backup,
  real_path,
  swap_under_way,
)
from landmark_jax.index import integrity, scann_backend
from landmark_jax.index.calibration_fields import migrated as migrated_calibration
from landmark_jax.index.config import IndexConfig, SearchSetting
from landmark_jax.index.exact import ExactSearcher
from landmark_jax.index.integrity import (
  FORMAT_VERSION,
  MANIFEST,
  REQUIRED_FILES,
  SCANN_DIR,
  IndexFormatError,
)
from landmark_jax.index.landmarks import LandmarkInfo, load_landmarks_csv, save_landmarks_csv
from landmark_jax.index.local_features import MANIFEST_FIELD as LOCAL_FEATURES
from landmark_jax.index.local_features import LocalFeatureStore, read_local_features
from landmark_jax.index.references import FILES as REFERENCE_FILES
from landmark_jax.index.references import VECTORS_FILE as REFERENCE_VECTORS
from landmark_jax.index.references import References
from landmark_jax.index.validation import EMBEDDINGS_FILE as VALIDATION_EMBEDDINGS
from landmark_jax.index.validation import FILES as VALIDATION_FILES
from landmark_jax.index.validation import ValidationSet

# How long a reader waits for a concurrent save to finish before reporting what it read.
READ_DEADLINE_S = 5.0
# landmarks.csv stores one row per landmark of the label map; a row this long is already a
# name of 4,000 characters, so a file past it per landmark holds rows of no landmark.
MAX_LANDMARK_ROW_BYTES = 4096


class CentroidIndex:
  """Centroids (L2-normalised, so dot product = cosine similarity) and their labels."""

  def __init__(
    self,
    centroids: np.ndarray,
    labels: np.ndarray,
    cluster_sizes: np.ndarray,
    config: IndexConfig,
    *,
    label_map: LabelMap | None = None,
    metadata: dict[str, Any] | None = None,
    landmarks: dict[Any, LandmarkInfo] | None = None,
    validation: ValidationSet | Callable[[], ValidationSet] | None = None,
    references: References | None = None,
    local_features: LocalFeatureStore | None = None,
    _scann=None,
    _scann_info=None,
  ):
    self.centroids = np.ascontiguousarray(centroids, np.float32)
    self.labels = np.asarray(labels, np.int64)
    self.cluster_sizes = np.asarray(cluster_sizes, np.int64)
    self.config = config
    self.label_map = label_map
    self.metadata = dict(metadata or {})
    self.landmarks = dict(landmarks or {})  # landmark id → name, coordinates, category
    # The calibration photos' embeddings, or a function reading them when first asked for:
    # recognition never needs them, so loading an index for serving does not read them.
    self._validation = validation
    self.references = references  # each landmark's reference photos (None: none kept)
    # A few reference photos' local features, for verifying uncertain answers (None: none).
    self.local_features = local_features
    self._scann = _scann
    self._scann_info = _scann_info or {}
    self._exact = None

  # Construction -----------------------------------------------------------------------

  @classmethod
  def build(
    cls,
    vectors: np.ndarray,
    labels: np.ndarray,
    config: IndexConfig = IndexConfig(),
    *,
    cluster_sizes: np.ndarray | None = None,
    label_map: LabelMap | None = None,
    metadata: dict[str, Any] | None = None,
    landmarks: dict[Any, LandmarkInfo] | None = None,
    references: References | None = None,
    local_features: LocalFeatureStore | None = None,
  ) -> "CentroidIndex":
    """An index over `vectors` (n, d), each carrying `labels[i]`; `references`: the class
    references of its landmarks, `local_features`: local features of some of their photos
    (both by the same labels)."""
    vectors = np.ascontiguousarray(vectors, np.float32)
    labels = np.asarray(labels)
    if vectors.ndim != 2 or len(vectors) != len(labels):
      raise ValueError(f"vectors {vectors.shape} and labels {labels.shape} do not match")
    if len(vectors) == 0:
      raise ValueError("cannot build an index over zero vectors")
    try:  # scores are cosines only for unit vectors; `load` refuses any other index
      integrity.check_unit_norms(pathlib.Path("vectors"), vectors)
    except IndexFormatError as e:
      raise ValueError(
        f"cannot build an index over vectors that are not unit length: {e}"
      ) from None
    searcher, info = None, {"mode": "exact"}
    if config.backend == "scann" or (config.backend == "auto" and scann_backend.scann_available()):
      searcher, info = scann_backend.build_scann(vectors, config)
    sizes = np.ones(len(vectors), np.int64) if cluster_sizes is None else cluster_sizes
    return cls(
      vectors,
      labels,
      sizes,
      config,
      label_map=label_map,
      metadata={"created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **(metadata or {})},
      landmarks=landmarks,
      references=references,
      local_features=local_features,
      _scann=searcher,
      _scann_info=info,
    )

  # Search -----------------------------------------------------------------------------

  @property
  def validation(self) -> ValidationSet | None:
    """The embedded photos η was calibrated on (None: calibrated elsewhere, or never)."""
    if callable(self._validation):
      self._validation = self._validation()
    return self._validation

  @property
  def dim(self) -> int:
    return self.centroids.shape[1]

  @property
  def backend(self) -> str:
    return "scann" if self._scann is not None else "exact"

  def __len__(self) -> int:
    return len(self.centroids)

  @property
  def scann_info(self) -> dict[str, Any]:
    """The manifest's ``scann`` record: the searcher's mode and settings, and the tuning
    that chose them (`build-index --target-recall`), if any."""
    return dict(self._scann_info)

  @property
  def search_settings(self) -> SearchSetting | None:
    """A ScaNN tree's partitions probed and candidates re-scored per query (None: ScaNN's
    brute force or the exact backend, which have none)."""
    info = self._scann_info
    if self._scann is None or info.get("mode") != "tree_ah":
      return None
    return SearchSetting(info["leaves_to_search"], info["reorder"])

  def with_search_settings(
    self, settings: SearchSetting | None, tuning: dict[str, Any]
  ) -> "CentroidIndex":
    """The same index searching with `settings` (None: keep them), and `tuning` (how they
    were chosen, `tuning.tuning_record`) in its manifest. The config takes the settings too,
    so an edit that rebuilds the index (`editing`) builds the tree with them."""
    info = {**self._scann_info, "tuning": tuning}
    config = self.config
    if settings is not None:
      info.update(leaves_to_search=settings.leaves_to_search, reorder=settings.reorder)
      config = dataclasses.replace(
        config, leaves_to_search=settings.leaves_to_search, reorder=settings.reorder
      )
    return self._replaced(config=config, scann_info=info)

  def exact_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(centroid ids, scores) by exact dot product."""
    if self._exact is None:
      self._exact = ExactSearcher(self.centroids)
    return self._exact.search(queries, k)

  def search(
    self,
    queries: np.ndarray,
    k: int = 5,
    *,
    exact: bool = False,
    leaves_to_search: int | None = None,
    reorder: int | None = None,
  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k centroids per query → (labels (q, k), scores (q, k), centroid ids (q, k)).

    A ScaNN tree searches with the index's settings (`search_settings`: as built, or as
    `build-index --target-recall` chose them); `leaves_to_search` and `reorder` override
    them for this call: more of either, higher recall, fewer queries/s."""
    queries = np.ascontiguousarray(queries, np.float32)
    if queries.ndim != 2 or queries.shape[1] != self.dim:
      raise ValueError(f"queries must be (q, {self.dim}), got {queries.shape}")
    k = min(k, len(self))
    if exact or self._scann is None:
      ids, scores = self.exact_search(queries, k)
    else:
      extra = {}
      settings = self.search_settings
      if settings is not None:
        # Passed on every call: a loaded searcher's own defaults are those it was built with,
        # which a tuning may have changed since.
        extra = {
          "leaves_to_search": leaves_to_search or settings.leaves_to_search,
          "pre_reorder_num_neighbors": reorder or settings.reorder,
        }
      ids, _ = self._scann.search_batched(queries, final_num_neighbors=k, **extra)
      ids = ids.astype(np.int64)
    ids, scores = _rescored(self.centroids, queries, ids)
    return self.labels[ids], scores, ids

  # Persistence ------------------------------------------------------------------------

  def manifest(self) -> dict[str, Any]:
    manifest = {
      "format_version": FORMAT_VERSION,
      "embedding_dim": self.dim,
      "num_centroids": len(self),
      "num_landmarks": int(len(np.unique(self.labels))),
      "backend": self.backend,
      "scann": self._scann_info,
      "config": dataclasses.asdict(self.config),
      **self.metadata,
    }
    manifest.pop(LOCAL_FEATURES, None)  # the store's record, never the metadata's
    if self.local_features is not None:
      manifest[LOCAL_FEATURES] = self.local_features.summary()
    return manifest

  def save(self, directory: str | os.PathLike) -> pathlib.Path:
    """Writes the index to `directory` atomically (see the module docstring), holding its
    write lock (`folders.exclusive_writer`): to edit an index, load and save it inside
    `editing.locked_index` so no other writer comes between."""
    directory = pathlib.Path(directory).absolute()
    with (
      exclusive_writer(directory),
      atomic_folder(directory, replace=True, what="the index") as staging,
    ):
      np.save(staging / "centroids.npy", self.centroids)
      np.save(staging / "labels.npy", self.labels)
      np.save(staging / "cluster_sizes.npy", self.cluster_sizes)
      if self.label_map is not None:
        self.label_map.save(staging / "label_map.json")
      landmarks = _indexed_landmarks(self.landmarks, self.label_map)
      if landmarks:
        save_landmarks_csv(landmarks, staging / "landmarks.csv")
      if self.validation is not None:
        self.validation.save(staging)
      if self.references is not None:
        self.references.save(staging)
      if self.local_features is not None:
        self.local_features.save(staging)
      if self._scann is not None:
        (staging / "scann").mkdir()
        self._scann.serialize(str(staging / "scann"))
      # The manifest last: a directory without one was never completed. It records every
      # file written above, so `load` can tell them from damaged or stray ones.
      manifest = integrity.sealed({**self.manifest(), "files": integrity.file_records(staging)})
      (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return directory

  @classmethod
  def load(
    cls,
    directory: str | os.PathLike,
    *,
    expected_dim: int | None = None,
    allow_unchecked: bool | None = None,
  ) -> "CentroidIndex":
    """Loads a saved index after checking its files against the manifest and its parts
    against each other; any problem raises `IndexFormatError` naming the file.

    A load torn by a concurrent save (the manifest file changed, or the folder is between
    a save's two renames) is read again, for up to `READ_DEADLINE_S`.

    Args:
      expected_dim: the model's embedding dimension, which the index must have.
      allow_unchecked: read a format-1 index (no checksums); None: as the command line
        says (`integrity.allowing_unchecked`).
    """
    # Absolute: ScaNN resolves its asset paths against the process's working directory.
    named = pathlib.Path(directory).absolute()
    allow_unchecked = integrity.unchecked_allowed(allow_unchecked)
    deadline = time.monotonic() + READ_DEADLINE_S
    pause = 0.05
    while True:
      folder = real_path(named)
      before = _identity(folder)
      try:
        index = cls._load_once(folder, named, expected_dim, allow_unchecked)
        if _identity(folder) == before:
          return index
        problem = None  # read whole, but a save landed meanwhile: read the new version
      except (IndexFormatError, OSError) as error:
        if not _changed(named, folder, before):
          raise  # damaged, with no writer around: at once
        problem = error
      if time.monotonic() + pause > deadline:
        raise IndexFormatError(
          f"{named} kept changing while it was read (for {READ_DEADLINE_S:g} s); last: "
          f"{' '.join(str(problem or 'a save landed during the read').split())}"
        )
      _wait_for_writer(pause)
      pause = min(2 * pause, 1.0)

  @classmethod
  def _load_once(
    cls,
    directory: pathlib.Path,
    named: pathlib.Path,
    expected_dim: int | None,
    allow_unchecked: bool,
  ) -> "CentroidIndex":
    """One read of the index in the real folder `directory` (`named`: as the user named
    it), every check first."""
    directory = _readable_index_dir(directory, named)
    manifest_path = directory / MANIFEST
    manifest = integrity.read_file(manifest_path, integrity.read_manifest)
    integrity.check_format_version(manifest_path, manifest, allow_unchecked=allow_unchecked)
    integrity.check_manifest_digest(manifest_path, manifest)
    integrity.check_files(directory, manifest)
    integrity.check_manifest_fields(manifest_path, manifest)
    dim = manifest["embedding_dim"]
    if expected_dim is not None and dim != expected_dim:
      raise IndexFormatError(
        f"{manifest_path}: embedding_dim {dim}, the model produces {expected_dim}"
      )
    # Every array's header against the counts and its file's size, before any is read (the
    # validation photos' when they are: serving never reads them).
    integrity.check_npy_files(directory, manifest, skip=(VALIDATION_EMBEDDINGS,))
    arrays = {
      name: integrity.read_file(directory / name, lambda path: np.load(path, allow_pickle=False))
      for name in REQUIRED_FILES
    }
    integrity.check_arrays(directory, manifest, arrays)
    label_map = None
    if (directory / "label_map.json").is_file():
      label_map = integrity.read_file(directory / "label_map.json", LabelMap.load)
      integrity.check_label_map(directory, arrays["labels.npy"], label_map)
    landmarks = None
    if (directory / "landmarks.csv").is_file():
      _check_landmarks_size(directory / "landmarks.csv", manifest, label_map)
      landmarks = integrity.read_file(directory / "landmarks.csv", load_landmarks_csv)
    references = None
    if all((directory / name).is_file() for name in REFERENCE_FILES):
      references = integrity.read_file(
        directory / REFERENCE_VECTORS,
        lambda _: References.load(directory, dim, arrays["labels.npy"]),
      )
      integrity.check_unit_norms(directory / REFERENCE_VECTORS, references.vectors)
    local_features = read_local_features(directory, manifest, arrays["labels.npy"])
    scann_searcher = None
    if manifest["backend"] == "scann":
      if not (directory / SCANN_DIR / scann_backend.ASSETS_FILE).is_file():
        raise IndexFormatError(
          f"index file missing: {directory / SCANN_DIR / scann_backend.ASSETS_FILE}"
        )
      integrity.check_scann_assets(directory, manifest, arrays["centroids.npy"])
      if scann_backend.scann_available():
        scann_searcher = integrity.read_file(directory / SCANN_DIR, scann_backend.load_scann)
    known = {
      "format_version",
      "embedding_dim",
      "num_centroids",
      "num_landmarks",
      "backend",
      "scann",
      "config",
      "files",
      LOCAL_FEATURES,
      integrity.MANIFEST_DIGEST,
    }
    try:
      config = IndexConfig(**manifest.get("config", {}))
    except (TypeError, ConfigError) as e:
      raise IndexFormatError(f"{manifest_path}: config: {e}") from None
    return cls(
      arrays["centroids.npy"],
      arrays["labels.npy"],
      arrays["cluster_sizes.npy"],
      config,
      label_map=label_map,
      # An older index's thresholds read as today's (`calibration_fields`); the file
      # itself changes at its next save.
      metadata=migrated_calibration({k: v for k, v in manifest.items() if k not in known}),
      landmarks=landmarks,
      validation=_validation_reader(directory, manifest, dim),
      references=references,
      local_features=local_features,
      _scann=scann_searcher,
      _scann_info=manifest.get("scann"),
    )

  def with_metadata(self, **values) -> "CentroidIndex":
    """The same index with manifest fields added/replaced (e.g. the calibrated ``eta``)."""
    return self._replaced(metadata={**self.metadata, **values})

  def without_metadata(self, *names: str) -> "CentroidIndex":
    """The same index without the manifest fields `names` (e.g. a ``verification`` band that
    no longer applies)."""
    return self._replaced(metadata={k: v for k, v in self.metadata.items() if k not in names})

  def with_landmarks(self, landmarks: dict[Any, LandmarkInfo]) -> "CentroidIndex":
    """The same index with other landmark metadata (names, coordinates, categories)."""
    return self._replaced(landmarks=dict(landmarks))

  def with_validation(self, validation: ValidationSet | None) -> "CentroidIndex":
    """The same index keeping `validation` as the photos it is calibrated on."""
    if validation is not None and len(validation) and validation.embeddings.shape[1] != self.dim:
      raise ValueError(
        f"validation embeddings of {validation.embeddings.shape[1]} dimensions "
        f"for an index of {self.dim}"
      )
    return self._replaced(validation=validation)

  def with_references(self, references: References | None) -> "CentroidIndex":
    """The same index with other class references (None: none)."""
    if references is not None and len(references) and references.vectors.shape[1] != self.dim:
      raise ValueError(
        f"references of {references.vectors.shape[1]} dimensions for an index of {self.dim}"
      )
    return self._replaced(references=references)

  def with_local_features(self, store: LocalFeatureStore | None) -> "CentroidIndex":
    """The same index keeping `store`'s photos' local features (None: none; a calibrated
    ``verification``, which needs them, leaves with them)."""
    if store is None:
      return self._replaced(local_features=None).without_metadata("verification")
    stray = np.setdiff1d(store.photo_labels, self.labels)
    if len(stray):
      raise ValueError(f"local features of label(s) {stray[:5].tolist()}, which have no centroid")
    return self._replaced(local_features=store)

  def _replaced(
    self, *, config: IndexConfig | None = None, scann_info: dict[str, Any] | None = None, **changes
  ) -> "CentroidIndex":
    # The searcher is shared: nothing here changes the centroids.
    fields = {
      "label_map": self.label_map,
      "metadata": self.metadata,
      "landmarks": self.landmarks,
      "validation": self._validation,
      "references": self.references,
      "local_features": self.local_features,
      **changes,
    }
    return CentroidIndex(
      self.centroids,
      self.labels,
      self.cluster_sizes,
      config or self.config,
      **fields,
      _scann=self._scann,
      _scann_info=self._scann_info if scann_info is None else scann_info,
    )


def _validation_reader(
  directory: pathlib.Path, manifest: dict[str, Any], dim: int
) -> Callable[[], ValidationSet] | None:
  """A function reading the stored validation set (None when the index keeps none). The
  files were checked against the manifest when the index loaded; they are checked again
  when read, since the folder may have been replaced by another save since then."""
  if not all((directory / name).is_file() for name in VALIDATION_FILES):
    return None
  records = manifest.get("files") or {}

  def read() -> ValidationSet:
    for name in VALIDATION_FILES:
      if name in records:
        integrity.check_file(directory / name, records[name])
    integrity.check_npy(directory / VALIDATION_EMBEDDINGS, (None, dim), np.float32)
    validation = integrity.read_file(
      directory / VALIDATION_EMBEDDINGS, lambda _: ValidationSet.load(directory, dim)
    )
    integrity.check_unit_norms(directory / VALIDATION_EMBEDDINGS, validation.embeddings)
    return validation

  return read


def _rescored(
  centroids: np.ndarray, queries: np.ndarray, ids: np.ndarray, chunk_elements: int = 1 << 22
) -> tuple[np.ndarray, np.ndarray]:
  """The found neighbours' scores recomputed exactly, best first.

  ScaNN (and a batched matmul) pick different SIMD kernels for different numbers of
  queries, so the same photo scored alone or in a batch could differ in the last bit — and
  a photo that calibration rejected at η could be accepted when recognised alone. Each
  score here is one float64 dot product rounded to float32: it does not depend on the
  batch, and the threshold (`threshold`) sees the same number in every caller. The cost is
  k dot products per query, in chunks that bound memory.
  """
  if ids.size == 0:
    return ids, np.zeros(ids.shape, np.float32)
  scores = np.empty(ids.shape, np.float32)
  rows = max(1, chunk_elements // (ids.shape[1] * centroids.shape[1]))
  for start in range(0, len(ids), rows):
    block = ids[start : start + rows]
    found = centroids[block].astype(np.float64)  # (rows, k, d)
    query = queries[start : start + rows].astype(np.float64)[:, :, None]  # (rows, d, 1)
    scores[start : start + rows] = np.matmul(found, query)[..., 0]
  # Re-sort: exact scores may swap near-ties; ties go to the lower centroid id, as exact
  # search breaks them.
  order = _best_first(scores, ids)
  return np.take_along_axis(ids, order, 1), np.take_along_axis(scores, order, 1)


def _best_first(scores: np.ndarray, ids: np.ndarray) -> np.ndarray:
  # Stable sort on the id first, then on the score, descending.
  by_id = np.argsort(ids, axis=1, kind="stable")
  by_score = np.argsort(-np.take_along_axis(scores, by_id, 1), axis=1, kind="stable")
  return np.take_along_axis(by_id, by_score, 1)


def _readable_index_dir(directory: pathlib.Path, named: pathlib.Path) -> pathlib.Path:
  """`directory` if it holds a manifest, else an error saying why not. The backup an
  interrupted save left is never read in its place: it may be older than the index the
  user last saved, or the user deleted the index on purpose."""
  if (directory / MANIFEST).is_file():
    return directory
  if not directory.exists():
    backup = left_backup(directory)
    if backup is not None:
      raise IndexFormatError(
        f"no index at {named}; an interrupted save left {backup}: `mv` it back to "
        f"{directory} (or delete it)"
      )
    raise IndexFormatError(f"no index at {named}")
  if not directory.is_dir():
    raise IndexFormatError(f"{named} is a file; an index is a folder (the --out of build-index)")
  raise IndexFormatError(f"index file missing: {directory / MANIFEST}")


def _identity(folder: pathlib.Path) -> tuple[int, ...] | None:
  """Which save the folder's manifest file is from: every save writes a new file."""
  try:
    st = os.stat(folder / MANIFEST)
  except OSError:
    return None
  return (st.st_ino, st.st_dev, st.st_mtime_ns, st.st_ctime_ns, st.st_size)


def _changed(named: pathlib.Path, folder: pathlib.Path, before: tuple[int, ...] | None) -> bool:
  """Whether a writer came between: the link now points elsewhere, the manifest is another
  file, or the folder is missing while a save's swap is under way."""
  if real_path(named) != folder:
    return True
  now = _identity(folder)
  return now != before or (now is None and swap_under_way(folder))


def _wait_for_writer(seconds: float) -> None:
  time.sleep(seconds)


def _indexed_landmarks(
  landmarks: dict[Any, LandmarkInfo], label_map: LabelMap | None
) -> dict[Any, LandmarkInfo]:
  """The landmarks the index answers with: those of its label map (a table of millions of
  rows given for an index of eight would be read back by every load)."""
  if label_map is None:
    return landmarks
  ids = {parse_id(str(landmark_id)) for landmark_id in label_map.landmark_ids}
  return {key: info for key, info in landmarks.items() if parse_id(str(key)) in ids}


def _check_landmarks_size(
  path: pathlib.Path, manifest: dict[str, Any], label_map: LabelMap | None
) -> None:
  """landmarks.csv holds at most a row per landmark: refused before parsing when its size
  (the manifest's record, checked against the file) is far beyond that."""
  record = (manifest.get("files") or {}).get(path.name)
  size = record["bytes"] if record else path.stat().st_size
  landmarks = label_map.num_classes if label_map is not None else manifest["num_landmarks"]
  limit = MAX_LANDMARK_ROW_BYTES * (landmarks + 1)
  if size > limit:
    raise IndexFormatError(
      f"{path}: {size} bytes for {landmarks} landmarks (at most {limit}): it holds rows of "
      "landmarks the index does not have; save the index again with only its own"
    )
