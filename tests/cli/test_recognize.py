"""`landmark-jax recognize` as a user meets it: paths that are no photo among good ones, a
location refused before any work, the reason for a "non-landmark" answer; and the label-map
check every command that loads an index goes through."""

import json
import logging

import numpy as np
import pytest

from landmark_jax.data import GLDv2Source, LabelMap
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.index import CentroidIndex
from landmark_jax.index.editing import add_centroids
from landmark_jax.recognize import Recognizer
from tests.helpers import run_in_process, unknown_dds

run = run_in_process


def a_test_photo() -> str:
  return str(GLDv2Source(demo_dataset(), csv="test.csv").paths[0])


@pytest.fixture(scope="module")
def calibrated_index(index_dir, tmp_path_factory):
  """The demo index with η = 1: no photo outside the index reaches it."""
  path = tmp_path_factory.mktemp("calibrated") / "index"
  CentroidIndex.load(index_dir / "index").with_metadata(eta=1.0).save(path)
  return path


def test_a_missing_photo_or_a_folder_is_named_and_the_others_recognised(
  tiny_trained, index_dir, tmp_path, capsys
):
  photo = a_test_photo()
  missing, folder = tmp_path / "no_such_photo.jpg", tmp_path / "holiday"
  folder.mkdir()
  expected = Recognizer.load(tiny_trained[0], index_dir / "index").recognize([photo])[0]
  index = ["--checkpoint", tiny_trained[0], "--index", index_dir / "index"]

  status, out, err = run(["recognize", *index, missing, photo, folder, photo], capsys)
  assert status == 2
  assert [line for line in err if line.startswith("landmark-jax")] == [
    f"landmark-jax recognize: error: {missing}: no such file",
    f"landmark-jax recognize: error: {folder}: is a folder, not a photo",
  ]
  assert len(out) == 2  # both good photos answered, as the Python API answers them
  for line in out:
    path, answer, score, _ = line.split("\t")
    assert path == photo and float(score) == pytest.approx(expected.score, abs=1e-3)
    assert answer == f"{expected.name} ({expected.landmark_id})"  # uncalibrated: nearest

  status, out, err = run(["recognize", *index, "--json", missing, photo, folder], capsys)
  assert status == 2
  lines = [json.loads(line) for line in out]
  assert lines[0] == {"path": str(missing), "error": "no such file"}
  assert lines[1]["path"] == photo and lines[1]["landmark_id"] == expected.landmark_id
  assert lines[2] == {"path": str(folder), "error": "is a folder, not a photo"}

  assert run(["recognize", *index, photo], capsys)[0] == 0  # nothing wrong: status 0


def test_a_photo_no_decoder_can_read_is_named_and_the_others_recognised(
  tiny_trained, index_dir, tmp_path, capsys
):
  photo, odd = a_test_photo(), tmp_path / "odd.dds"
  odd.write_bytes(unknown_dds())
  index = ["--checkpoint", tiny_trained[0], "--index", index_dir / "index"]
  status, out, err = run(["recognize", *index, odd, photo], capsys)
  assert status == 2 and not any("Traceback" in line for line in err)
  assert [line for line in err if line.startswith("landmark-jax")] == [
    f"landmark-jax recognize: error: {odd}: DDS images are not accepted (known by their first "
    "bytes, whatever the file is named or declared to be); accepted: JPEG, PNG, WEBP"
  ]
  assert len(out) == 1 and out[0].startswith(f"{photo}\t")


@pytest.mark.parametrize(
  "location, needle",
  [
    (["--latitude", "999", "--longitude", "18.07"], "999 is not a latitude in [-90, 90]"),
    (["--latitude", "59.33", "--longitude", "-181"], "-181 is not a longitude"),
    (["--latitude", "nan", "--longitude", "18.07"], "nan is not a latitude"),
    (["--latitude", "north", "--longitude", "18.07"], "invalid latitude value: 'north'"),
    (["--latitude", "59.33"], "give --latitude and --longitude together"),
    (["--longitude", "18.07"], "give --latitude and --longitude together"),
  ],
)
def test_a_bad_location_is_one_line_before_any_work(tmp_path, capsys, location, needle):
  # The checkpoint does not exist: refusing the location must come first.
  status, out, err = run(
    [
      "recognize",
      "--checkpoint",
      tmp_path / "no_such_run",
      "--index",
      tmp_path / "no_such_index",
      *location,
      "photo.jpg",
    ],
    capsys,
  )
  assert status == 2 and out == []
  assert len(err) == 1 and needle in err[0] and "no_such_run" not in err[0], err


