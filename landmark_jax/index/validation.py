"""The validation photos an index was calibrated on, kept with it as embeddings.

η depends on the index: every added landmark brings centroids that some non-landmark photo
may now resemble. Keeping the calibration photos' embeddings (not their files, which move
or vanish) makes recalibration after an edit a search over stored vectors: no photo is
decoded again, and `add-landmarks --recalibrate` joins the new landmarks' held-back photos
to the set. Landmarks are stored by their dataset ids, so the set stays valid however the
label map grows; a removed landmark's photos leave the set with it.

Files: ``validation_embeddings.npy`` (float32, (n, D), unit rows) and ``validation.json``
(``{"ids": [...], "landmark_ids": [...]}``, null for a non-landmark photo), both listed with
their checksums in the index manifest.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from typing import Hashable, Iterable, Sequence

import numpy as np

from landmark_jax.errors import DataError

EMBEDDINGS_FILE = "validation_embeddings.npy"
PHOTOS_FILE = "validation.json"
FILES = (EMBEDDINGS_FILE, PHOTOS_FILE)


@dataclasses.dataclass(frozen=True)
class ValidationSet:
  """Embedded validation photos: `landmark_ids[i]` is photo i's landmark (None: none)."""

  ids: tuple[str, ...]
  landmark_ids: tuple[Hashable | None, ...]
  embeddings: np.ndarray  # (n, D) float32, unit rows

  def __post_init__(self):
    object.__setattr__(self, "ids", tuple(str(i) for i in self.ids))
    object.__setattr__(self, "landmark_ids", tuple(self.landmark_ids))
    object.__setattr__(self, "embeddings", np.asarray(self.embeddings, np.float32))
    n = len(self.ids)
    if len(self.landmark_ids) != n or self.embeddings.ndim != 2 or len(self.embeddings) != n:
      raise ValueError(
        f"{n} ids, {len(self.landmark_ids)} landmark ids and embeddings of "
        f"shape {self.embeddings.shape} do not describe the same photos"
      )

  def __len__(self) -> int:
    return len(self.ids)

  @property
  def is_non_landmark(self) -> np.ndarray:
    return np.array([landmark is None for landmark in self.landmark_ids], bool)

  def counts(self) -> tuple[int, int]:
    """(landmark photos, non-landmark photos)."""
    non_landmark = int(self.is_non_landmark.sum())
    return len(self) - non_landmark, non_landmark

  def joined(self, other: "ValidationSet") -> "ValidationSet":
    if len(self) and len(other) and self.embeddings.shape[1] != other.embeddings.shape[1]:
      raise DataError(
        f"validation embeddings of {self.embeddings.shape[1]} and "
        f"{other.embeddings.shape[1]} dimensions cannot be joined"
      )
    if not len(other):
      return self
    if not len(self):
      return other
    return ValidationSet(
      self.ids + other.ids,
      self.landmark_ids + other.landmark_ids,
      np.concatenate([self.embeddings, other.embeddings]),
    )

  def without_landmarks(self, landmark_ids: Iterable[Hashable]) -> "ValidationSet":
    """The set without the photos of `landmark_ids` (landmarks removed from the index: a
    photo of one is neither a known landmark nor a non-landmark photo any more)."""
    removed = set(landmark_ids)
    keep = [
      i
      for i, landmark in enumerate(self.landmark_ids)
      if landmark is None or landmark not in removed
    ]
    return self.subset(keep)

  def subset(self, rows: Sequence[int]) -> "ValidationSet":
    rows = list(rows)
    return ValidationSet(
      tuple(self.ids[i] for i in rows),
      tuple(self.landmark_ids[i] for i in rows),
      self.embeddings[np.asarray(rows, np.int64)].reshape(len(rows), self.embeddings.shape[1]),
    )

  def save(self, folder: pathlib.Path) -> None:
    np.save(folder / EMBEDDINGS_FILE, self.embeddings)
    (folder / PHOTOS_FILE).write_text(
      json.dumps({"ids": list(self.ids), "landmark_ids": list(self.landmark_ids)})
    )

  @classmethod
  def load(cls, folder: pathlib.Path, dim: int) -> "ValidationSet":
    """Reads the two files; raises ValueError naming what does not fit (the index loader
    reports it as a damaged index file)."""
    embeddings = np.load(folder / EMBEDDINGS_FILE, allow_pickle=False)
    photos = json.loads((folder / PHOTOS_FILE).read_bytes().decode("utf-8"))
    if (
      not isinstance(photos, dict)
      or not isinstance(photos.get("ids"), list)
      or not isinstance(photos.get("landmark_ids"), list)
    ):
      raise ValueError(f"{PHOTOS_FILE} must hold lists 'ids' and 'landmark_ids'")
    if any(not isinstance(l, (int, str)) for l in photos["landmark_ids"] if l is not None):
      raise ValueError(f"{PHOTOS_FILE}: landmark ids are integers, strings or null")
    if embeddings.dtype != np.float32 or embeddings.ndim != 2 or embeddings.shape[1] != dim:
      raise ValueError(
        f"{EMBEDDINGS_FILE}: {embeddings.dtype} array of shape "
        f"{embeddings.shape}, expected float32 (n, {dim})"
      )
    if not np.isfinite(embeddings).all():
      raise ValueError(f"{EMBEDDINGS_FILE}: holds NaN or infinite values")
    return cls(tuple(photos["ids"]), tuple(photos["landmark_ids"]), embeddings)
