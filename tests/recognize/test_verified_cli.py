"""`--verify/--no-verify` on the commands that answer photos: required verification on an index
that cannot verify is one line naming the missing step; `recognize` answers as the Python API
does with verification on, by default and off."""

import json

import pytest

from tests.helpers import free_port, run_in_process
from tests.recognize.verified_index import verified_index


@pytest.fixture(scope="module")
def built(trained, index_dir, tmp_path_factory):
  return verified_index(trained, index_dir, tmp_path_factory)


@pytest.mark.parametrize("command", ["recognize", "evaluate", "serve"])
def test_verify_on_an_index_without_local_features_is_one_line(
  tiny_trained, built, tmp_path, capsys, command
):
  index = ["--checkpoint", tiny_trained[0], "--index", built.plain, "--verify"]
  extra = {
    "recognize": [tmp_path / "photo.jpg"],
    "evaluate": ["--out", tmp_path / "report"],
    "serve": ["--port", free_port()],
  }[command]
  status, out, err = run_in_process([command, *index, *extra], capsys)
  assert status == 2 and out == []
  assert err == [
    f"landmark-jax {command}: error: the index stores no local features to verify with: run "
    "`landmark-jax local-features` on it first"
  ]
  assert not (tmp_path / "report").exists()


def test_recognize_verifies_by_default_and_not_with_no_verify(
  tiny_trained, trained, built, tmp_path, capsys
):
  from landmark_jax.index import CentroidIndex
  from landmark_jax.recognize import Recognizer

  photo = tmp_path / "reference.jpg"
  photo.write_bytes(built.reference_photo)
  expected = Recognizer(trained, CentroidIndex.load(built.verified)).recognize(str(photo))
  assert expected.verified
  index = ["--checkpoint", tiny_trained[0], "--index", built.verified, "--json"]
  answers = {}
  for flag in ([], ["--verify"], ["--no-verify"]):
    status, out, _ = run_in_process(["recognize", *index, *flag, photo], capsys)
    assert status == 0
    (answers[tuple(flag)],) = [json.loads(line) for line in out]
  for flag in ((), ("--verify",)):
    assert answers[flag]["verified"] is True
    assert answers[flag]["inliers"] == expected.inliers
    assert answers[flag]["landmark_id"] == expected.landmark_id
  off = answers[("--no-verify",)]
  assert off["verified"] is False and off["inliers"] is None
  # Off, the centroid answer of the same index without local features.
  plain = Recognizer(trained, CentroidIndex.load(built.plain)).recognize(str(photo))
  assert off["landmark_id"] == plain.landmark_id and off["reason"] == plain.reason


def test_calibrate_verify_budget_needs_local_features_and_zero_turns_verification_off(
  tiny_trained, built, tmp_path, capsys
):
  import shutil

  from landmark_jax.index import CentroidIndex

  plain = shutil.copytree(built.plain, tmp_path / "plain")
  before = (plain / "manifest.json").read_bytes()
  model = ["--checkpoint", tiny_trained[0]]
  status, out, err = run_in_process(
    ["calibrate", *model, "--index", plain, "--verify-budget", "0.3"], capsys
  )
  assert (status, out) == (2, [])
  assert err == [
    f"landmark-jax calibrate: error: --verify-budget: {plain} stores no local features to "
    "verify with; run `landmark-jax local-features` on it first"
  ]
  assert (plain / "manifest.json").read_bytes() == before  # refused before anything changed

  verified = shutil.copytree(built.verified, tmp_path / "verified")
  status, out, _ = run_in_process(
    ["calibrate", *model, "--index", verified, "--verify-budget", "0"], capsys
  )
  assert status == 0
  assert "verification: off (--verify-budget 0); the centroid answers stand everywhere" in out
  index = CentroidIndex.load(verified)
  assert index.local_features is not None and "verification" not in index.metadata
  photo = tmp_path / "reference.jpg"
  photo.write_bytes(built.reference_photo)
  status, out, _ = run_in_process(
    ["recognize", *model, "--index", verified, "--json", photo], capsys
  )
  assert status == 0 and json.loads(out[0])["verified"] is False


def test_local_features_stores_r_photos_per_landmark_and_drops_a_band_made_with_others(
  tiny_trained, built, tmp_path, capsys
):
  import shutil

  import numpy as np

  from landmark_jax.index import CentroidIndex

  index_dir = shutil.copytree(built.verified, tmp_path / "index")  # has a store and a band
  before = CentroidIndex.load(index_dir)
  status, out, err = run_in_process(
    [
      "local-features",
      "--checkpoint",
      tiny_trained[0],
      "--index",
      index_dir,
      "--per-landmark",
      "1",
      "attention_steps=3",
      "pca_fit_images=8",
    ],
    capsys,
  )
  assert status == 0, err
  after = CentroidIndex.load(index_dir)
  store = after.local_features
  landmarks = np.unique(before.labels)
  # one photo per landmark, each landmark's first photo as before (its medoid's), and the
  # band calibrated with the old photos gone
  assert sorted(store.photo_labels.tolist()) == landmarks.tolist()
  first = {
    int(l): before.local_features.photo_ids[int(before.local_features.photos_of(l)[0])]
    for l in landmarks
  }
  assert {int(l): store.photo_ids[int(store.photos_of(l)[0])] for l in landmarks} == first
  assert "verification" not in after.metadata and "verification" in before.metadata
  assert out == [
    f"local features of {len(landmarks)} reference photos ({store.num_features} features, "
    f"{store.nbytes / 1024:.0f} KiB, extractor {store.extractor_nbytes / 1024:.0f} KiB) "
    f"stored in {index_dir}; next: `landmark-jax calibrate` chooses where verification "
    "decides (--verify-budget)"
  ]
