"""Class references: photos known to show each landmark, kept with the index as embeddings.

The paper filters candidates "by class references and meta-data" (Fig. 2). A centroid is the
mean direction of a cluster, and a photo can lie close to that mean while far from every
photo the cluster holds (between two of the landmark's views, or off to one side of a
spread cluster). The recognizer accepts its best candidate only if the photo is also close
to one of that landmark's references (`Recognizer`, threshold ρ calibrated like η).

References come from the cleaning: the photos a references CSV names, or else the medoid of
each valid cluster (`landmark_jax.cleaning`). Files: ``references.npy`` (float32 (r, D), unit
rows) and ``reference_labels.npy`` (int64 (r,), the index's dense labels), both listed with
their checksums in the index manifest.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Iterable

import numpy as np

VECTORS_FILE = "references.npy"
LABELS_FILE = "reference_labels.npy"
FILES = (VECTORS_FILE, LABELS_FILE)


@dataclasses.dataclass(frozen=True)
class References:
  """Reference embeddings; `labels[i]` is the dense label of the landmark reference i shows."""

  vectors: np.ndarray  # (r, D) float32, unit rows
  labels: np.ndarray  # (r,) int64

  def __post_init__(self):
    object.__setattr__(self, "vectors", np.ascontiguousarray(self.vectors, np.float32))
    object.__setattr__(self, "labels", np.asarray(self.labels, np.int64))
    if self.vectors.ndim != 2 or self.labels.shape != (len(self.vectors),):
      raise ValueError(
        f"reference vectors {self.vectors.shape} and labels "
        f"{self.labels.shape} do not describe the same references"
      )
    # Sorted by label once, so a query's references are one slice.
    order = np.argsort(self.labels, kind="stable")
    object.__setattr__(self, "_order", order)
    object.__setattr__(self, "_sorted_labels", self.labels[order])

  def __len__(self) -> int:
    return len(self.labels)

  def best_similarity(self, queries: np.ndarray, labels: Iterable[int]) -> np.ndarray:
    """For each query (unit rows), its largest cosine similarity to a reference of the
    landmark `labels[i]`; -inf where that landmark has no reference."""
    queries = np.asarray(queries, np.float32)
    out = np.full(len(queries), -np.inf, np.float32)
    for i, label in enumerate(labels):
      start, end = np.searchsorted(self._sorted_labels, [label, label + 1])
      if end > start:
        out[i] = float((self.vectors[self._order[start:end]] @ queries[i]).max())
    return out

  def covers(self, labels: Iterable[int]) -> np.ndarray:
    """Whether each label has at least one reference."""
    return np.isin(np.asarray(list(labels), np.int64), self.labels)

  def without_labels(self, labels: Iterable[int]) -> "References":
    keep = ~np.isin(self.labels, np.asarray(list(labels), np.int64))
    return References(self.vectors[keep], self.labels[keep])

  def joined(self, other: "References") -> "References":
    return References(
      np.concatenate([self.vectors, other.vectors]), np.concatenate([self.labels, other.labels])
    )

  def save(self, folder: pathlib.Path) -> None:
    np.save(folder / VECTORS_FILE, self.vectors)
    np.save(folder / LABELS_FILE, self.labels)

  @classmethod
  def load(cls, folder: pathlib.Path, dim: int, index_labels: np.ndarray) -> "References":
    """Reads the two files; raises ValueError naming what does not fit (the index loader
    reports it as a damaged index file)."""
    vectors = np.load(folder / VECTORS_FILE, allow_pickle=False)
    labels = np.load(folder / LABELS_FILE, allow_pickle=False)
    if vectors.dtype != np.float32 or vectors.ndim != 2 or vectors.shape[1] != dim:
      raise ValueError(
        f"{VECTORS_FILE}: {vectors.dtype} array of shape {vectors.shape}, "
        f"expected float32 (r, {dim})"
      )
    if labels.dtype.kind not in "iu" or labels.shape != (len(vectors),):
      raise ValueError(
        f"{LABELS_FILE}: {labels.dtype} array of shape {labels.shape}, expected "
        f"{len(vectors)} integers, one per reference"
      )
    if not np.isfinite(vectors).all():
      raise ValueError(f"{VECTORS_FILE}: holds NaN or infinite values")
    stray = np.setdiff1d(labels, index_labels)
    if len(stray):
      raise ValueError(
        f"{LABELS_FILE}: label(s) {stray[:5].tolist()} have no centroid in the index"
      )
    return cls(vectors, labels)
