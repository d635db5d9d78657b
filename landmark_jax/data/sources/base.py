"""What every image source is: parallel arrays of ids, dense labels and file paths (or keys
into packed shards), with the `LabelMap` that gives the labels."""

from __future__ import annotations

from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from landmark_jax.data.labels import LabelMap

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


class ImageSource:
  """Common machinery: parallel arrays of ids, labels and file paths, plus the label map.

  Instead of paths, `images` (a random-access sequence of encoded images: the ArrayRecord
  shards of a packed folder) with `keys` (each record's key in it): records then carry
  ``"encoded"`` bytes. `images` must pickle cheaply (grain sends the source to its workers).
  """

  def __init__(
    self,
    ids: Sequence[str],
    labels: np.ndarray,
    paths: Sequence[str] | None,
    label_map: LabelMap,
    *,
    names: Mapping[Hashable, str] | None = None,
    categories: Mapping[Hashable, str] | None = None,
    images: Sequence[bytes] | None = None,
    keys: Sequence[int] | None = None,
  ):
    self.ids = np.asarray(ids, dtype=object)
    self.labels = np.asarray(labels, dtype=np.int32)
    self.paths = None if paths is None else np.asarray(paths, dtype=object)
    self.label_map = label_map
    self.names = dict(names or {})
    self.categories = dict(categories or {})
    if (images is None) != (keys is None):
      raise ValueError("give images and keys together")
    self.images = images
    self.keys = None if keys is None else np.asarray(keys, dtype=np.int64)

  def __len__(self) -> int:
    return len(self.labels)

  def __getitem__(self, index: int) -> dict[str, Any]:
    if self.images is not None:
      return {
        "id": self.ids[index],
        "label": self.labels[index],
        "encoded": self.images[int(self.keys[index])],
      }
    return {"id": self.ids[index], "label": self.labels[index], "path": self.paths[index]}

  def subset(self, indices: Sequence[int]) -> "ImageSource":
    """The records at `indices`, with the same label map (e.g. one curriculum stage)."""
    indices = np.asarray(indices, dtype=np.int64)
    return ImageSource(
      self.ids[indices],
      self.labels[indices],
      None if self.paths is None else self.paths[indices],
      self.label_map,
      names=self.names,
      categories=self.categories,
      images=self.images,
      keys=None if self.keys is None else self.keys[indices],
    )

  def stage_subset(self, stage: int) -> "ImageSource":
    """Records whose class is trained in curriculum stages 0..`stage` (non-landmarks always)."""
    limit = self.label_map.stage_sizes[stage]
    keep = (self.labels < limit) | (self.labels == self.label_map.non_landmark_label)
    return self.subset(np.flatnonzero(keep))

  def landmark_ids(self) -> list:
    """The dataset's landmark id of every record (None for non-landmark)."""
    return self.label_map.to_landmark_ids(self.labels)

  def images_per_class(self) -> np.ndarray:
    """Count of records per dense label, non-landmark last."""
    return np.bincount(self.labels, minlength=self.label_map.num_classes + 1)

  def images_per_landmark(self) -> dict:
    """The dataset's landmark id → its number of records (rare/frequent breakdowns)."""
    return dict(zip(self.label_map.landmark_ids, self.images_per_class()[:-1].tolist()))
