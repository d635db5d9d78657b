import math
import pathlib
import pickle

import numpy as np
import pytest
from PIL import Image

from landmark_jax.errors import DataError
from landmark_jax.eval.metrics import (
  average_precision,
  crop_query,
  gap,
  load_revisited_gnd,
  revisited_map,
  sensitivity_specificity,
  top1_accuracy,
  wilson_interval,
)

# The official Google Landmark Recognition metric's test case (DELF's metrics_test.py).
SOLUTION = {"A": [0, 12], "B": [100, 200, 300], "C": [1], "D": [], "E": []}
PREDICTIONS = {"B": (0, 0.01), "C": (1, 10.0), "D": (150, 15.0)}


def test_gap_equals_the_published_oracle():
  assert gap(PREDICTIONS, SOLUTION) == pytest.approx(0.166667, abs=1e-6)
  assert gap(PREDICTIONS, SOLUTION, ignore_non_landmarks=True) == pytest.approx(0.333333, abs=1e-6)
  assert top1_accuracy(PREDICTIONS, SOLUTION) == pytest.approx(0.333333, abs=1e-6)


def test_gap_perfect_and_unknown_images():
  assert gap({"A": (0, 1.0), "B": (200, 0.5), "C": (1, 0.2)}, SOLUTION) == 1.0
  with pytest.raises(KeyError, match="Z"):
    gap({"Z": (1, 1.0)}, SOLUTION)


def score_equation_roots(successes, n, z=1.959963984540054):
  """The Wilson bounds from their definition, not the closed form: the two π solving
  (p − π)² = z²·π(1 − π)/n, i.e. (1 + z²/n)π² − (2p + z²/n)π + p² = 0."""
  p = successes / n
  return tuple(np.sort(np.roots([1 + z * z / n, -(2 * p + z * z / n), p * p]).real))


# Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of
# seven methods", Stat Med 17:857–872, Table I, method 3 (Wilson score, no continuity
# correction). All four also checked against `score_equation_roots`.
NEWCOMBE_1998 = [
  ((81, 263), (0.2553, 0.3662)),
  ((15, 148), (0.0624, 0.1605)),
  ((0, 10), (0.0000, 0.2775)),
  ((1, 29), (0.0061, 0.1718)),
]


@pytest.mark.parametrize("counts, published", NEWCOMBE_1998)
def test_wilson_interval_equals_newcombe_1998(counts, published):
  assert wilson_interval(*counts) == pytest.approx(published, abs=5e-5)  # 4 decimals given
  assert score_equation_roots(*counts) == pytest.approx(published, abs=5e-5)


@pytest.mark.parametrize("successes, n", [(1, 1), (3, 7), (8, 48), (117, 120), (499, 1000)])
def test_wilson_interval_solves_the_score_equation(successes, n):
  assert wilson_interval(successes, n) == pytest.approx(
    score_equation_roots(successes, n), abs=1e-12
  )


def test_wilson_interval_edge_cases():
  assert all(math.isnan(bound) for bound in wilson_interval(0, 0))  # no photos: no interval
  # At 0 of n and n of n one bound is exactly 0 or 1 and the other is not: the interval does
  # not collapse. 1 of 1: low = 1/(1 + z²) = 1/4.8415 = 0.2065.
  assert wilson_interval(0, 5)[0] == 0.0 and wilson_interval(5, 5)[1] == 1.0
  assert wilson_interval(1, 1) == pytest.approx((1 / (1 + 1.959963984540054**2), 1.0))
  # Mirror image: k of n successes are n − k failures.
  low, high = wilson_interval(3, 11)
  assert wilson_interval(8, 11) == pytest.approx((1 - high, 1 - low))
  # z = 0 is the point estimate; a larger z a wider interval (z = 2.5758: 99 %).
  assert wilson_interval(3, 12, z=0) == pytest.approx((0.25, 0.25))
  wide = wilson_interval(3, 12, z=2.5758)
  assert wide[0] < wilson_interval(3, 12)[0] and wide[1] > wilson_interval(3, 12)[1]
  for successes, n in ((-1, 5), (6, 5), (0, -1)):
    with pytest.raises(ValueError):
      wilson_interval(successes, n)


