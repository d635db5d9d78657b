"""Choosing the band of verified answers and k: a hand-worked example, and random cases
against a brute-force search over every band edge and every k."""

import math
import time

import numpy as np
import pytest

from landmark_jax.errors import ConfigError
from landmark_jax.eval.verify_calibration import choose_band, photos_to_verify
from landmark_jax.index import threshold
from landmark_jax.index.verify_rule import VerifyBand, band_edges, decide

ETA = 0.5


def hand_example():
  """Ten photos at η = 0.5 (L: landmark, N: non-landmark; today: accepted iff score ≥ η):

      photo  score  kind  today             verification  inliers
      0      0.90   L     accepted, right   right         0
      1      0.70   L     accepted, right   right         20
      2      0.55   N     a false alarm                   3
      3      0.48   L     rejected          right         30
      4      0.45   N     rejected                        8
      5      0.40   L     rejected          right         25
      6      0.30   L     rejected          right         40
      7      0.20   N     rejected                        5
      8      0.60   L     accepted, right   right         50
      9      0.10   N     rejected (no stored photos)

  Today: 3 of 6 landmark photos right (sensitivity 0.5), 3 of 4 non-landmark photos
  rejected (specificity 0.75).
  """
  scores = np.float32([0.90, 0.70, 0.55, 0.48, 0.45, 0.40, 0.30, 0.20, 0.60, 0.10])
  non_landmark = np.array([0, 0, 1, 0, 1, 0, 0, 1, 0, 1], bool)
  return dict(
    scores=scores,
    eta=ETA,
    base_accept=threshold.accepted(scores, ETA),
    base_correct=~non_landmark,
    verifiable=np.arange(10) != 9,
    inliers=np.array([0, 20, 3, 30, 8, 25, 40, 5, 50, -1]),
    verified_correct=~non_landmark,
    is_non_landmark=non_landmark,
  )


def below_to(score):
  return ETA - float(np.float32(score))


def test_the_hand_example():
  """Budget 0.3 (3 photos), target 0.75 (one false alarm allowed). Photo 6 is 4th below η:
  out of reach. Verifying 3, 4 and 5 (lo = 0.40) with 8 < k ≤ 25 wins photos 3 and 5 and
  keeps photo 4 out: sensitivity 5/6, and k = 25 is the higher of the ties 20 and 25.

  Budget 0.2 (2 photos): lo = 0.48 wins photo 3 (4/6) verifying 1 photo; adding photo 2
  above η (k > 3 rejects it) wins no more sensitivity and verifies more: not chosen, k = 30.

  Target 1.0: today's false alarm (photo 2) must go, so the band reaches above η to it
  (hi just above 0.55) and below to photo 3; k = 30 is the highest that keeps photo 3.
  With no budget, nothing reaches the target: off, and the target is not met.
  """
  example = hand_example()
  assert photos_to_verify(example["scores"], ETA, example["verifiable"], 0.3).tolist() == [
    1,
    2,
    3,
    4,
    5,
    8,
  ]
  result = choose_band(**example, target_specificity=0.75, budget=0.3)
  assert (result["below"], result["above"], result["min_inliers"]) == (below_to(0.40), 0.0, 25)
  assert result["sensitivity"] == 5 / 6 and result["specificity"] == 0.75
  assert result["verified_share"] == 0.3 and result["target_met"]
  assert (result["sensitivity_without"], result["specificity_without"]) == (0.5, 0.75)

  result = choose_band(**example, target_specificity=0.75, budget=0.2)
  assert (result["below"], result["above"], result["min_inliers"]) == (below_to(0.48), 0.0, 30)
  assert (result["sensitivity"], result["verified_share"]) == (4 / 6, 0.1)

  result = choose_band(**example, target_specificity=1.0, budget=0.3)
  lo, hi = band_edges(ETA, VerifyBand(result["below"], result["above"], 0))
  assert (lo, hi) == (float(np.float32(0.48)), float(np.nextafter(np.float32(0.55), 1)))
  assert result["min_inliers"] == 30
  assert (result["sensitivity"], result["specificity"], result["verified_share"]) == (4 / 6, 1, 0.2)

  result = choose_band(**example, target_specificity=1.0, budget=0.0)
  assert (result["below"], result["above"], result["min_inliers"]) == (0.0, 0.0, 0)
  assert not result["target_met"] and result["sensitivity"] == 0.5


