"""Landmarks named by id or by name, and an edit that never rewrites existing landmarks'
metadata unless asked (hand-built tables: the rules, without a model)."""

import numpy as np
import pytest

from landmark_jax.cli import main
from landmark_jax.data import LabelMap
from landmark_jax.errors import DataError
from landmark_jax.index import CentroidIndex
from landmark_jax.index.editing import add_centroids, remove_landmarks
from landmark_jax.index.landmarks import LandmarkInfo, find_landmark, merge_metadata
from landmark_jax.index.validation import ValidationSet
from tests.helpers import clustered_vectors

DEMO = {
  0: LandmarkInfo("astronaut", 48.0, 2.0),
  1: LandmarkInfo("coffee", 45.0, 12.0),
  2: LandmarkInfo("camera", 40.0, -3.0),
  3: LandmarkInfo("rocket", 28.5, -80.6),
}
# A user's CSV for two new landmarks whose folders are named by name, reusing ids 2 and 3.
USER_CSV = {
  2: LandmarkInfo("sacre_coeur_paris", 48.88671, 2.34305),
  3: LandmarkInfo("st_pauls_cathedral_london", 51.51383, -0.09836),
}


def demo_index(validation=None) -> CentroidIndex:
  vectors, _ = clustered_vectors(8, dim=16, clusters=4)
  return CentroidIndex.build(
    vectors, np.arange(8) // 2, label_map=LabelMap.from_ids(range(4)), landmarks=DEMO
  ).with_validation(validation)


def test_new_landmarks_take_their_rows_by_name_and_existing_ones_are_untouched():
  merge = merge_metadata(DEMO, DEMO, ["sacre_coeur_paris", "st_pauls_cathedral_london"], USER_CSV)
  assert {k: merge.landmarks[k] for k in DEMO} == DEMO  # ids 2 and 3 keep their metadata
  assert merge.landmarks["sacre_coeur_paris"] == USER_CSV[2]
  assert merge.landmarks["st_pauls_cathedral_london"] == USER_CSV[3]
  assert merge.by_name == {"sacre_coeur_paris": 2, "st_pauls_cathedral_london": 3}
  assert merge.not_updated == () and merge.without_row == ()


def test_rows_by_id_and_existing_rows_need_update_metadata():
  table = {
    "eiffel": LandmarkInfo("Tour Eiffel", 48.858, 2.294),
    1: LandmarkInfo("espresso", 1.0, 1.0),
    99: LandmarkInfo("nowhere"),
  }
  kept = merge_metadata(DEMO, DEMO, ["eiffel", "louvre"], table)
  assert kept.landmarks[1] == DEMO[1] and kept.not_updated == (1,)
  assert kept.by_id == ("eiffel",) and kept.without_row == ("louvre",) and kept.unused == (99,)
  updated = merge_metadata(DEMO, DEMO, ["eiffel"], table, update_existing=True)
  assert updated.landmarks[1] == LandmarkInfo("espresso", 1.0, 1.0) and updated.updated == (1,)


def test_a_row_for_an_existing_folder_landmark_is_found_by_name_or_refused_if_ambiguous():
  # berliner_dom was added earlier from a folder, with no CSV.
  existing = {**DEMO, "berliner_dom": LandmarkInfo()}
  dom = LandmarkInfo("berliner_dom", 52.51908, 13.40107)
  # A row whose id is no landmark of the index describes the folder landmark it names.
  updated = merge_metadata(existing, existing, [], {99: dom}, update_existing=True)
  assert updated.updated == ("berliner_dom",) and updated.landmarks["berliner_dom"] == dom
  # `1,berliner_dom`: id 1 is "coffee" — which one is meant? Not applied, or refused.
  kept = merge_metadata(existing, existing, [], {1: dom})
  assert kept.not_updated == (1,) and kept.landmarks == existing
  with pytest.raises(DataError, match="rows 1,berliner_dom: the landmark_id is one landmark"):
    merge_metadata(existing, existing, [], {1: dom}, update_existing=True)
  # A name that is a numeric id is a name, not a pointer (only folder landmarks have
  # string ids): `7,3` renames 7 to "3" — refused, since "3" is landmark 3's id.
  with pytest.raises(DataError, match="'3' would name 3 and 7"):
    merge_metadata(
      {**DEMO, 7: LandmarkInfo("ihc")}, [*DEMO, 7], [], {7: LandmarkInfo("3")}, update_existing=True
    )
  # A row equal to the landmark's metadata changes nothing and is not reported.
  same = merge_metadata(DEMO, DEMO, [], {1: DEMO[1]}, update_existing=True)
  assert same.updated == () and same.not_updated == ()


