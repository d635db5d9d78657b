"""Local features of a few reference photos per landmark, kept with the index (issue 32).

A recognizer unsure of its answer matches the query photo's DELF-style local features
against its candidate landmark's stored photos with RANSAC (`landmark_jax.baselines.delf`).
The index keeps those photos' features, and the small extractor parameters that described
them (attention head, PCA: `extractor`, opaque here), so that a query is described the same
way by whoever loads the index.

Descriptors are unit rows stored as int8 round(127·x): each element is off by at most
0.5/127, a quarter of float32's bytes. Keypoints are float16 pixels: exact to 0.25 px below
1024, finer than RANSAC's tolerance. Files (each listed with its checksum in the manifest,
whose ``local_features`` record holds the counts and the `settings`): ``local_descriptors.npy``
(int8 (M, d)), ``local_keypoints.npy`` (float16 (M, 2)), ``local_offsets.npy`` (int64 (P+1,):
photo p owns rows offsets[p]:offsets[p+1]), ``local_photo_labels.npy`` (int64 (P,), the
index's dense labels), ``local_photos.json`` ({"ids": [...]}) and
``local_extractor.safetensors``.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import safetensors.numpy

from landmark_jax.index import integrity
from landmark_jax.index.integrity import MANIFEST, IndexFormatError

DESCRIPTORS_FILE = "local_descriptors.npy"
KEYPOINTS_FILE = "local_keypoints.npy"
OFFSETS_FILE = "local_offsets.npy"
PHOTO_LABELS_FILE = "local_photo_labels.npy"
PHOTOS_FILE = "local_photos.json"
EXTRACTOR_FILE = "local_extractor.safetensors"
FILES = (
  DESCRIPTORS_FILE,
  KEYPOINTS_FILE,
  OFFSETS_FILE,
  PHOTO_LABELS_FILE,
  PHOTOS_FILE,
  EXTRACTOR_FILE,
)
MANIFEST_FIELD = "local_features"
SCALE = 127  # int8's symmetric range: -128 is never written
# A unit row quantised is within 0.5·√d/127 of norm 1 (0.045 at d = 128), so a norm outside
# this range is damage or a zero row, never rounding (for d up to 645).
NORM_RANGE = (0.9, 1.1)
_ROWS = 65_536  # checks run in slices of rows, so memory does not grow with M


class _Problem(ValueError):
  """A part that does not fit, blamed on the file it is stored in."""

  def __init__(self, file: str, message: str):
    super().__init__(f"{file}: {message}")
    self.file, self.message = file, message


@dataclasses.dataclass(frozen=True, eq=False)
class LocalFeatureStore:
  """Stored photos' local features, photo p's rows at offsets[p]:offsets[p + 1]. Photos of one
  landmark keep the order they were given in: the first is the most representative (the
  cleaning's medoid)."""

  descriptors: np.ndarray  # (M, d) int8: round(127 · unit descriptor)
  keypoints: np.ndarray  # (M, 2) float16: (x, y) pixels
  offsets: np.ndarray  # (P + 1,) int64
  photo_labels: np.ndarray  # (P,) int64: the index's dense labels
  photo_ids: tuple[str, ...]  # (P,)
  extractor: dict[str, np.ndarray]  # flat name → finite float32 array
  settings: dict[str, Any]  # extraction and matching settings, JSON values

  def __post_init__(self):
    fields = {
      "descriptors": np.ascontiguousarray(self.descriptors),
      "keypoints": np.ascontiguousarray(self.keypoints, np.float16),
      "offsets": _integers(self.offsets, OFFSETS_FILE),
      "photo_labels": _integers(self.photo_labels, PHOTO_LABELS_FILE),
      "photo_ids": tuple(self.photo_ids),
      "extractor": {name: _float32(name, self.extractor[name]) for name in sorted(self.extractor)},
      "settings": _json_values(self.settings),
    }
    for name, value in fields.items():
      object.__setattr__(self, name, value)
    _check_parts(self)
    # Sorted by label once (stably: each landmark's photos keep their order), so a
    # landmark's photos are one slice.
    order = np.argsort(self.photo_labels, kind="stable")
    object.__setattr__(self, "_order", order)
    object.__setattr__(self, "_sorted_labels", self.photo_labels[order])

  @classmethod
  def from_float(
    cls,
    keypoints: Sequence[np.ndarray],
    descriptors: Sequence[np.ndarray],
    photo_labels: Sequence[int],
    photo_ids: Sequence[str],
    extractor: Mapping[str, np.ndarray],
    settings: Mapping[str, Any],
  ) -> "LocalFeatureStore":
    """Photo p's (n, 2) keypoints and (n, d) unit descriptors, quantised."""
    if not descriptors or len(keypoints) != len(descriptors):
      raise ValueError(
        f"{len(keypoints)} keypoint arrays and {len(descriptors)} descriptor arrays: "
        "give one of each per photo, at least one photo"
      )
    dims = {np.shape(d)[1] for d in descriptors}
    if len(dims) != 1:
      raise ValueError(f"descriptors of several widths {sorted(dims)}: one extractor made them")
    counts = [len(d) for d in descriptors]
    unit = np.concatenate([np.asarray(d, np.float32) for d in descriptors])
    return cls(
      np.clip(np.rint(SCALE * unit), -SCALE, SCALE).astype(np.int8),
      np.concatenate([np.asarray(k, np.float32).reshape(-1, 2) for k in keypoints]),
      np.concatenate([[0], np.cumsum(counts)]),
      photo_labels,
      photo_ids,
      dict(extractor),
      dict(settings),
    )

  def __len__(self) -> int:
    return len(self.photo_labels)

  @property
  def num_features(self) -> int:
    return len(self.descriptors)

  @property
  def descriptor_dim(self) -> int:
    return self.descriptors.shape[1]

  @property
  def nbytes(self) -> int:
    """Bytes of the features (descriptors, keypoints, offsets, labels): what grows with P."""
    parts = (self.descriptors, self.keypoints, self.offsets, self.photo_labels)
    return sum(a.nbytes for a in parts)

  @property
  def extractor_nbytes(self) -> int:
    return sum(a.nbytes for a in self.extractor.values())

  def photos_of(self, label: int) -> np.ndarray:
    """Positions of landmark `label`'s photos, in stored order (the first: its medoid)."""
    start, end = np.searchsorted(self._sorted_labels, [label, label + 1])
    return self._order[start:end]

  def covers(self, labels: Iterable[int]) -> np.ndarray:
    """Whether each label has at least one stored photo."""
    return np.isin(np.asarray(list(labels), np.int64), self.photo_labels)

  def features(self, photo: int) -> tuple[np.ndarray, np.ndarray]:
    """Photo `photo`'s keypoints (n, 2) and unit descriptors (n, d), float32. The
    dequantised rows are normalised again: rounding moved them off the sphere."""
    rows = slice(int(self.offsets[photo]), int(self.offsets[photo + 1]))
    descriptors = self.descriptors[rows].astype(np.float32)
    descriptors /= np.linalg.norm(descriptors, axis=1, keepdims=True)
    return self.keypoints[rows].astype(np.float32), descriptors

  def summary(self) -> dict[str, Any]:
    """The manifest's ``local_features`` record; `load` checks the files against it."""
    return {
      "photos": len(self),
      "features": self.num_features,
      "descriptor_dim": self.descriptor_dim,
      "settings": self.settings,
    }

  # Edits -------------------------------------------------------------------------------

  def without_labels(self, labels: Iterable[int]) -> "LocalFeatureStore":
    keep = ~np.isin(self.photo_labels, np.asarray(list(labels), np.int64))
    counts = np.diff(self.offsets)
    rows = np.repeat(keep, counts)  # each feature row follows its photo
    return dataclasses.replace(
      self,
      descriptors=self.descriptors[rows],
      keypoints=self.keypoints[rows],
      offsets=np.concatenate([[0], np.cumsum(counts[keep])]),
      photo_labels=self.photo_labels[keep],
      photo_ids=tuple(i for i, k in zip(self.photo_ids, keep) if k),
    )

  def relabelled(self, photo_labels: Sequence[int]) -> "LocalFeatureStore":
    """The same photos as photos of other landmarks (one label each)."""
    return dataclasses.replace(self, photo_labels=photo_labels)

  def joined(self, other: "LocalFeatureStore") -> "LocalFeatureStore":
    """`other`'s photos after these. Both must come from one extractor with one set of
    settings: descriptors of two extractors do not match each other."""
    differs = _differences(self, other)
    if differs:
      raise ValueError(f"local features of another extractor: {differs}")
    return dataclasses.replace(
      self,
      descriptors=np.concatenate([self.descriptors, other.descriptors]),
      keypoints=np.concatenate([self.keypoints, other.keypoints]),
      offsets=np.concatenate([self.offsets, other.offsets[1:] + self.offsets[-1]]),
      photo_labels=np.concatenate([self.photo_labels, other.photo_labels]),
      photo_ids=self.photo_ids + other.photo_ids,
    )

  # Files -------------------------------------------------------------------------------

  def save(self, folder: pathlib.Path) -> None:
    np.save(folder / DESCRIPTORS_FILE, self.descriptors)
    np.save(folder / KEYPOINTS_FILE, self.keypoints)
    np.save(folder / OFFSETS_FILE, self.offsets)
    np.save(folder / PHOTO_LABELS_FILE, self.photo_labels)
    (folder / PHOTOS_FILE).write_text(json.dumps({"ids": list(self.photo_ids)}))
    # Bytes, then written: `save_file` creates its file 0600 whatever the umask, and a
    # service often reads the index as another user.
    (folder / EXTRACTOR_FILE).write_bytes(safetensors.numpy.save(self.extractor))

  @classmethod
  def load(
    cls, folder: pathlib.Path, summary: Mapping[str, Any], index_labels: np.ndarray
  ) -> "LocalFeatureStore":
    """Reads the six files, checked against each other, against the manifest's `summary`
    (its ``local_features`` record) and against the index's labels; anything that does
    not fit raises `IndexFormatError` naming the file."""
    arrays = {
      name: integrity.read_file(folder / name, _read_npy)
      for name in (DESCRIPTORS_FILE, KEYPOINTS_FILE, OFFSETS_FILE, PHOTO_LABELS_FILE)
    }
    for name, dtype, shape in (
      (DESCRIPTORS_FILE, np.int8, "(M, d)"),
      (KEYPOINTS_FILE, np.float16, "(M, 2)"),
    ):
      if arrays[name].dtype != dtype or arrays[name].ndim != 2:
        raise _refused(folder, _Problem(name, _wrong(arrays[name], f"{dtype.__name__} {shape}")))
    ids = integrity.read_file(folder / PHOTOS_FILE, _read_ids)
    extractor = integrity.read_file(
      folder / EXTRACTOR_FILE, lambda path: safetensors.numpy.load_file(str(path))
    )
    for name, value in extractor.items():
      if value.dtype != np.float32:
        raise _refused(folder, _Problem(EXTRACTOR_FILE, f"{name} is {value.dtype}, not float32"))
    try:
      store = cls(*arrays.values(), ids, extractor, summary["settings"])
    except _Problem as problem:
      raise _refused(folder, problem) from None
    stray = np.setdiff1d(store.photo_labels, index_labels)
    if len(stray):
      raise IndexFormatError(
        f"{folder / PHOTO_LABELS_FILE}: label(s) {stray[:5].tolist()} have no centroid in the index"
      )
    found = store.summary()
    wrong = [key for key in ("photos", "features", "descriptor_dim") if summary[key] != found[key]]
    if wrong:
      raise IndexFormatError(
        f"{folder / MANIFEST}: {MANIFEST_FIELD} says "
        f"{', '.join(f'{key} {summary[key]}' for key in wrong)}, the files hold "
        f"{', '.join(f'{found[key]}' for key in wrong)}"
      )
    return store


def read_local_features(
  directory: pathlib.Path, manifest: Mapping[str, Any], index_labels: np.ndarray
) -> LocalFeatureStore | None:
  """The index's stored local features, or None when it keeps none. All six files or none:
  one missing is named (a writer that stopped half-way, or a file copied in alone)."""
  present = [name for name in FILES if (directory / name).is_file()]
  summary = manifest.get(MANIFEST_FIELD)
  if present and len(present) < len(FILES):
    missing = next(name for name in FILES if name not in present)
    raise IndexFormatError(
      f"index file missing: {directory / missing} (the index holds {present[0]}, "
      "and local features are all six local_* files or none)"
    )
  if bool(present) != (summary is not None):
    raise IndexFormatError(
      f"{directory / MANIFEST}: {MANIFEST_FIELD} {'missing' if present else 'given'}, but "
      f"the index holds {'the' if present else 'none of the'} local_* files"
    )
  return LocalFeatureStore.load(directory, summary, index_labels) if present else None


# Checks ----------------------------------------------------------------------------------


def _integers(values, file: str) -> np.ndarray:
  values = np.asarray(values)
  if values.dtype.kind not in "iu" and values.size:
    raise _Problem(file, _wrong(values, "integers"))
  return values.astype(np.int64)


def _read_npy(path: pathlib.Path) -> np.ndarray:
  return np.load(path, allow_pickle=False)


def _json_values(settings: Mapping[str, Any]) -> dict[str, Any]:
  """`settings` as JSON reads them back (tuples as lists), so a loaded store compares equal
  to the saved one; NaN is refused, as strict JSON has none."""
  try:
    return json.loads(json.dumps(dict(settings), allow_nan=False))
  except (TypeError, ValueError) as e:
    raise ValueError(f"local feature settings are not JSON values: {e}") from None


def _float32(name: str, value) -> np.ndarray:
  value = np.ascontiguousarray(value, np.float32)
  if not np.isfinite(value).all():
    raise _Problem(EXTRACTOR_FILE, f"{name} holds NaN or infinite values")
  return value


def _wrong(array: np.ndarray, expected: str) -> str:
  return f"{array.dtype} array of shape {array.shape}, expected {expected}"


def _check_parts(store: LocalFeatureStore) -> None:
  """Raises `_Problem` naming the file of the first part that does not fit the others."""
  descriptors, keypoints, offsets = store.descriptors, store.keypoints, store.offsets
  if descriptors.dtype != np.int8 or descriptors.ndim != 2 or descriptors.shape[1] < 1:
    raise _Problem(DESCRIPTORS_FILE, _wrong(descriptors, "int8 (M, d): see `from_float`"))
  m = len(descriptors)
  if keypoints.shape != (m, 2):
    raise _Problem(KEYPOINTS_FILE, _wrong(keypoints, f"({m}, 2), one (x, y) per descriptor"))
  if offsets.ndim != 1 or len(offsets) < 1:
    raise _Problem(OFFSETS_FILE, _wrong(offsets, "(P + 1,) row offsets"))
  if offsets[0] != 0 or offsets[-1] != m:
    raise _Problem(
      OFFSETS_FILE,
      f"runs {offsets[0]} … {offsets[-1]}, expected 0 … {m} (the rows of {DESCRIPTORS_FILE})",
    )
  decreasing = np.flatnonzero(np.diff(offsets) < 0)
  if len(decreasing):
    raise _Problem(OFFSETS_FILE, f"decreases after photo {decreasing[0]}: photos own row ranges")
  photos = len(offsets) - 1
  if store.photo_labels.shape != (photos,):
    raise _Problem(PHOTO_LABELS_FILE, _wrong(store.photo_labels, f"({photos},), one per photo"))
  if len(store.photo_ids) != photos or not all(isinstance(i, str) for i in store.photo_ids):
    raise _Problem(PHOTOS_FILE, f"{len(store.photo_ids)} ids, expected {photos} strings")
  if not np.isfinite(keypoints).all():
    raise _Problem(KEYPOINTS_FILE, "holds NaN or infinite values")
  low, high = ((SCALE * bound) ** 2 for bound in NORM_RANGE)
  for start in range(0, m, _ROWS):
    block = descriptors[start : start + _ROWS].astype(np.int32)
    if (block == -SCALE - 1).any():
      raise _Problem(DESCRIPTORS_FILE, f"holds -128, outside ±{SCALE}")
    squares = (block * block).sum(1)  # exact: at most 127² · d
    bad = np.flatnonzero((squares < low) | (squares > high))
    if len(bad):
      row = start + int(bad[0])
      norm = float(np.sqrt(squares[bad[0]])) / SCALE
      raise _Problem(
        DESCRIPTORS_FILE, f"row {row} has norm {norm:.3f}, a unit descriptor's is 1 (±0.1)"
      )


def _differences(a: LocalFeatureStore, b: LocalFeatureStore) -> str:
  """What tells two stores' extractors apart ("" if nothing)."""
  missing = object()
  settings = sorted(
    key
    for key in {*a.settings, *b.settings}
    if a.settings.get(key, missing) != b.settings.get(key, missing)
  )
  if settings:
    return f"settings {', '.join(settings)} differ"
  arrays = sorted(
    name
    for name in {*a.extractor, *b.extractor}
    if name not in a.extractor
    or name not in b.extractor
    or not np.array_equal(a.extractor[name], b.extractor[name])
  )
  if arrays:
    return f"extractor arrays {', '.join(arrays)} differ"
  if a.descriptor_dim != b.descriptor_dim:
    return f"descriptors of {a.descriptor_dim} and {b.descriptor_dim} dimensions"
  return ""


def _read_ids(path: pathlib.Path) -> tuple[str, ...]:
  content = json.loads(path.read_bytes().decode("utf-8"))  # strict UTF-8 whatever the locale
  ids = content.get("ids") if isinstance(content, dict) else None
  if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
    raise IndexFormatError(f'{path}: expected {{"ids": [photo ids as strings]}}')
  return tuple(ids)


def _refused(folder: pathlib.Path, problem: _Problem) -> IndexFormatError:
  return IndexFormatError(f"{folder / problem.file}: {problem.message}")