def random_case(seed, n=40):
  rng = np.random.default_rng(seed)
  scores = np.float32(rng.integers(0, 30, n) / 30)  # ties, some exactly at η
  eta = float(scores[rng.integers(n)]) if seed % 2 else 0.51
  non_landmark = rng.random(n) < 0.4
  non_landmark[:2] = [True, False]
  verifiable = rng.random(n) < 0.8
  return dict(
    scores=scores,
    eta=eta,
    base_accept=threshold.accepted(scores, eta) & (rng.random(n) < 0.9),  # ρ rejects a few
    base_correct=~non_landmark & (rng.random(n) < 0.7),
    verifiable=verifiable,
    inliers=np.where(verifiable, rng.integers(0, 12, n), -1),
    verified_correct=~non_landmark & (rng.random(n) < 0.8),
    is_non_landmark=non_landmark,
  )


def specificity_today(case):
  non_landmark = case["is_non_landmark"]
  return float(np.mean(~case["base_accept"][non_landmark]))


def feasible_bands(scores, eta, verifiable, budget):
  """Every (lo, hi) whose band [lo, hi) verifies at most `budget` of the photos, with the
  photos it verifies: lo at η or at any score below it, hi at η or just above any score at
  or above it."""
  eta32 = np.float32(eta)
  los = [eta32] + [s for s in scores if s < eta32]
  his = [eta32] + [np.nextafter(s, np.float32(2)) for s in scores if s >= eta32]
  for lo in los:
    for hi in his:
      held = [i for i, s in enumerate(scores) if verifiable[i] and lo <= s < hi]
      if len(held) / len(scores) <= budget:
        yield lo, hi, held


def brute_force(case, target, budget):
  """(lo, hi, k, hits, false alarms, verified) chosen by trying every band and k."""
  scores, eta = case["scores"], case["eta"]
  landmark = ~case["is_non_landmark"]
  bands = list(feasible_bands(scores, eta, case["verifiable"], budget))
  reach = sorted({i for _, _, held in bands for i in held})
  k_none = max(case["inliers"][i] for i in reach) + 1 if reach else 0
  n_non = int(case["is_non_landmark"].sum())
  needed = math.ceil(target * n_non - 1e-9)
  best, best_key = None, None
  for lo, hi, held in bands:
    for k in sorted({case["inliers"][i] for i in held} | {k_none}) if held else [0]:
      hits = alarms = 0
      for i in range(len(scores)):
        if i in held:
          accept, right = case["inliers"][i] >= k, case["verified_correct"][i]
        else:
          accept, right = case["base_accept"][i], case["base_correct"][i]
        hits += bool(landmark[i] and accept and right)
        alarms += bool(not landmark[i] and accept)
      if n_non - alarms < needed:
        continue
      key = (hits, -len(held), -alarms, k, lo, -hi)
      if best_key is None or key > best_key:
        best, best_key = (lo, hi, k, hits, alarms, len(held)), key
  return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("budget", [0.1, 0.25, 0.5])
def test_equals_a_brute_force_search(seed, budget):
  case = random_case(seed)
  n, n_non = 40, int(case["is_non_landmark"].sum())
  today = specificity_today(case)
  for target in (today, min(1.0, today + 0.1)):
    result = choose_band(**case, target_specificity=target, budget=budget)
    expected = brute_force(case, target, budget)
    if expected is None:  # no band reaches the target: off
      assert not result["target_met"]
      expected = (np.float32(case["eta"]),) * 2 + (0,)
    else:
      assert result["target_met"]
      assert result["sensitivity"] == pytest.approx(expected[3] / (n - n_non))
      assert result["specificity"] == pytest.approx(1 - expected[4] / n_non)
      assert result["verified_share"] == pytest.approx(expected[5] / n)
    band = VerifyBand(result["below"], result["above"], result["min_inliers"])
    assert band_edges(case["eta"], band) == (float(expected[0]), float(expected[1]))
    assert result["min_inliers"] == expected[2]


