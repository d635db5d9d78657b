"""Geometric verification on real photos (landmarks-mini) and against scikit-image's RANSAC."""

import numpy as np
import pytest
from PIL import Image
from skimage.transform import AffineTransform, warp

from landmark_jax.baselines.delf import (
  DelfConfig,
  LocalFeatureExtractor,
  Pca,
  match_descriptors,
  verify_affine,
  verify_pair,
)
from landmark_jax.data import GLDv2Source
from landmark_jax.data.transforms import open_image

IMAGE_SIZE = 512
RESIDUAL = 20.0  # DELF's RANSAC threshold, in pixels of the 512-px photo
# The planted view change: scaled by 0.85, rotated 10°, sheared, about the photo's centre,
# then shifted — a plausible second shot of the same facade.
SCALE, ROTATION, SHEAR, SHIFT = 0.85, np.deg2rad(10), 0.05, (15.0, -10.0)
QUERY_ID = "5aa7737189b5f8f7"  # St Paul's Cathedral
# A photo of each other landmark, and a street photo with no landmark.
UNRELATED_IDS = (
  "0b6aa7646e4ac824",
  "759d78ce49717c41",
  "017fba1eedfbda66",
  "16ed65c8a8dd8827",
  "161638150bdf7c83",
)


def _planted_transform(height: int, width: int) -> AffineTransform:
  centre = np.array([width / 2, height / 2])
  return (
    AffineTransform(translation=-centre)
    + AffineTransform(scale=SCALE, rotation=ROTATION, shear=SHEAR)
    + AffineTransform(translation=centre + np.array(SHIFT))
  )


def _photo(path) -> np.ndarray:
  """The photo scaled so its longer side is IMAGE_SIZE: the extractor's own frame, so that
  keypoints of the photo and of its warped copy live in the planted transform's frame."""
  image = open_image(str(path))
  ratio = IMAGE_SIZE / max(image.size)
  size = (round(image.size[0] * ratio), round(image.size[1] * ratio))
  return np.asarray(image.resize(size, Image.BILINEAR))


@pytest.fixture(scope="module")
def mini_photos(landmarks_mini):
  source = GLDv2Source(landmarks_mini, non_landmark_csv="non_landmark.csv")
  return {str(i): p for i, p in zip(source.ids, source.paths)}


@pytest.fixture(scope="module")
def extractor(trained, mini_photos):
  """The demo model's conv4 features at 3 scales, PCA fitted on landmarks-mini."""
  config = DelfConfig(
    attention="feature_norm", image_size=IMAGE_SIZE, scales=(0.7071, 1.0, 1.4142), max_features=500
  )
  raw = LocalFeatureExtractor.from_trained(trained, config)
  fit_on = [p for i, p in sorted(mini_photos.items()) if i != QUERY_ID][::3]
  pca = Pca.fit(np.concatenate([f.descriptors for f in raw.extract(fit_on)]), 40)
  return raw.with_pca(pca)


@pytest.fixture(scope="module")
def planted_pair(extractor, mini_photos):
  photo = _photo(mini_photos[QUERY_ID])
  transform = _planted_transform(*photo.shape[:2])
  warped = warp(
    photo, transform.inverse, output_shape=photo.shape, order=1, preserve_range=True
  ).astype(np.uint8)
  query, copy = extractor.extract([photo, warped])
  return query, copy, transform


@pytest.mark.parametrize("backend", ["numpy", "skimage"])
def test_ransac_finds_the_planted_affine_between_a_photo_and_its_warped_copy(planted_pair, backend):
  query, copy, planted = planted_pair
  result = verify_pair(
    query, copy, max_descriptor_distance=0.8, residual_threshold=RESIDUAL, backend=backend
  )
  # The inliers expected: matches that the planted map itself carries within the threshold.
  source = query.keypoints[result.matches[:, 0]]
  target = copy.keypoints[result.matches[:, 1]]
  expected = np.linalg.norm(planted(source) - target, axis=1) < RESIDUAL
  assert expected.sum() >= 50, "the planted pair should give many correct matches"
  found = result.inlier_mask
  assert result.inliers == found.sum() >= 0.8 * expected.sum()
  assert (found & expected).sum() >= 0.9 * found.sum()  # nearly all found inliers are real
  # The fitted map agrees with the planted one over the matched keypoints of the photo.
  assert np.median(np.linalg.norm(result.transform(source) - planted(source), axis=1)) < 5.0
  np.testing.assert_allclose(result.transform.params[:2, :2], planted.params[:2, :2], atol=0.08)


