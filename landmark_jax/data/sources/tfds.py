"""A prepared TFDS dataset, read through `tfds.data_source` without TensorFlow."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from landmark_jax.data.labels import LabelMap
from landmark_jax.data.sources.base import ImageSource


class TfdsSource(ImageSource):
  """Any prepared TFDS dataset with an image and a label feature, via `tfds.data_source`.

  Images are read as their encoded bytes (``SkipDecoding``) and decoded by Pillow in the
  workers, so no TensorFlow is needed. `non_landmark_value`, if given, is the label value
  that means "no landmark".
  """

  def __init__(
    self,
    name: str,
    *,
    split: str = "train",
    data_dir: str | None = None,
    image_key: str = "image",
    label_key: str = "label",
    non_landmark_value: int | None = None,
    label_map: LabelMap | None = None,
  ):
    import tensorflow_datasets as tfds

    self._data = tfds.data_source(
      name, split=split, data_dir=data_dir, decoders={image_key: tfds.decode.SkipDecoding()}
    )
    self._image_key = image_key
    # One pass over the labels: they are needed for the label map and per-class statistics.
    # Reading a record here does not decode its image.
    raw_labels = [int(self._data[i][label_key]) for i in range(len(self._data))]
    landmark_ids = [None if v == non_landmark_value else v for v in raw_labels]
    if label_map is None:
      label_map = LabelMap.from_ids(lid for lid in landmark_ids if lid is not None)
    labels = np.fromiter(
      (label_map.to_label(lid) for lid in landmark_ids), np.int32, count=len(raw_labels)
    )
    super().__init__(
      [f"{name}/{split}/{i}" for i in range(len(raw_labels))], labels, None, label_map
    )
    self._index = np.arange(len(raw_labels))

  def __getitem__(self, index: int) -> dict[str, Any]:
    record = self._data[int(self._index[index])]
    return {"id": self.ids[index], "label": self.labels[index], "encoded": record[self._image_key]}

  def subset(self, indices: Sequence[int]) -> "TfdsSource":
    indices = np.asarray(indices, dtype=np.int64)
    view = object.__new__(TfdsSource)
    ImageSource.__init__(view, self.ids[indices], self.labels[indices], None, self.label_map)
    view._data, view._image_key, view._index = self._data, self._image_key, self._index[indices]
    return view
