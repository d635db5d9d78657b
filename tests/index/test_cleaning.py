import numpy as np
import pytest
from scipy.cluster import hierarchy
from scipy.spatial.distance import pdist

from landmark_jax.stages.cleaning import (
    CleaningConfig, clean_dataset, clean_landmark, cluster_embeddings)


def clustered(rng, centers, per_cluster, noise):
  points = np.concatenate([c + noise * rng.standard_normal((per_cluster, len(c))) for c in centers])
  return points / np.linalg.norm(points, axis=1, keepdims=True)


def same_partition(a, b):
  """Two flat clusterings are the same partition (ids may be numbered differently)."""
  pairs = set(zip(a.tolist(), b.tolist()))
  return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("linkage", ["average", "complete", "single"])
@pytest.mark.parametrize("threshold", [0.3, 0.6])
def test_clustering_equals_scipy_on_cosine_distance(linkage, threshold):
  rng = np.random.default_rng(0)
  x = clustered(rng, rng.standard_normal((5, 32)), 20, 0.35) * rng.uniform(0.5, 3, (100, 1))
  ours = cluster_embeddings(x, linkage, threshold)
  # Reference: scipy straight from the raw (unnormalised) vectors with its own cosine metric.
  reference = hierarchy.fcluster(hierarchy.linkage(pdist(x, "cosine"), method=linkage),
                                 t=threshold, criterion="distance")
  assert same_partition(ours, reference)
  assert 1 < len(set(ours.tolist())) < 100  # a non-trivial cut


def test_three_angles_and_outliers_give_three_centroids():
  rng = np.random.default_rng(1)
  angles = np.eye(64)[:3] * 5  # three orthogonal "shooting angles"
  inliers = clustered(rng, angles, 12, 0.4)
  outliers = rng.standard_normal((6, 64))
  outliers /= np.linalg.norm(outliers, axis=1, keepdims=True)
  x = np.concatenate([inliers, outliers])
  result = clean_landmark("tower", x, CleaningConfig(distance_threshold=0.5, min_cluster_size=3))
  assert len(result.centroids) == 3
  np.testing.assert_array_equal(result.assignment[36:], -1)  # every outlier dropped
  assert (result.assignment[:36] >= 0).all()
  assert sorted(result.sizes.tolist()) == [12, 12, 12]
  # Each centroid is the normalised mean of its members and points along its angle.
  for j, centroid in enumerate(result.centroids):
    members = x[result.assignment == j]
    expected = members.mean(0) / np.linalg.norm(members.mean(0))
    np.testing.assert_allclose(centroid, expected, rtol=1e-5, atol=1e-6)
    assert np.isclose(np.linalg.norm(centroid), 1.0, atol=1e-6)
  assert sorted(int(np.argmax(c)) for c in result.centroids) == [0, 1, 2]


def test_large_landmark_is_sampled_and_the_rest_assigned():
  rng = np.random.default_rng(2)
  x = clustered(rng, np.eye(32)[:2] * 5, 300, 0.3)
  small_cap = CleaningConfig(distance_threshold=0.5, max_images_per_landmark=100)
  capped = clean_landmark(7, x, small_cap)
  full = clean_landmark(7, x, CleaningConfig(distance_threshold=0.5))
  assert len(capped.centroids) == len(full.centroids) == 2
  assert (capped.assignment >= 0).sum() == 600
  np.testing.assert_allclose(np.sort(capped.centroids @ full.centroids.T, axis=1)[:, -1], 1.0, atol=1e-3)


def test_reference_images_reject_clusters_far_from_them():
  rng = np.random.default_rng(3)
  x = clustered(rng, np.eye(16)[:2] * 5, 10, 0.2)
  result = clean_landmark(1, x, CleaningConfig(distance_threshold=0.4), references=np.eye(16)[:1])
  assert len(result.centroids) == 1 and int(np.argmax(result.centroids[0])) == 0
  assert (result.assignment[:10] == 0).all() and (result.assignment[10:] == -1).all()


@pytest.mark.parametrize("workers", [0, 2])
def test_clean_dataset_report_and_clean_csv(workers):
  rng = np.random.default_rng(4)
  a = clustered(rng, np.eye(16)[:2] * 5, 5, 0.2)   # landmark 10: two angles
  b = clustered(rng, np.eye(16)[2:3] * 5, 4, 0.2)  # landmark 20: one angle
  c = clustered(rng, np.eye(16)[3:6] * 5, 1, 0.2)  # landmark 30: three lone images
  nl = rng.standard_normal((2, 16))
  x = np.concatenate([a, b, c, nl])
  landmarks = [10] * 10 + [20] * 4 + [30] * 3 + [None] * 2
  ids = [f"img{i}" for i in range(len(x))]
  result = clean_dataset(ids, landmarks, x, CleaningConfig(distance_threshold=0.4, num_workers=workers))
  assert result.centroid_landmarks == [10, 10, 20]
  assert result.landmarks_without_cluster == [30]
  report = result.report()
  assert report == {
      "images_before": 17, "images_after": 14, "non_landmark_images": 2,
      "landmarks_before": 3, "landmarks_after": 2, "centroids": 3,
      "clusters_per_landmark_histogram": {"0": 1, "1": 1, "2": 1},
      "landmarks_without_valid_cluster": ["30"]}
  rows = dict(result.clean_rows())
  assert rows[20] == "img10 img11 img12 img13" and 30 not in rows
