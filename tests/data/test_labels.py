import numpy as np
import pytest

from landmark_jax.data.labels import LabelMap


def test_regions_order_labels_by_curriculum_part():
  regions = {10: "far_east", 3: "europe_russia", 7: "north_america_oceania", 5: "europe_russia"}
  label_map = LabelMap.from_ids([10, 3, 7, 5, 3], regions)
  # europe_russia (3, 5), then north_america_oceania (7), then far_east (10).
  assert label_map.landmark_ids == (3, 5, 7, 10)
  assert label_map.stage_sizes == (2, 3, 4)
  assert label_map.non_landmark_label == 4
  assert [label_map.stage_of_label(i) for i in range(5)] == [0, 0, 1, 2, 0]


def test_no_regions_is_one_stage_sorted_numerically():
  label_map = LabelMap.from_ids([100, 20, 3])
  assert label_map.landmark_ids == (3, 20, 100) and label_map.stage_sizes == (3,)


def test_round_trip_and_mapping(tmp_path):
  label_map = LabelMap.from_ids(["b", "a", 7])
  label_map.save(tmp_path / "labels.json")
  loaded = LabelMap.load(tmp_path / "labels.json")
  assert loaded == label_map
  assert loaded.to_landmark_ids(np.array([0, 1, 2, 3])) == [7, "a", "b", None]
  assert loaded.to_label(None) == 3
  with pytest.raises(KeyError, match="'zz'"):
    loaded.to_label("zz")


def test_unknown_region_is_named():
  with pytest.raises(ValueError, match="antarctica"):
    LabelMap.from_ids([1], {1: "antarctica"})