def test_a_merge_that_gives_two_landmarks_one_name_is_refused():
  with pytest.raises(DataError, match="'coffee' would name 0 and 1"):
    merge_metadata(DEMO, DEMO, [], {0: LandmarkInfo("coffee")}, update_existing=True)
  with pytest.raises(DataError, match="'astronaut' would name 0 and new"):
    merge_metadata(DEMO, DEMO, ["new"], {"new": LandmarkInfo("astronaut")})
  with_eiffel = {**DEMO, "eiffel": LandmarkInfo()}  # a name equal to another's id, too
  with pytest.raises(DataError, match="'Eiffel' would name 2 and eiffel"):
    merge_metadata(with_eiffel, with_eiffel, [], {2: LandmarkInfo("Eiffel")}, update_existing=True)


def test_add_centroids_keeps_existing_metadata_and_records_the_merge():
  index = demo_index()
  new, _ = clustered_vectors(2, dim=16, clusters=2, seed=3)
  added = add_centroids(
    index, new, ["sacre_coeur_paris", "st_pauls_cathedral_london"], np.array([6, 2]), USER_CSV, {}
  )
  assert {k: added.landmarks[k] for k in DEMO} == DEMO
  assert added.landmarks["sacre_coeur_paris"].name == "sacre_coeur_paris"
  assert added.metadata["edits"][-1]["metadata"]["by_name"] == {
    "sacre_coeur_paris": "2",
    "st_pauls_cathedral_london": "3",
  }


def test_a_clash_names_the_landmark_and_does_not_suggest_removing_it():
  new, _ = clustered_vectors(1, dim=16, clusters=1, seed=3)
  with pytest.raises(DataError, match=r"already has landmark\(s\) 2 \(camera\)") as error:
    add_centroids(demo_index(), new, [2], np.array([3]), None, {})
  assert "ids the index does not use" in str(error.value)


def test_a_landmark_is_found_by_id_or_name():
  ids = [0, 1, 2, "sacre_coeur_paris"]
  table = {**DEMO, "sacre_coeur_paris": LandmarkInfo("Sacré-Cœur")}
  assert find_landmark("1", ids, table) == 1
  assert find_landmark("coffee", ids, table) == 1
  assert find_landmark("COFFEE", ids, table) == 1
  assert find_landmark("sacre_coeur_paris", ids, table) == "sacre_coeur_paris"
  assert find_landmark("Sacré-Cœur", ids, table) == "sacre_coeur_paris"
  with pytest.raises(DataError, match="did you mean sacre_coeur_paris"):
    find_landmark("sacre_coeur", ids, table)
  with pytest.raises(DataError, match="no landmark 'rocket'"):  # 3 is not among `ids`
    find_landmark("rocket", ids, table)
  twins = {0: LandmarkInfo("tower"), 1: LandmarkInfo("tower")}
  with pytest.raises(DataError, match="2 landmarks are named 'tower'"):
    find_landmark("tower", [0, 1], twins)


def test_remove_by_name_drops_its_validation_photos_too():
  photos, _ = clustered_vectors(4, dim=16, clusters=2, seed=4)
  validation = ValidationSet(["a", "b", "c", "d"], [1, None, 2, 1], photos)
  removed = remove_landmarks(demo_index(validation), ["coffee"])
  assert 1 not in removed.label_map.to_landmark_ids(np.unique(removed.labels))
  assert 1 not in removed.landmarks and removed.landmarks[2] == DEMO[2]
  assert removed.validation.ids == ("b", "c")
  np.testing.assert_array_equal(removed.validation.embeddings, photos[[1, 2]])
  with pytest.raises(DataError, match="no landmark 'nowhere'"):
    remove_landmarks(removed, ["nowhere"])
  with pytest.raises(DataError, match="no landmark 'coffee'"):  # already removed
    remove_landmarks(removed, ["coffee"])