def test_sensitivity_specificity_and_breakdowns_by_hand():
  truth = [1, 1, 2, 3, 3, 3, None, None, None, None]
  preds = [1, 2, 2, 3, None, 3, None, 5, None, None]
  result = sensitivity_specificity(
    preds,
    truth,
    train_counts={1: 50, 2: 3, 3: 12},
    rare_threshold=10,
    categories={1: "church", 2: "bridge", 3: "church"},
  )
  # Landmark photos: 6, correct: 1 (of 2 for #1), 1 (#2), 2 of 3 (#3) → 4/6.
  assert result["sensitivity"] == pytest.approx(4 / 6)
  assert result["specificity"] == pytest.approx(3 / 4)  # one non-landmark called #5
  assert result["landmark_share"] == pytest.approx(0.6)
  # The counts each rate rests on, and its interval from the score equation.
  assert (result["recognised"], result["landmark_images"]) == (4, 6)
  assert (result["rejected"], result["non_landmark_images"]) == (3, 4)
  assert result["sensitivity_ci"] == pytest.approx(score_equation_roots(4, 6))
  assert result["specificity_ci"] == pytest.approx(score_equation_roots(3, 4))
  # Rare = #2 (3 training images < 10); frequent = #1 and #3. The share is the paper's "part
  # from total number": of the 6 landmark photos (not of all 10 photos), frequent holds 5/6
  # and rare 1/6.
  assert result["by_frequency"] == {
    "frequent": {
      "sensitivity": pytest.approx(3 / 5),
      "recognised": 3,
      "images": 5,
      "share": pytest.approx(5 / 6),
      "sensitivity_ci": pytest.approx(score_equation_roots(3, 5)),
    },
    "rare": {
      "sensitivity": 1.0,
      "recognised": 1,
      "images": 1,
      "share": pytest.approx(1 / 6),
      "sensitivity_ci": pytest.approx(score_equation_roots(1, 1)),
    },
  }
  assert result["by_category"]["church"] == {
    "sensitivity": pytest.approx(3 / 5),
    "recognised": 3,
    "images": 5,
    "share": pytest.approx(5 / 6),
    "sensitivity_ci": pytest.approx(score_equation_roots(3, 5)),
  }
  assert result["by_category"]["bridge"]["sensitivity"] == 1.0


def test_sensitivity_specificity_over_no_photos_of_a_kind_is_undefined_not_zero():
  result = sensitivity_specificity([1, None], [1, 2])  # no non-landmark photos
  assert result["sensitivity"] == 0.5 and result["non_landmark_images"] == 0
  assert math.isnan(result["specificity"]) and all(map(math.isnan, result["specificity_ci"]))


def test_ap_with_junk_before_between_and_after_positives_by_hand():
  # Ranked list (database ids): J1 P1 x J2 P2 x P3 J3 — junk before, between, after.
  ranking = np.array([10, 1, 20, 11, 2, 21, 3, 12])
  positives, junk = np.array([1, 2, 3]), np.array([10, 11, 12])
  ap, positions = average_precision(ranking, positives, junk)
  # Junk removed: P1 x P2 x P3 → positive positions 0, 2, 4.
  np.testing.assert_array_equal(positions, [0, 2, 4])
  # Trapezoids: j=0,r=0: (1 + 1)/2; j=1,r=2: (1/2 + 2/3)/2; j=2,r=4: (2/4 + 3/5)/2; ÷ 3.
  expected = ((1 + 1) / 2 + (1 / 2 + 2 / 3) / 2 + (2 / 4 + 3 / 5) / 2) / 3
  assert ap == pytest.approx(expected, abs=1e-12)


def test_ap_when_a_positive_is_never_retrieved():
  ap, _ = average_precision(np.array([5, 1, 6]), np.array([1, 9]), np.array([]))
  # One of two positives at position 1: (0/1 + 1/2)/2 ÷ 2.
  assert ap == pytest.approx((0 + 0.5) / 2 / 2)