@pytest.mark.parametrize("other_id", UNRELATED_IDS)
def test_verification_rejects_an_unrelated_pair(extractor, mini_photos, planted_pair, other_id):
  query, copy, _ = planted_pair
  same = verify_pair(query, copy, max_descriptor_distance=0.8, residual_threshold=RESIDUAL)
  (other,) = extractor.extract([_photo(mini_photos[other_id])])
  unrelated = verify_pair(query, other, max_descriptor_distance=0.8, residual_threshold=RESIDUAL)
  assert unrelated.inliers < 25 <= same.inliers  # 25 inliers separates them with margin
  assert unrelated.inliers < same.inliers / 3


def test_numpy_ransac_agrees_with_scikit_image_on_noisy_matches_with_outliers():
  rng = np.random.default_rng(3)
  source = rng.uniform(0, 500, (200, 2))
  truth = AffineTransform(scale=(0.9, 1.1), rotation=0.3, shear=0.1, translation=(40, -25))
  target = truth(source) + rng.normal(0, 1.0, source.shape)
  outlier = rng.random(len(source)) < 0.6
  target[outlier] = rng.uniform(0, 500, (outlier.sum(), 2))
  matches = np.stack([np.arange(len(source))] * 2, axis=1)
  results = {
    backend: verify_affine(source, target, matches, residual_threshold=4.0, backend=backend)
    for backend in ("numpy", "skimage")
  }
  for result in results.values():
    # Inliers: the planted ones (noise of σ = 1 px stays far inside 4 px), nothing else
    # but the rare outlier that happens to land within 4 px of its true position.
    planted_residual = np.linalg.norm(truth(source) - target, axis=1)
    np.testing.assert_array_equal(result.inlier_mask, planted_residual < 4.0)
    np.testing.assert_allclose(result.transform.params, truth.params, atol=0.05 * 40)
  np.testing.assert_allclose(
    results["numpy"].transform.params, results["skimage"].transform.params, atol=1e-6
  )


def test_ransac_needs_three_matches_and_refuses_implausible_maps():
  source = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
  two = verify_affine(source, source, np.array([[0, 0], [1, 1]]), residual_threshold=2.0)
  assert two.inliers == 0 and two.transform is None
  mirrored = source * np.array([-1.0, 1.0])  # a mirror image: no camera takes that
  matches = np.stack([np.arange(4)] * 2, axis=1)
  assert verify_affine(source, mirrored, matches, residual_threshold=2.0).inliers == 0
  identity = verify_affine(source, source, matches, residual_threshold=2.0)
  assert identity.inliers == 4
  np.testing.assert_allclose(identity.transform.params, np.eye(3), atol=1e-9)


def test_match_descriptors_nearest_within_distance_and_mutual():
  query = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], np.float32)
  database = np.array([[0.0, 1.0], [0.8, 0.6]], np.float32)
  # Distances: q0→d1 0.632; q1→d0 0; q2→d1 0.283 (d1's nearest is q2, not q0).
  np.testing.assert_array_equal(match_descriptors(query, database, 0.7), [[0, 1], [1, 0], [2, 1]])
  np.testing.assert_array_equal(match_descriptors(query, database, 0.5), [[1, 0], [2, 1]])
  np.testing.assert_array_equal(
    match_descriptors(query, database, 0.7, mutual=True), [[1, 0], [2, 1]]
  )
  assert match_descriptors(query[:0], database, 1.0).shape == (0, 2)
