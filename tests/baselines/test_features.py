"""Local features: the conv4 cut of the backbone, keypoint coordinates, PCA, attention."""

import jax
import numpy as np
import pytest
from PIL import Image

from landmark_jax.baselines.delf import DelfConfig, LocalFeatureExtractor, Pca
from landmark_jax.baselines.delf.features import fit_to_square
from landmark_jax.models import get_backbone
from landmark_jax.models.landmark_net import IMAGENET_MEAN


@pytest.fixture(scope="module")
def tiny_backbone():
  backbone = get_backbone("resnet_tiny", zero_init_last_norm=False)
  variables = jax.jit(backbone.init)(jax.random.key(0), np.zeros((1, 64, 64, 3), np.float32))
  return backbone, variables


@pytest.mark.slow
def test_output_stage_returns_the_map_the_full_network_computes_there(tiny_backbone):
  backbone, variables = tiny_backbone
  images = np.random.default_rng(0).uniform(0, 1, (2, 96, 80, 3)).astype(np.float32)
  # Flax's own record of what the full network's third stage outputs.
  _, state = backbone.apply(variables, images, capture_intermediates=True)
  reference = state["intermediates"]["layer3_0"]["__call__"][0]
  cut = backbone.clone(output_stage=3)
  feature_map = cut.apply(variables, images)
  assert feature_map.shape == (2, 6, 5, cut.feature_channels(3))  # ⌈96/16⌉ × ⌈80/16⌉
  assert cut.output_stride == 16
  np.testing.assert_allclose(feature_map, reference, rtol=1e-6, atol=1e-6)


def test_fit_to_square_scales_the_longer_side_and_pads_with_the_mean_colour():
  image = Image.fromarray(np.full((50, 100, 3), 200, np.uint8))
  pixels, (height, width) = fit_to_square(image, 64)
  assert pixels.shape == (64, 64, 3) and (height, width) == (32, 64)
  assert (pixels[:32] == 200).all()
  np.testing.assert_array_equal(
    pixels[32:], np.broadcast_to(np.round(IMAGENET_MEAN).astype(np.uint8), (32, 64, 3))
  )


def test_keypoints_move_with_the_scene(tiny_backbone):
  """Shift a photo right by two feature-map steps (32 px): a location far from the borders
  sees the same pixels, so its descriptor must reappear at its keypoint + (32, 0)."""
  backbone, variables = tiny_backbone
  config = DelfConfig(attention="feature_norm", image_size=512, scales=(1.0,), max_features=32 * 32)
  extractor = LocalFeatureExtractor(backbone, variables, config)
  photo = np.random.default_rng(1).integers(0, 256, (512, 480, 3), dtype=np.uint8)
  shifted = np.zeros_like(photo)
  shifted[:, 32:] = photo[:, :-32]
  original, moved = extractor.extract([photo, shifted])
  by_position = {tuple(k): d for k, d in zip(moved.keypoints.round(3), moved.descriptors)}
  interior = (
    (original.keypoints[:, 0] > 120)
    & (original.keypoints[:, 0] < 320)
    & (original.keypoints[:, 1] > 120)
    & (original.keypoints[:, 1] < 380)
  )
  assert interior.sum() > 100
  for keypoint, descriptor in zip(original.keypoints[interior], original.descriptors[interior]):
    np.testing.assert_allclose(
      by_position[tuple((keypoint + [32, 0]).round(3))], descriptor, atol=1e-4
    )


def test_locations_in_the_padding_are_never_keypoints(tiny_backbone):
  backbone, variables = tiny_backbone
  config = DelfConfig(
    attention="feature_norm", image_size=128, scales=(0.7071, 1.0, 1.4142), max_features=10_000
  )
  extractor = LocalFeatureExtractor(backbone, variables, config)
  (features,) = extractor.extract([np.full((40, 128, 3), 90, np.uint8)])  # a 128×40 strip
  assert (features.keypoints[:, 1] < 40).all() and (features.keypoints[:, 0] < 128).all()
  # Every level contributes the locations whose centre falls inside the strip.
  assert set(np.unique(features.scales).tolist()) == {np.float32(s) for s in config.scales}
  assert np.all(np.diff(features.scores) <= 0)  # best attention first
  np.testing.assert_allclose(np.linalg.norm(features.descriptors, axis=1), 1.0, atol=1e-5)


def test_trained_attention_requires_its_parameters(tiny_backbone):
  backbone, variables = tiny_backbone
  with pytest.raises(ValueError, match="attention_params"):
    LocalFeatureExtractor(backbone, variables, DelfConfig(attention="trained"))
  with pytest.raises(ValueError, match="attention must be one of"):
    DelfConfig(attention="sift")


def test_pca_matches_numpy_svd_and_the_device_projection():
  rng = np.random.default_rng(0)
  data = rng.standard_normal((500, 12)) @ rng.standard_normal((12, 12))
  pca = Pca.fit(data, 4)
  centred = data - data.mean(axis=0)
  _, singular, directions = np.linalg.svd(centred, full_matrices=False)
  for k in range(4):  # the same directions, up to sign
    assert abs(abs(np.dot(pca.components[:, k], directions[k])) - 1) < 1e-5
  projected = centred @ directions[:4].T
  expected = projected / np.linalg.norm(projected, axis=1, keepdims=True)
  ours = np.asarray(pca.project(data.astype(np.float32)))
  np.testing.assert_allclose(np.abs(ours), np.abs(expected), atol=1e-4)
  whitened = Pca.fit(data, 4, whiten=True)
  np.testing.assert_allclose(np.var(centred @ whitened.components, axis=0, ddof=1), 1.0, rtol=1e-4)
  assert np.allclose(
    singular[:4] ** 2 / (len(data) - 1), np.var(centred @ pca.components, axis=0, ddof=1), rtol=1e-4
  )