def test_revisited_protocols_and_skipped_queries():
  # Database of 6 images, 3 queries; ranks in the official (database, queries) layout.
  gnd = [
    {"easy": [0], "hard": [1], "junk": [2]},
    {"easy": [], "hard": [3], "junk": []},
    {"easy": [], "hard": [], "junk": [4]},
  ]  # no positives in any protocol: skipped
  ranks = np.array([[2, 3, 0], [0, 0, 1], [1, 1, 2], [3, 2, 3], [4, 4, 4], [5, 5, 5]])
  medium = revisited_map(ranks, gnd, "medium")
  # Query 0: 2 is junk → list 0,1,3,… → positives at 0,1: AP 1. Query 1: 3 at position 0: AP 1.
  assert medium["mAP"] == pytest.approx(1.0) and medium["skipped_queries"] == 1
  easy = revisited_map(ranks, gnd, "easy")
  # Easy: query 0 positive 0, junk 2 and 1 → 0 at position 0: AP 1; query 1 has no easy
  # positive: skipped too.
  assert easy["mAP"] == pytest.approx(1.0) and easy["queries"] == 1
  hard = revisited_map(ranks, gnd, "hard")
  # Hard: query 0 positive 1, junk 2 and 0 → list 1,… → AP 1; query 1: AP 1.
  assert hard["mAP"] == pytest.approx(1.0)
  assert medium["mP@k"] == {1: 1.0, 5: 1.0, 10: 1.0}


def test_revisited_map_precision_at_k_by_hand():
  gnd = [{"easy": [1, 3], "hard": [], "junk": []}]
  ranks = np.array([[0], [1], [2], [3], [4]])  # positives at 1-based positions 2 and 4
  result = revisited_map(ranks, gnd, "medium", kappas=(1, 2, 5))
  # P@1: 0/1; P@2: 1/2; P@5 → cutoff min(4, 5) = 4: 2/4 (the official definition).
  assert result["mP@k"] == {1: 0.0, 2: 0.5, 5: 0.5}
  assert result["mAP"] == pytest.approx(((0 + 0.5) / 2 + (1 / 3 + 2 / 4) / 2) / 2)


def constructed_gnd():
  return {
    "imlist": ["a", "b", "c", "d"],
    "qimlist": ["q1", "q2"],
    "gnd": [
      {"easy": [0, 2], "hard": [1], "junk": [3], "bbx": [1.0, 2.0, 30.0, 40.0]},
      {"easy": [], "hard": [3], "junk": [0, 1], "bbx": [0.0, 0.0, 5.0, 5.0]},
    ],
  }


def test_pkl_and_mat_ground_truth_load_to_the_same_structure(tmp_path):
  from scipy.io import savemat

  raw = constructed_gnd()
  with open(tmp_path / "gnd_test.pkl", "wb") as f:
    pickle.dump(raw, f)
  # MATLAB layout: a struct array with 1-based indices.
  dtype = [("easy", object), ("hard", object), ("junk", object), ("bbx", object)]
  structs = np.zeros((2,), dtype=dtype)
  for i, entry in enumerate(raw["gnd"]):
    for key in ("easy", "hard", "junk"):
      structs[i][key] = np.array(entry[key], np.float64) + 1
    structs[i]["bbx"] = np.array(entry["bbx"])
  savemat(
    tmp_path / "gnd_test.mat",
    {
      "imlist": np.array(raw["imlist"], dtype=object),
      "qimlist": np.array(raw["qimlist"], dtype=object),
      "gnd": structs,
    },
  )
  from_pkl = load_revisited_gnd(tmp_path / "gnd_test.pkl", trust_pickle=True)
  from_mat = load_revisited_gnd(tmp_path / "gnd_test.mat")
  assert from_pkl == from_mat
  assert from_pkl["gnd"][0] == {
    "easy": [0, 2],
    "hard": [1],
    "junk": [3],
    "bbx": [1.0, 2.0, 30.0, 40.0],
  }
  assert from_mat["gnd"][1]["junk"] == [0, 1]


