"""Geo filtering with the demo index, whose landmarks carry (fictional) coordinates:
astronaut in Paris, chelsea in London, coffee in Rome, …"""

import pytest

from landmark_jax.data import GLDv2Source
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.geo import Location, great_circle_km
from landmark_jax.index import CentroidIndex
from landmark_jax.recognize import Recognizer
from tests.helpers import with_gps

PARIS = Location(48.8566, 2.3522)
ANTARCTICA = Location(-82.0, 0.0)


@pytest.fixture(scope="module")
def recognizer(trained, index_dir):
  return Recognizer(trained, CentroidIndex.load(index_dir / "index"), eta=0.5, radius_km=50)


def london_photos():
  test = GLDv2Source(demo_dataset(), csv="test.csv")
  chelsea = test.label_map.to_label(1)  # landmark 1 "chelsea" stands in London
  return [p for p, label in zip(test.paths, test.labels) if label == chelsea]


def test_index_carries_names_and_coordinates(recognizer):
  info = recognizer.index.landmarks[1]
  assert info.name == "chelsea" and info.latitude == pytest.approx(51.5007)
  assert recognizer.decision.names["0"] == "astronaut"  # keyed as answers name landmarks


def test_paris_location_excludes_london_and_no_location_is_unchanged(recognizer):
  photos = london_photos()
  plain = recognizer.recognize(photos, use_exif=False)
  assert any(p.landmark_id == "1" for p in plain)  # usually recognised as chelsea
  in_paris = recognizer.recognize(photos, [PARIS] * len(photos))
  for prediction in in_paris:
    assert prediction.landmark_id != "1"
    for candidate in prediction.candidates:  # only landmarks near Paris remain
      info = recognizer.index.landmarks[recognizer.decision.label_map_id(candidate.landmark_id)]
      assert (
        float(great_circle_km(PARIS.latitude, PARIS.longitude, info.latitude, info.longitude)) <= 50
      )
    assert prediction.location == PARIS
  # The same photos without a location: exactly their usual answers.
  again = recognizer.recognize(photos, [None] * len(photos), use_exif=False)
  assert [(p.landmark_id, p.score) for p in again] == [(p.landmark_id, p.score) for p in plain]


def test_far_from_every_landmark_is_non_landmark(recognizer):
  prediction = recognizer.recognize(london_photos()[:1], [ANTARCTICA])[0]
  assert prediction.landmark_id is None and prediction.candidates == ()
  # The answer says why, for machines and for people.
  assert prediction.reason == "no_landmark_nearby" and prediction.radius_km == 50
  assert prediction.reason_text == "no landmark in the index within 50 km of (-82.00, 0.00)"
  answer = prediction.to_dict()
  assert answer["reason"] == "no_landmark_nearby" and answer["radius_km"] == 50
  assert answer["location"] == {"latitude": -82.0, "longitude": 0.0}


def test_below_threshold_and_landmark_answers_carry_their_reason(recognizer):
  photos = london_photos()[:4]
  embeddings = recognizer.photos.embed(photos)
  everything = recognizer.decision.predict(embeddings, eta=-1.0)  # any score is a landmark
  for prediction in everything:
    assert prediction.is_landmark and prediction.reason is None
    assert prediction.reason_text is None and prediction.to_dict()["reason"] is None
  nothing = recognizer.decision.predict(embeddings, eta=1.0)  # no score reaches 1
  for prediction, accepted in zip(nothing, everything):
    assert not prediction.is_landmark and prediction.candidates == accepted.candidates
    assert prediction.reason == "below_threshold" and prediction.radius_km is None
    assert prediction.reason_text == (
      f"best similarity {accepted.score:.3f} is below the threshold η"
    )
    assert prediction.to_dict()["reason"] == "below_threshold"
  # With a location near the candidates (Paris), still below η: the same reason.
  near = recognizer.decision.predict(embeddings, eta=1.0, locations=[PARIS] * len(photos))
  assert all(p.candidates and p.reason == "below_threshold" and p.radius_km == 50 for p in near)


def test_exif_gps_is_used_when_no_location_is_given(recognizer):
  photo = open(london_photos()[0], "rb").read()
  tagged = with_gps(photo, PARIS.latitude, PARIS.longitude)
  prediction = recognizer.recognize([tagged])[0]
  assert prediction.location is not None
  assert abs(prediction.location.latitude - PARIS.latitude) < 1e-6
  assert prediction.landmark_id != "1"
  assert recognizer.recognize([tagged], use_exif=False)[0].location is None
