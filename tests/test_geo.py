import csv
import io
from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from landmark_jax.geo import exif_location, great_circle_km
from tests.helpers import with_gps


@pytest.mark.parametrize(
  "a, b, km",
  [
    # Hand-computed haversine, R = 6371.0088 km (IUGG mean radius).
    ((48.8566, 2.3522), (51.5074, -0.1278), 343.56),  # Paris – London
    ((40.7128, -74.0060), (51.5074, -0.1278), 5570.24),  # New York – London
    ((52.5200, 13.4050), (52.5200, 13.4050), 0.0),
    ((0.0, 0.0), (0.0, 180.0), 20015.12),  # half the equator: π·R
  ],
)
def test_great_circle_distance_of_city_pairs(a, b, km):
  assert float(great_circle_km(*a, *b)) == pytest.approx(km, abs=0.05)


def test_great_circle_broadcasts():
  d = great_circle_km(48.8566, 2.3522, np.array([48.8566, 51.5074]), np.array([2.3522, -0.1278]))
  np.testing.assert_allclose(d, [0.0, 343.56], atol=0.05)


def first_landmark_photo(landmarks_mini):
  row = next(csv.DictReader(open(landmarks_mini / "train.csv")))
  i = row["id"]
  return (landmarks_mini / "images" / i[0] / i[1] / i[2] / f"{i}.jpg").read_bytes()


def test_exif_gps_written_with_pillow_reads_back(landmarks_mini):
  photo = first_landmark_photo(landmarks_mini)
  for latitude, longitude in ((48.886705, 2.343048), (-33.856784, 151.215297), (40.6892, -74.0445)):
    location = exif_location(with_gps(photo, latitude, longitude))
    assert location is not None
    assert abs(location.latitude - latitude) < 1e-6 and abs(location.longitude - longitude) < 1e-6


def test_real_gps_tags_of_landmarks_mini(landmarks_mini):
  # The street photos were taken in Lund, Sweden (README of landmarks-mini).
  rows = list(csv.DictReader(open(landmarks_mini / "non_landmark.csv")))
  i = rows[0]["id"]
  location = exif_location(landmarks_mini / "images" / i[0] / i[1] / i[2] / f"{i}.jpg")
  assert location is not None
  assert float(great_circle_km(location.latitude, location.longitude, 55.7047, 13.1910)) < 10


def test_missing_or_malformed_gps_is_no_location(landmarks_mini):
  photo = first_landmark_photo(landmarks_mini)
  plain = io.BytesIO()
  Image.new("RGB", (8, 8)).save(plain, format="JPEG")
  assert exif_location(plain.getvalue()) is None  # no EXIF at all
  assert exif_location(with_gps(photo, 48.0, 2.0, refs=("X", "E"))) is None  # bad reference
  assert exif_location(with_gps(photo, 95.0, 2.0)) is None  # latitude out of range
  assert exif_location(b"not an image") is None
  image = Image.open(io.BytesIO(photo))
  exif = image.getexif()
  exif.get_ifd(0x8825).update({1: "N", 2: (Fraction(1), Fraction(2)), 3: "E", 4: (Fraction(3),)})
  broken = io.BytesIO()
  image.save(broken, format="JPEG", exif=exif)
  assert exif_location(broken.getvalue()) is None  # two or one components instead of three