class TouchOnLoad:
  """Unpickles into a call of `Path.touch`: a stand-in for a ground truth that runs code."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (pathlib.Path.touch, (self.marker,))


def write_crafted_gnd(folder):
  marker = folder / "code_ran"
  path = folder / "gnd_roxford5k.pkl"
  path.write_bytes(pickle.dumps(TouchOnLoad(marker)))
  return path, marker


def test_a_pickle_ground_truth_is_refused_unless_trusted(tmp_path):
  path, marker = write_crafted_gnd(tmp_path)
  with pytest.raises(DataError, match="gnd_roxford5k.pkl.*can run code.*--trust-pickle.*[.]mat"):
    load_revisited_gnd(path)
  assert not marker.exists()
  # The payload is live: loading it for real does run it, so the refusal above is what kept
  # the marker away.
  pickle.loads(path.read_bytes())
  assert marker.exists()


def test_evaluate_revisited_refuses_a_pickle_before_loading_the_model(tmp_path, capsys):
  from landmark_jax.cli.main import main

  path, marker = write_crafted_gnd(tmp_path)
  # A checkpoint that does not exist: had the model been loaded first, that would be the error.
  args = [
    "evaluate-revisited",
    "--checkpoint",
    str(tmp_path / "no_such_run"),
    "--root",
    str(tmp_path),
    "--gnd",
    str(path),
  ]
  assert main(args) == 2
  lines = capsys.readouterr().err.splitlines()
  assert len(lines) == 1 and "gnd_roxford5k.pkl" in lines[0] and "--trust-pickle" in lines[0]
  assert not marker.exists()
  # With the flag the pickle is trusted and read (its code runs: the user vouched for it). It
  # holds no ground truth, which is said in one line, still before the model is looked for.
  assert main(args + ["--trust-pickle"]) == 2
  lines = capsys.readouterr().err.splitlines()
  assert len(lines) == 1 and "is not a revisitop ground truth" in lines[0], lines
  assert "no_such_run" not in lines[0]


def test_query_is_cropped_to_its_box():
  image = Image.new("RGB", (100, 80))
  assert crop_query(image, [10.2, 5.0, 60.0, 45.6]).size == (50, 41)
  assert crop_query(image, None).size == (100, 80)


def official_compute_map(ranks, gnd, kappas):
  """revisitop's `compute_map` (filipradenovic/revisitop, python/evaluate.py, MIT), as
  published, kept verbatim in logic: the oracle for randomised cases."""

  def compute_ap(ranks, nres):
    ap, recall_step = 0.0, 1.0 / nres
    for j in np.arange(len(ranks)):
      rank = ranks[j]
      precision_0 = 1.0 if rank == 0 else float(j) / rank
      precision_1 = float(j + 1) / (rank + 1)
      ap += (precision_0 + precision_1) * recall_step / 2.0
    return ap

  total, nempty = 0.0, 0
  pr = np.zeros(len(kappas))
  for i in np.arange(len(gnd)):
    qgnd = np.array(gnd[i]["ok"])
    if qgnd.shape[0] == 0:
      nempty += 1
      continue
    qgndj = np.array(gnd[i]["junk"])
    pos = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgnd)]
    junk = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgndj)]
    k = ij = 0
    if len(junk):
      ip = 0
      while ip < len(pos):
        while ij < len(junk) and pos[ip] > junk[ij]:
          k += 1
          ij += 1
        pos[ip] = pos[ip] - k
        ip += 1
    total += compute_ap(pos, len(qgnd))
    pos += 1
    for j in np.arange(len(kappas)):
      kq = min(max(pos), kappas[j])
      pr[j] += (pos <= kq).sum() / kq
  return total / (len(gnd) - nempty), pr / (len(gnd) - nempty)


@pytest.mark.parametrize("protocol", ["easy", "medium", "hard"])
def test_revisited_map_equals_the_official_code_on_random_cases(protocol):
  rng = np.random.default_rng(7)
  database, queries = 60, 12
  gnd = []
  for _ in range(queries):
    ids = rng.permutation(database)
    sizes = rng.integers(0, 6, 3)
    gnd.append(
      {
        "easy": ids[: sizes[0]].tolist(),
        "hard": ids[sizes[0] : sizes[0] + sizes[1]].tolist(),
        "junk": ids[sizes[0] + sizes[1] : sizes.sum()].tolist(),
      }
    )
  ranks = np.stack([rng.permutation(database) for _ in range(queries)], axis=1)
  official_gnd = []
  for g in gnd:
    ok, junk = {
      "easy": (g["easy"], g["junk"] + g["hard"]),
      "medium": (g["easy"] + g["hard"], g["junk"]),
      "hard": (g["hard"], g["junk"] + g["easy"]),
    }[protocol]
    official_gnd.append({"ok": ok, "junk": junk})
  expected_map, expected_pr = official_compute_map(ranks, official_gnd, [1, 5, 10])
  ours = revisited_map(ranks, gnd, protocol)
  assert ours["mAP"] == pytest.approx(expected_map, abs=1e-12)
  np.testing.assert_allclose([ours["mP@k"][k] for k in (1, 5, 10)], expected_pr, atol=1e-12)
