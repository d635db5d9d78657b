"""The rule of verified answers: the band's float32 edges, and a verified photo's answer
replacing today's only inside the band and only with stored photos."""

import math

import numpy as np
import pytest

from landmark_jax.errors import ConfigError
from landmark_jax.index import threshold
from landmark_jax.index.verify_rule import (
  OFF,
  VerifyBand,
  band_edges,
  decide,
  in_band,
  verified_accept,
)


def step_down(value: float) -> float:
  return float(np.nextafter(np.float32(value), np.float32(-np.inf)))


@pytest.mark.parametrize(
  "fields",
  [
    dict(below=-0.1, above=0.1, min_inliers=5),
    dict(below=0.1, above=2.5, min_inliers=5),
    dict(below=math.nan, above=0.1, min_inliers=5),
    dict(below=0.1, above=math.inf, min_inliers=5),
    dict(below=True, above=0.1, min_inliers=5),
    dict(below=0.1, above=0.1, min_inliers=-1),
    dict(below=0.1, above=0.1, min_inliers=2.5),
    dict(below=0.1, above=0.1, min_inliers=5, candidates=0),
  ],
)
def test_a_band_out_of_range_is_refused(fields):
  with pytest.raises(ConfigError):
    VerifyBand(**fields)


def test_a_valid_band_keeps_plain_types():
  band = VerifyBand(np.float32(0.25), 2, np.int64(7), candidates=3)
  assert band == VerifyBand(0.25, 2.0, 7, 3)
  assert type(band.below) is float and type(band.min_inliers) is int
  assert OFF.is_off and VerifyBand(0, 0, 9).is_off and not VerifyBand(0, 0.1, 9).is_off


def test_edges_are_the_float32_of_the_offsets_from_eta():
  assert band_edges(0.5, VerifyBand(0.25, 0.125, 0)) == (0.25, 0.625)  # exact in float32
  lo, hi = band_edges(0.9, VerifyBand(0.1, 0.05, 0))
  assert lo == float(np.float32(0.9 - 0.1)) and hi == float(np.float32(0.9 + 0.05))
  assert band_edges(0.7, OFF) == (float(np.float32(0.7)),) * 2


def test_lo_is_in_hi_is_out_and_one_float32_step_below_lo_is_out():
  band = VerifyBand(0.1, 0.05, 0)
  lo, hi = band_edges(0.9, band)
  scores = [lo, hi, step_down(lo), step_down(hi), 0.9]
  assert in_band(scores, 0.9, band).tolist() == [True, False, False, True, True]  # η inside
  # A float64 score is read as its float32, as `threshold.accepted` reads it.
  assert in_band(np.nextafter(lo, -1.0), 0.9, band)


def test_with_nothing_above_eta_the_band_stops_just_below_it():
  band = VerifyBand(0.1, 0.0, 0)
  eta = float(np.float32(0.6))
  assert in_band([eta, step_down(eta)], eta, band).tolist() == [False, True]


def test_no_stored_photos_never_verify():
  assert verified_accept([-1, 0, 4, 5], 0).tolist() == [False, True, True, True]
  assert verified_accept([-1, 0, 4, 5], 5).tolist() == [False, False, False, True]


def test_decide_on_hand_cases():
  band = VerifyBand(0.1, 0.1, 10)
  eta = 0.5
  scores = [0.45, 0.45, 0.55, 0.55, 0.3, 0.7, 0.45]
  base = [False, False, True, True, False, True, True]
  verifiable = [True, True, True, True, True, True, False]
  inliers = [10, 9, 9, 12, 50, 0, 50]
  accept, verified = decide(scores, eta, band, base, verifiable, inliers)
  # In the band: accepted iff ≥ 10 inliers; outside it, or without stored photos (the
  # last): today's answer.
  assert verified.tolist() == [True, True, True, True, False, False, False]
  assert accept.tolist() == [True, False, False, True, False, True, True]


def test_decide_equals_a_plain_loop_and_off_changes_nothing():
  rng = np.random.default_rng(0)
  eta = threshold.as_threshold(0.55)
  scores = np.float32(rng.integers(0, 21, 300) / 20)  # ties, and scores exactly at η
  scores[:5] = eta
  base = rng.random(300) < 0.5
  verifiable = rng.random(300) < 0.7
  inliers = np.where(verifiable, rng.integers(0, 30, 300), -1)
  accept, verified = decide(scores, eta, OFF, base, verifiable, inliers)
  np.testing.assert_array_equal(accept, base)
  assert not verified.any()
  band = VerifyBand(0.15, 0.2, 12)
  lo, hi = np.float32(eta - 0.15), np.float32(eta + 0.2)
  accept, verified = decide(scores, eta, band, base, verifiable, inliers)
  for i, score in enumerate(scores):
    expected_verified = bool(verifiable[i] and lo <= score < hi)
    assert verified[i] == expected_verified
    assert accept[i] == (inliers[i] >= 12 if expected_verified else base[i])