@pytest.mark.parametrize("seed", range(4))
def test_the_figures_are_those_of_the_rule_applied(seed):
  case = random_case(seed, n=60)
  result = choose_band(**case, target_specificity=specificity_today(case), budget=0.3, candidates=2)
  band = VerifyBand(result["below"], result["above"], result["min_inliers"], result["candidates"])
  accept, verified = decide(
    case["scores"], case["eta"], band, case["base_accept"], case["verifiable"], case["inliers"]
  )
  landmark = ~case["is_non_landmark"]
  right = np.where(verified, case["verified_correct"], case["base_correct"])
  assert verified.mean() == result["verified_share"] <= 0.3
  assert result["sensitivity"] == pytest.approx(np.mean(accept[landmark] & right[landmark]))
  assert result["specificity"] == pytest.approx(np.mean(~accept[~landmark]))
  assert result["candidates"] == 2 and result["validation_photos"] == 60
  assert result["sensitivity"] >= result["sensitivity_without"] and result["target_met"]
  assert all(type(v) in (bool, int, float) for v in result.values())


def test_verification_that_buys_nothing_is_off():
  case = random_case(3)
  case["verified_correct"] = np.zeros(40, bool)  # verification never gives the right landmark
  result = choose_band(**case, target_specificity=0.5, budget=0.5)
  assert (result["below"], result["above"], result["min_inliers"]) == (0.0, 0.0, 0)
  assert result["verified_share"] == 0 and result["sensitivity"] == result["sensitivity_without"]


@pytest.mark.parametrize("seed", range(4))
def test_a_larger_budget_never_lowers_validation_sensitivity(seed):
  """(At a target today's η meets: otherwise a band that reaches it may cost sensitivity.)"""
  case = random_case(seed, n=80)
  target = specificity_today(case)
  sensitivities = [
    choose_band(**case, target_specificity=target, budget=b)["sensitivity"]
    for b in (0, 0.05, 0.1, 0.2, 0.4, 1)
  ]
  assert sensitivities == sorted(sensitivities)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("budget", [0.0, 0.1, 0.3])
def test_the_photos_to_verify_are_exactly_those_a_band_within_budget_holds(seed, budget):
  case = random_case(seed)
  bands = feasible_bands(case["scores"], case["eta"], case["verifiable"], budget)
  reach = sorted({i for _, _, held in bands for i in held})
  assert photos_to_verify(case["scores"], case["eta"], case["verifiable"], budget).tolist() == reach


def test_capped_candidates_still_do_no_worse_than_today():
  case = random_case(7, n=200)
  target = specificity_today(case)
  result = choose_band(**case, target_specificity=target, budget=0.5, max_candidates=3)
  assert result["sensitivity"] >= result["sensitivity_without"] and result["target_met"]


def test_bad_arguments_are_refused():
  case = hand_example()
  with pytest.raises(ConfigError):
    choose_band(**case, target_specificity=0.75, budget=1.5)
  with pytest.raises(ConfigError):
    choose_band(**case, target_specificity=0.0, budget=0.3)


def test_a_thousand_photos_take_well_under_a_second():
  rng = np.random.default_rng(1)
  n = 1000
  scores = np.float32(rng.random(n))
  non_landmark = rng.random(n) < 0.4
  case = dict(
    scores=scores,
    eta=0.6,
    base_accept=scores >= np.float32(0.6),
    base_correct=~non_landmark,
    verifiable=rng.random(n) < 0.9,
    inliers=rng.integers(0, 200, n),
    verified_correct=~non_landmark,
    is_non_landmark=non_landmark,
  )
  choose_band(**case, target_specificity=0.6, budget=0.5)  # warm-up
  start = time.perf_counter()
  result = choose_band(**case, target_specificity=0.6, budget=0.5)
  assert time.perf_counter() - start < 1.0
  assert result["verified_share"] <= 0.5
