"""Dense class labels ↔ a dataset's own landmark ids.

Training needs labels 0..n-1 with the non-landmark class last (n); users need predictions in
their dataset's ids. `LabelMap` is that bijection, saved as JSON beside every model and index.
Labels are ordered by curriculum part first, then by id, so that the classes of part k come
after those of parts 1..k-1: growing the classifier for a new part only appends rows.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
from typing import Hashable, Iterable, Mapping, Sequence

import numpy as np

from landmark_jax.errors import DataError

logger = logging.getLogger(__name__)

# The four geographic parts of the paper's curriculum, in training order.
REGIONS = ("europe_russia", "north_america_oceania", "middle_east_north_africa", "far_east")

LABEL_MAP_FORMAT = 1


def _sort_key(landmark_id) -> tuple:
  # Integers sort numerically and before strings, so mixed/str ids still have one order.
  return (0, landmark_id, "") if isinstance(landmark_id, int) else (1, 0, str(landmark_id))


class UnknownLandmarkError(DataError, KeyError):
  """A landmark id the label map does not know."""

  def __str__(self) -> str:  # KeyError would quote the message
    return str(self.args[0])


# How many of the landmarks without a region `check_unassigned` names.
UNASSIGNED_SHOWN = 10


def check_unassigned(label_map: "LabelMap", policy: str) -> None:
  """Refuses landmarks without a region (``curriculum.unassigned="refuse"``), or logs their
  count (``"last"``: they train in the last stage). Call it only where the stages are used.

  Raises:
    DataError: ``policy="refuse"`` and `label_map.unassigned` is not empty.
  """
  missing = label_map.unassigned
  if not missing:
    return
  if policy == "last":
    logger.info(
      "%d of %d landmarks have no region in data.regions_csv: they train in the last "
      "curriculum stage (curriculum.unassigned=last)",
      len(missing),
      label_map.num_classes,
    )
    return
  shown = ", ".join(map(str, missing[:UNASSIGNED_SHOWN]))
  more = f" and {len(missing) - UNASSIGNED_SHOWN} more" if len(missing) > UNASSIGNED_SHOWN else ""
  raise DataError(
    f"{len(missing)} of {label_map.num_classes} landmarks have no region in "
    f"data.regions_csv ({shown}{more}), so the curriculum cannot place them: add them "
    "(`landmark-jax regions` makes the CSV from coordinates or country codes), or "
    "curriculum.unassigned=last to train them in the last stage, or "
    "curriculum.enabled=False"
  )


@dataclasses.dataclass(frozen=True)
class LabelMap:
  """`landmark_ids[label]` is the dataset's id of dense class `label`.

  Attributes:
    landmark_ids: dataset ids (int or str) in label order.
    stage_sizes: number of classes in curriculum parts 1..k, cumulative, one per stage
      (a single stage holding every class when the data has no regions).
    unassigned: the ids `from_ids` found no region for (in label order), put in the last
      stage; what the curriculum checks (`check_unassigned`). Not saved, not compared.
  """

  landmark_ids: tuple[Hashable, ...]
  stage_sizes: tuple[int, ...] = ()
  unassigned: tuple[Hashable, ...] = dataclasses.field(default=(), compare=False, repr=False)

  def __post_init__(self):
    if len(set(self.landmark_ids)) != len(self.landmark_ids):
      raise ValueError("landmark ids in a LabelMap must be unique")
    if not self.stage_sizes:
      object.__setattr__(self, "stage_sizes", (len(self.landmark_ids),))
    if self.stage_sizes[-1] != len(self.landmark_ids):
      raise ValueError(
        f"the last stage must hold all {len(self.landmark_ids)} classes, "
        f"got stage sizes {self.stage_sizes}"
      )
    object.__setattr__(self, "_index", {lid: i for i, lid in enumerate(self.landmark_ids)})

  @classmethod
  def from_ids(
    cls, landmark_ids: Iterable[Hashable], regions: Mapping[Hashable, str] | None = None
  ) -> "LabelMap":
    """Dense labels for the distinct `landmark_ids`, grouped by region when `regions` is given.

    Landmarks without a region entry join the last stage and are listed in `unassigned`:
    the curriculum refuses them unless ``curriculum.unassigned=last`` (`check_unassigned`);
    without the curriculum the stages are unused. Regions are the four `REGIONS`.
    """
    unique = sorted(set(landmark_ids), key=_sort_key)
    if not regions:
      return cls(tuple(unique))
    unknown = sorted({r for r in regions.values() if r not in REGIONS})
    if unknown:
      raise DataError(f"unknown region(s) {unknown}; expected one of {list(REGIONS)}")
    stage_of = {
      lid: REGIONS.index(regions[lid]) if lid in regions else len(REGIONS) - 1 for lid in unique
    }
    present = sorted(set(stage_of.values()))
    ordered = sorted(unique, key=lambda lid: (stage_of[lid], _sort_key(lid)))
    sizes = tuple(sum(1 for lid in unique if stage_of[lid] <= stage) for stage in present)
    unassigned = tuple(lid for lid in ordered if lid not in regions)
    return cls(tuple(ordered), sizes, unassigned)

  @property
  def num_classes(self) -> int:
    """Landmark classes n; the classifier has n + 1 outputs."""
    return len(self.landmark_ids)

  @property
  def non_landmark_label(self) -> int:
    return self.num_classes

  @property
  def num_stages(self) -> int:
    return len(self.stage_sizes)

  def stage_of_label(self, label: int) -> int:
    """The first curriculum stage that trains `label` (non-landmark: stage 0)."""
    if label == self.non_landmark_label:
      return 0
    return next(stage for stage, size in enumerate(self.stage_sizes) if label < size)

  def to_label(self, landmark_id: Hashable | None) -> int:
    """Dataset id → dense label; None is the non-landmark class."""
    if landmark_id is None:
      return self.non_landmark_label
    try:
      return self._index[landmark_id]
    except KeyError:
      raise UnknownLandmarkError(
        f"landmark {landmark_id!r} is not one of the {self.num_classes} landmarks of this "
        f"model or index (not in its label map){self._closest(landmark_id)}"
      ) from None

  def _closest(self, landmark_id) -> str:
    """ "; did you mean …?" for a misspelt id (only for maps small enough to search)."""
    import difflib

    if self.num_classes > 50_000:
      return ""
    close = difflib.get_close_matches(str(landmark_id), map(str, self.landmark_ids), n=3)
    return f"; did you mean {', '.join(close)}?" if close else ""

  def to_labels(self, landmark_ids: Iterable[Hashable | None]) -> np.ndarray:
    """`to_label` of each id, as int32: one dict lookup per id in C (`map`), so 4 M ids
    take a fraction of a second where a Python loop of `to_label` takes seconds.

    Raises:
      UnknownLandmarkError: the first id the map does not know (`to_label`'s message).
    """
    landmark_ids = list(landmark_ids)
    labels = np.fromiter(
      map(self._index.get, landmark_ids, itertools.repeat(-1)), np.int64, count=len(landmark_ids)
    )
    for position in np.flatnonzero(labels < 0):  # None (non-landmark) or unknown
      labels[position] = self.to_label(landmark_ids[position])
    return labels.astype(np.int32)

  def to_landmark_id(self, label: int) -> Hashable | None:
    """Dense label → dataset id; the non-landmark label gives None."""
    if label == self.non_landmark_label:
      return None
    if not 0 <= label < self.num_classes:
      raise ValueError(f"label {label} outside 0..{self.non_landmark_label}")
    return self.landmark_ids[label]

  def to_landmark_ids(self, labels: Sequence[int]) -> list:
    """`to_landmark_id` of each label (one array lookup, not a Python call per label)."""
    labels = np.asarray(labels, np.int64).reshape(-1)
    bad = (labels < 0) | (labels > self.non_landmark_label)
    if bad.any():
      raise ValueError(f"label {int(labels[bad][0])} outside 0..{self.non_landmark_label}")
    table = np.empty(self.num_classes + 1, dtype=object)
    table[:-1] = self.landmark_ids
    table[-1] = None
    return table[labels].tolist()

  def to_json(self) -> dict:
    return {
      "format": LABEL_MAP_FORMAT,
      "landmark_ids": list(self.landmark_ids),
      "stage_sizes": list(self.stage_sizes),
      "non_landmark_label": self.non_landmark_label,
    }

  @classmethod
  def from_json(cls, payload: Mapping) -> "LabelMap":
    if payload.get("format") != LABEL_MAP_FORMAT:
      raise ValueError(f"label map format {payload.get('format')!r}, expected {LABEL_MAP_FORMAT}")
    return cls(tuple(payload["landmark_ids"]), tuple(payload["stage_sizes"]))

  def save(self, path: str | os.PathLike) -> None:
    tmp = f"{os.fspath(path)}.tmp"
    with open(tmp, "w") as f:
      json.dump(self.to_json(), f)
    os.replace(tmp, path)  # atomic: a reader never sees half a file

  @classmethod
  def load(cls, path: str | os.PathLike) -> "LabelMap":
    with open(path) as f:
      return cls.from_json(json.load(f))