def test_the_table_and_json_say_why_a_photo_is_no_landmark(tiny_trained, calibrated_index, capsys):
  photo = a_test_photo()
  index = ["--checkpoint", tiny_trained[0], "--index", calibrated_index]
  # Far from every demo landmark (they all have coordinates): no candidate at all.
  status, out, _ = run(
    ["recognize", *index, "--latitude", "-82", "--longitude", "0", photo], capsys
  )
  assert status == 0
  assert out == [
    f"{photo}\tnon-landmark — no landmark in the index within 50 km of (-82.00, 0.00)\t-1.000\t[]"
  ]
  status, out, _ = run(
    [
      "recognize",
      *index,
      "--json",
      "--radius-km",
      "10",
      "--latitude",
      "-82",
      "--longitude",
      "0",
      photo,
    ],
    capsys,
  )
  answer = json.loads(out[0])
  assert answer["reason"] == "no_landmark_nearby" and answer["radius_km"] == 10
  assert answer["location"] == {"latitude": -82.0, "longitude": 0.0}

  # Without a location, candidates but η = 1 above the best of them.
  score = Recognizer.load(tiny_trained[0], calibrated_index).recognize([photo])[0].score
  assert score < 1
  status, out, _ = run(["recognize", *index, photo], capsys)
  assert (
    out[0].split("\t")[1] == f"non-landmark — best similarity {score:.3f} is below the threshold η"
  )
  answer = json.loads(run(["recognize", *index, "--json", photo], capsys)[1][0])
  assert answer["reason"] == "below_threshold" and answer["landmark_id"] is None
  assert answer["candidates"] and answer["radius_km"] is None


def label_map_warnings(caplog, trained, index):
  caplog.clear()
  with caplog.at_level(logging.WARNING, logger="landmark_jax.recognize"):
    Recognizer(trained, index, eta=0.5)
  return [r.getMessage() for r in caplog.records if "label maps differ" in r.getMessage()]


def test_an_index_with_added_landmarks_is_silent_and_a_different_map_warns(
  trained, index_dir, tmp_path, caplog
):
  index = CentroidIndex.load(index_dir / "index")
  model_ids = trained.label_map.landmark_ids
  assert index.label_map == trained.label_map
  # add-landmarks' own extension (appended id, one more stage, non-landmark label moved up),
  # saved and loaded as every command loads it.
  added = add_centroids(index, index.centroids[:2], ["new_a", "new_b"], np.array([3, 4]), None, {})
  added.save(tmp_path / "added")
  added = CentroidIndex.load(tmp_path / "added")
  assert added.label_map.landmark_ids == (*model_ids, "new_a", "new_b")
  assert added.label_map.non_landmark_label != trained.label_map.non_landmark_label
  assert label_map_warnings(caplog, trained, added) == []
  # The same extension built in Python from a list of ids.
  listed = CentroidIndex.build(
    index.centroids,
    index.labels,
    index.config,
    cluster_sizes=index.cluster_sizes,
    label_map=LabelMap([*model_ids, "new_a"]),
  )
  assert label_map_warnings(caplog, trained, listed) == []

  # Genuinely different: the same ids in another order, so label 0 means another landmark.
  reordered = CentroidIndex.build(
    index.centroids,
    index.labels,
    index.config,
    cluster_sizes=index.cluster_sizes,
    label_map=LabelMap(tuple(reversed(model_ids))),
  )
  assert len(label_map_warnings(caplog, trained, reordered)) == 1
  # And one where a model landmark is missing (another id in its place).
  replaced = CentroidIndex.build(
    index.centroids,
    index.labels,
    index.config,
    cluster_sizes=index.cluster_sizes,
    label_map=LabelMap((*model_ids[:-1], "other", *model_ids[-1:])),
  )
  assert len(label_map_warnings(caplog, trained, replaced)) == 1