def test_update_landmarks_renames_by_id_or_folder_name_and_keeps_the_rest(tmp_path, capsys, caplog):
  index = demo_index()
  new, _ = clustered_vectors(1, dim=16, clusters=1, seed=3)
  add_centroids(index, new, ["berliner_dom"], np.array([3]), None, {}).save(tmp_path / "index")
  (tmp_path / "fix.csv").write_text(
    "landmark_id,name,latitude,longitude\n"
    "0,Astronaut (NASA),28.5,-80.6\n"
    "berliner_dom,berliner_dom,52.51908,13.40107\n"
    "42,nowhere,,\n"
  )
  argv = ["update-landmarks", "--index", str(tmp_path / "index")]
  argv += ["--landmarks-csv", str(tmp_path / "fix.csv")]
  # Row 42 describes no landmark: refused, naming it, and nothing is applied.
  assert main(argv) == 2
  assert "1 row(s) match no landmark of the index" in capsys.readouterr().err
  assert CentroidIndex.load(tmp_path / "index").landmarks[0] == DEMO[0]
  assert main([*argv, "--ignore-unmatched"]) == 0
  out = capsys.readouterr().out
  assert "landmark 0 (astronaut) → Astronaut (NASA)" in out
  assert "landmark_id 42; skipped (--ignore-unmatched)" in caplog.text
  updated = CentroidIndex.load(tmp_path / "index")
  assert updated.landmarks[0] == LandmarkInfo("Astronaut (NASA)", 28.5, -80.6)
  assert updated.landmarks["berliner_dom"] == LandmarkInfo("berliner_dom", 52.51908, 13.40107)
  np.testing.assert_array_equal(updated.centroids, CentroidIndex.load(tmp_path / "index").centroids)
  assert updated.metadata["edits"][-1]["op"] == "metadata"
  (tmp_path / "clash.csv").write_text("landmark_id,name\n2,coffee\n")
  assert (
    main(
      [
        "update-landmarks",
        "--index",
        str(tmp_path / "index"),
        "--landmarks-csv",
        str(tmp_path / "clash.csv"),
      ]
    )
    == 2
  )
  assert "'coffee' would name 1 and 2" in capsys.readouterr().err
  (tmp_path / "ambiguous.csv").write_text("landmark_id,name\n1,berliner_dom\n")
  assert (
    main(
      [
        "update-landmarks",
        "--index",
        str(tmp_path / "index"),
        "--landmarks-csv",
        str(tmp_path / "ambiguous.csv"),
      ]
    )
    == 2
  )
  assert "rows 1,berliner_dom" in capsys.readouterr().err


def test_update_keeps_what_the_csv_has_no_column_for_and_a_rerun_changes_nothing(tmp_path, capsys):
  """A CSV of ids and categories changes the categories alone; the same CSV again is
  "nothing to change", status 0, no new version; half a coordinate pair is refused by row.
  (A new user's try of issue 33: the names were erased, the rerun refused, and a latitude
  without a longitude stored as half a location.)"""
  demo_index().save(tmp_path / "index")
  manifest = tmp_path / "index" / "manifest.json"

  def update(text: str) -> int:
    (tmp_path / "edit.csv").write_text(text)
    return main(
      [
        "update-landmarks",
        "--index",
        str(tmp_path / "index"),
        "--landmarks-csv",
        str(tmp_path / "edit.csv"),
      ]
    )

  assert update("landmark_id,category\n0,church\n1,palace\n") == 0
  landmarks = CentroidIndex.load(tmp_path / "index").landmarks
  assert landmarks[0] == LandmarkInfo("astronaut", 48.0, 2.0, "church")
  assert landmarks[1] == LandmarkInfo("coffee", 45.0, 12.0, "palace")
  assert landmarks[2] == DEMO[2] and landmarks[3] == DEMO[3]
  capsys.readouterr()
  saved = manifest.read_bytes()
  assert update("landmark_id,category\n0,church\n1,palace\n") == 0
  assert "nothing to change" in capsys.readouterr().out
  assert manifest.read_bytes() == saved  # no new version for a live service to reload
  for row in ("0,Tour Eiffel,48.8,", "0,Tour Eiffel,48.8584", "0,Tour Eiffel,,2.29"):
    assert update(f"landmark_id,name,latitude,longitude\n{row}\n") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "line 2: landmark 0 has a" in err, err
    assert "give both, or leave both empty" in err
  assert CentroidIndex.load(tmp_path / "index").landmarks[0].latitude == 48.0


def test_hold_back_without_recalibrate_is_a_usage_error(tmp_path, capsys):
  assert (
    main(
      [
        "add-landmarks",
        "--checkpoint",
        str(tmp_path),
        "--index",
        str(tmp_path),
        "--folder",
        str(tmp_path),
        "--hold-back",
        "0.5",
      ]
    )
    == 2
  )
  assert "give it with --recalibrate" in capsys.readouterr().err
