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


def test_landmarks_without_a_region_are_listed_and_refused_by_default(caplog):
  from landmark_jax.data.labels import check_unassigned
  from landmark_jax.errors import DataError

  # Regions for 2 of 4 landmarks: without a check, 3 and 4 would silently form a far_east
  # stage, stages (1, 2, 4).
  label_map = LabelMap.from_ids([1, 2, 3, 4], {1: "europe_russia", 2: "north_america_oceania"})
  assert label_map.stage_sizes == (1, 2, 4) and label_map.unassigned == (3, 4)
  with pytest.raises(DataError) as refused:
    check_unassigned(label_map, "refuse")
  message = str(refused.value)
  assert "\n" not in message
  assert message.startswith("2 of 4 landmarks have no region in data.regions_csv (3, 4),")
  assert "curriculum.unassigned=last" in message and "curriculum.enabled=False" in message
  # "last" keeps the stages and says how many.
  with caplog.at_level("INFO", logger="landmark_jax.data.labels"):
    check_unassigned(label_map, "last")
  assert "2 of 4 landmarks have no region" in caplog.text
  # Complete regions: nothing to say.
  check_unassigned(LabelMap.from_ids([1, 2], {1: "far_east", 2: "far_east"}), "refuse")
  check_unassigned(LabelMap.from_ids([1, 2]), "refuse")


def test_the_refusal_names_at_most_ten_landmarks_and_the_count():
  from landmark_jax.data.labels import check_unassigned
  from landmark_jax.errors import DataError

  label_map = LabelMap.from_ids(range(25), {0: "europe_russia"})
  assert label_map.unassigned == tuple(range(1, 25))
  with pytest.raises(
    DataError,
    match=r"^24 of 25 landmarks .* \(1, 2, 3, 4, 5, 6, 7, 8, 9, 10 "
    r"and 14 more\)",
  ):
    check_unassigned(label_map, "refuse")


def test_unassigned_landmarks_are_not_saved_or_compared(tmp_path):
  label_map = LabelMap.from_ids([1, 2], {1: "europe_russia"})
  label_map.save(tmp_path / "labels.json")
  loaded = LabelMap.load(tmp_path / "labels.json")
  assert loaded == label_map and loaded.unassigned == ()
