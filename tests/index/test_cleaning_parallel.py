"""Cleaning in chunks and in worker processes gives exactly what cleaning each landmark alone
gives: the same kept photos, centroids, sizes, outcomes and references, bit for bit, whether
the embeddings are in memory (shared with the workers) or a memory-mapped ``.npy`` (opened by
the workers themselves)."""

import collections

import numpy as np
import pytest

from landmark_jax.cleaning import dataset as cleaning
from landmark_jax.cleaning.clusters import clean_landmark
from landmark_jax.cleaning.config import CleaningConfig
from landmark_jax.cleaning.dataset import clean_dataset, group_rows


def unit(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def synthetic_set(seed=0, dim=16):
  """Landmarks of 1 to 60 photos (int and str ids), each a few views plus outliers and a
  planted near-duplicate, non-landmark rows between them, in a shuffled order."""
  rng = np.random.default_rng(seed)
  vectors, landmarks = [], []
  for k, size in enumerate([1, 2, 3, 7, 12, 25, 60, 5, 9, 40, 4, 18]):
    views = unit(rng.standard_normal((rng.integers(1, 4), dim)))
    photos = views[rng.integers(0, len(views), size)] + 0.25 * rng.standard_normal((size, dim))
    photos[rng.random(size) < 0.15] = rng.standard_normal(dim)  # outliers
    if size > 4:
      photos[-1] = photos[0] + 1e-3 * rng.standard_normal(dim)  # a near-duplicate of photo 0
    vectors.append(photos)
    landmarks += [k if k % 3 else f"landmark-{k}"] * size
  vectors.append(rng.standard_normal((15, dim)))
  landmarks += [None] * 15
  order = rng.permutation(len(landmarks))
  x = np.concatenate(vectors)[order].astype(np.float32)
  return [f"photo{i}" for i in range(len(x))], [landmarks[i] for i in order], x


# max_images_per_landmark below the largest landmark: the sampled path is in the comparison.
CONFIG = CleaningConfig(distance_threshold=0.5, min_cluster_size=3, max_images_per_landmark=30)


def one_by_one(landmarks, x, config, references=None):
  """The reference: each landmark cleaned alone, straight from its rows, in order of first
  appearance (a dict of lists, not `group_rows`)."""
  rows = collections.defaultdict(list)
  for i, landmark in enumerate(landmarks):
    if landmark is not None:
      rows[landmark].append(i)
  return {
    landmark: clean_landmark(landmark, x[r], config, (references or {}).get(landmark))
    for landmark, r in rows.items()
  }, rows


def assert_same_as_one_by_one(result, landmarks, x, config, references=None):
  expected, rows = one_by_one(landmarks, x, config, references)
  assert [o.landmark for o in result.outcomes] == list(expected)
  assert result.outcomes == [e.outcome for e in expected.values()]
  keep = np.zeros(len(x), bool)
  for landmark, e in expected.items():
    keep[rows[landmark]] = e.assignment >= 0
  np.testing.assert_array_equal(result.keep, keep)
  np.testing.assert_array_equal(
    result.centroids, np.concatenate([e.centroids for e in expected.values()])
  )
  np.testing.assert_array_equal(
    result.cluster_sizes, np.concatenate([e.sizes for e in expected.values()])
  )
  assert result.centroid_landmarks == [
    l for l, e in expected.items() for _ in range(len(e.centroids))
  ]
  medoid_rows = [
    np.asarray(rows[l])[e.medoids]
    for l, e in expected.items()
    if len(e.centroids) and (references or {}).get(l) is None
  ]
  if not references:
    np.testing.assert_array_equal(
      result.references, unit(x[np.concatenate(medoid_rows)].astype(np.float64)).astype(np.float32)
    )


def test_group_rows_matches_a_dict_of_lists():
  _, landmarks, _ = synthetic_set()
  expected = collections.defaultdict(list)
  for i, landmark in enumerate(landmarks):
    if landmark is not None:
      expected[landmark].append(i)
  groups = group_rows(landmarks)
  assert [g[0] for g in groups] == list(expected)
  for landmark, rows in groups:
    assert rows.tolist() == expected[landmark]
  assert group_rows([None, None]) == [] and group_rows([]) == []


@pytest.mark.parametrize("chunk_photos", [1, 50, 10_000])
def test_chunked_cleaning_equals_each_landmark_alone(chunk_photos):
  ids, landmarks, x = synthetic_set()
  result = clean_dataset(ids, landmarks, x, CONFIG, chunk_photos=chunk_photos)
  assert_same_as_one_by_one(result, landmarks, x, CONFIG)
  assert result.report()["near_duplicates_dropped"] > 0  # the planted copies were met


def test_worker_processes_on_a_memory_map_equal_each_landmark_alone(tmp_path):
  ids, landmarks, x = synthetic_set(seed=1)
  np.save(tmp_path / "embeddings.npy", x)
  mapped = np.load(tmp_path / "embeddings.npy", mmap_mode="r")
  handle, memory = cleaning._shared_handle(mapped)
  assert handle[0] == "file" and memory is None  # workers open the file, nothing is copied
  config = CleaningConfig(**{**CONFIG.__dict__, "num_workers": 2})
  result = clean_dataset(ids, landmarks, mapped, config, chunk_photos=40)
  assert_same_as_one_by_one(result, landmarks, x, CONFIG)


def test_worker_processes_on_an_array_in_memory_equal_each_landmark_alone():
  ids, landmarks, x = synthetic_set(seed=2)
  references = {4: x[[landmarks.index(4)]] + 0.01}  # a given reference photo for landmark 4
  config = CleaningConfig(**{**CONFIG.__dict__, "num_workers": 2})
  parallel = clean_dataset(ids, landmarks, x, config, references, chunk_photos=40)
  sequential = clean_dataset(ids, landmarks, x, CONFIG, references)
  assert_same_as_one_by_one(parallel, landmarks, x, CONFIG, references)
  np.testing.assert_array_equal(parallel.references, sequential.references)
  assert parallel.reference_landmarks == sequential.reference_landmarks
  assert parallel.references_given == sequential.references_given == 1
