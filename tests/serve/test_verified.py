"""Verified answers in the service, over a real socket: an answer in the band is settled by
local features exactly as the Python API settles it (same photo, same inliers), counted and
timed; with verification off, the answer is the one an index without local features gives;
a reloaded index version brings its own verifier."""

import dataclasses

import httpx
import pytest

from landmark_jax.errors import UsageError
from landmark_jax.index import CentroidIndex
from landmark_jax.recognize import Recognizer
from landmark_jax.serve.app import create_app
from landmark_jax.serve.reload import IndexSource, load_checked, read_version
from tests.recognize.verified_index import BAND, non_landmark_photo, verified_index
from tests.serve.conftest import SERVE_CONFIG, app_in_thread, metric_delta, scrape

# One bucket to compile per app: these tests send one photo at a time.
CONFIG = dataclasses.replace(SERVE_CONFIG, max_batch=2)
VARYING = ("timing_ms", "batch_size", "index_version", "score", "candidates")


@pytest.fixture(scope="module")
def built(trained, index_dir, tmp_path_factory):
  return verified_index(trained, index_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def photos(built):
  return {"reference": built.reference_photo, "non_landmark": non_landmark_photo()}


def serve(trained, index_path, **options):
  recognizer = Recognizer(
    trained, CentroidIndex.load(index_path), batch_size=CONFIG.max_batch, **options
  )
  return app_in_thread(create_app(recognizer, CONFIG), log_level="warning")


def post(client, data):
  response = client.post("/v1/recognize", content=data, headers={"content-type": "image/jpeg"})
  assert response.status_code == 200, response.text
  return response.json()


def same_answer(answer, expected):
  """`answer` (JSON) is `expected` (a Prediction's dict), scores to float32 rounding."""
  assert {k: v for k, v in answer.items() if k not in VARYING} == {
    k: v for k, v in expected.items() if k not in VARYING
  }
  assert answer["score"] == pytest.approx(expected["score"], abs=1e-5)
  assert [c["landmark_id"] for c in answer["candidates"]] == [
    c["landmark_id"] for c in expected["candidates"]
  ]


def test_an_answer_in_the_band_is_verified_as_in_process(trained, built, photos):
  local = Recognizer(trained, CentroidIndex.load(built.verified))
  expected = {name: local.recognize(data).to_dict() for name, data in photos.items()}
  # A reference photo matched with its own stored features: far more than k inliers.
  assert (
    expected["reference"]["verified"] and expected["reference"]["inliers"] >= BAND["min_inliers"]
  )
  assert expected["reference"]["landmark_id"] == built.reference_landmark
  with serve(trained, built.verified) as url, httpx.Client(base_url=url, timeout=120) as client:
    info = client.get("/v1/info").json()
    assert info["verification"] == {
      k: BAND[k] for k in ("below", "above", "min_inliers", "candidates")
    }
    before = scrape(client)
    answers = {name: post(client, data) for name, data in photos.items()}
    after = scrape(client)
    for name, answer in answers.items():
      assert answer["verified"] is True
      assert answer["inliers"] == expected[name]["inliers"]  # the same photo, the same count
      same_answer(answer, expected[name])
      assert answer["timing_ms"]["verify"] > 0
      assert answer["timing_ms"]["total"] >= answer["timing_ms"]["verify"]
    accepted = sum(a["is_landmark"] for a in answers.values())
    assert metric_delta(before, after, "landmark_verifications_total", outcome="accepted") == (
      accepted
    )
    assert metric_delta(before, after, "landmark_verifications_total", outcome="rejected") == (
      len(answers) - accepted
    )
    # The batch route verifies each photo in the band too.
    files = [("images", (f"{name}.jpg", data, "image/jpeg")) for name, data in photos.items()]
    response = client.post("/v1/recognize:batch", files=files)
    assert response.status_code == 200, response.text
    for result in response.json()["results"]:
      name = result.pop("file").removesuffix(".jpg")
      assert result["verified"] is True and "verify" in result["timing_ms"]
      same_answer(result, expected[name])
    final = scrape(client)
    assert metric_delta(after, final, "landmark_verifications_total", outcome="accepted") == (
      accepted
    )


def test_with_verification_off_the_answer_is_the_centroids(trained, built, photos):
  answers = {}
  for key, path, options in (
    ("plain", built.plain, {}),
    ("off", built.verified, {"verify": False}),
  ):
    with serve(trained, path, **options) as url, httpx.Client(base_url=url, timeout=120) as client:
      assert client.get("/v1/info").json()["verification"] is None
      before = scrape(client)
      answers[key] = {name: post(client, data) for name, data in photos.items()}
      after = scrape(client)
      for outcome in ("accepted", "rejected"):
        assert metric_delta(before, after, "landmark_verifications_total", outcome=outcome) == 0
  for name in photos:
    off, plain = answers["off"][name], answers["plain"][name]
    assert off["verified"] is False and off["inliers"] is None
    assert "verify" not in off["timing_ms"]
    same_answer(off, plain)
    assert off["score"] == plain["score"]  # the same program on the same photo


def test_each_index_version_brings_its_verifier(trained, built):
  def source(path, verify):
    return IndexSource(path, read_version(path), {}, verify=verify)

  served = load_checked(source(built.verified, None), trained)
  assert served.verifier is not None and served.verifier.decision is served.decision
  assert served.verifier.band.min_inliers == BAND["min_inliers"]
  assert load_checked(source(built.verified, False), trained).verifier is None
  assert load_checked(source(built.plain, None), trained).verifier is None
  # Required, and the version cannot verify: refused (a reload keeps the old version).
  with pytest.raises(UsageError, match="local-features"):
    load_checked(source(built.plain, True), trained)
