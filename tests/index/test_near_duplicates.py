"""Cleaning removes redundant photos (near-duplicates, by a cosine threshold, counted in the
report) and keeps each valid cluster's medoid as a class reference for recognition."""

import numpy as np
import pytest

from landmark_jax.cleaning.clusters import clean_landmark, distinct_photos, medoid
from landmark_jax.cleaning.config import CleaningConfig
from landmark_jax.cleaning.dataset import clean_dataset
from landmark_jax.cleaning.result import NEAR_DUPLICATE
from landmark_jax.data.labels import LabelMap
from landmark_jax.stages.clean import write_cleaning


def unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def view(rng, axis, n, spread=0.1, dim=16):
  """`n` photos of one view: cosine ≈ 0.8–0.95 between them, never near-duplicates."""
  return unit(np.eye(dim)[axis] + spread * rng.standard_normal((n, dim)))


def test_a_planted_near_duplicate_is_removed_and_counted(tmp_path):
  rng = np.random.default_rng(0)
  photos = view(rng, 0, 6)
  pairwise = photos @ photos.T
  assert pairwise[~np.eye(6, dtype=bool)].max() < 0.99  # no duplicates among them
  # Photo 6 is photo 2 resized and recompressed: almost the same embedding (cosine 0.9995).
  copy = unit(photos[2] + 0.03 * unit(rng.standard_normal(16)))
  assert 0.995 <= float(copy @ photos[2]) < 1
  x = np.concatenate([photos, copy[None]])
  config = CleaningConfig(distance_threshold=0.5, min_cluster_size=3)
  result = clean_dataset([f"p{i}" for i in range(7)], ["tower"] * 7, x, config)
  np.testing.assert_array_equal(result.keep, [True] * 6 + [False])  # the later copy goes
  report = result.report()
  assert report["near_duplicates_dropped"] == 1 and report["images_dropped"] == 1
  (row,) = report["affected_landmarks"]
  assert row["reason"] == NEAR_DUPLICATE and row["dropped"] == 1
  assert "1 near-duplicate photo(s) (cosine ≥ near_duplicate_similarity=0.995" in row["explanation"]
  # The centroid is the mean of the six distinct photos: the copy does not count twice.
  np.testing.assert_allclose(result.centroids[0], unit(photos.mean(0)), atol=1e-6)
  write_cleaning(result, LabelMap.from_ids(["tower"]), tmp_path)
  assert "p6" not in (tmp_path / "train_clean.csv").read_text()
  # Turned off, the copy stays.
  off = clean_dataset(
    [f"p{i}" for i in range(7)],
    ["tower"] * 7,
    x,
    CleaningConfig(distance_threshold=0.5, remove_near_duplicates=False),
  )
  assert off.keep.all() and off.report()["near_duplicates_dropped"] == 0


def test_distinct_photos_keeps_the_first_of_each_group():
  e = np.eye(4)
  x = unit([e[0], e[1], e[0] + 0.01 * e[2], e[1] + 0.01 * e[3], e[2]])
  # Photo 2 repeats photo 0 (cos 0.99995), photo 3 repeats photo 1; photo 4 is new.
  np.testing.assert_array_equal(distinct_photos(x, 0.995), [0, 1, 4])
  np.testing.assert_array_equal(distinct_photos(x, 1.0), [0, 1, 2, 3, 4])


def test_the_medoid_is_the_member_with_the_least_summed_cosine_distance():
  rng = np.random.default_rng(1)
  x = unit(rng.standard_normal((9, 5)) + 2 * np.eye(5)[0])
  members = np.array([1, 3, 4, 6, 8])
  # By hand: the summed cosine distance of each member to the others, smallest wins.
  summed = [sum(1 - x[i] @ x[j] for j in members) for i in members]
  assert medoid(x, members) == members[int(np.argmin(summed))]


def test_references_are_the_cluster_medoids_unless_given():
  rng = np.random.default_rng(2)
  x = np.concatenate([view(rng, 0, 5), view(rng, 1, 5), view(rng, 2, 4)])
  landmarks = ["tower"] * 10 + ["gate"] * 4
  config = CleaningConfig(distance_threshold=0.5, min_cluster_size=3)
  result = clean_dataset([f"p{i}" for i in range(14)], landmarks, x, config)
  assert result.reference_landmarks == ["tower", "tower", "gate"]
  expected = [
    x[medoid(x, np.arange(0, 5))],
    x[medoid(x, np.arange(5, 10))],
    x[medoid(x, np.arange(10, 14))],
  ]
  np.testing.assert_allclose(result.references, expected, atol=1e-6)
  given = {"gate": unit(rng.standard_normal((2, 16)))}
  with_given = clean_dataset(
    [f"p{i}" for i in range(14)],
    landmarks,
    x,
    CleaningConfig(distance_threshold=0.5, reference_similarity=-1),
    references=given,
  )
  assert with_given.reference_landmarks == ["tower", "tower", "gate", "gate"]
  assert with_given.report()["references_given"] == 2 and result.report()["references_given"] == 0
  np.testing.assert_allclose(with_given.references[2:], given["gate"], atol=1e-6)


def test_a_landmark_of_duplicates_only_keeps_one_photo():
  x = unit(np.tile(np.eye(8)[3], (4, 1)) + 1e-4 * np.arange(4)[:, None])
  result = clean_landmark("statue", x, CleaningConfig(min_cluster_size=3))
  # One distinct photo: no cluster of 3, so the landmark is kept whole as that one photo.
  assert result.outcome.near_duplicates == 3 and result.outcome.kept == 1
  assert result.outcome.reasons == ("no_valid_cluster_kept_whole", NEAR_DUPLICATE)
  np.testing.assert_array_equal(result.assignment, [0, -1, -1, -1])


@pytest.mark.parametrize("value", [-1.0, 1.5])
def test_an_out_of_range_similarity_is_refused(value):
  with pytest.raises(ValueError, match="near_duplicate_similarity"):
    CleaningConfig(near_duplicate_similarity=value)
