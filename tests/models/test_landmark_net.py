import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from landmark_jax import sharding
from landmark_jax.models import LandmarkNet, normalize_images

NUM_CLASSES = 5


def make_batch(batch_size=16, size=32, seed=0):
  rng = np.random.default_rng(seed)
  images = rng.integers(0, 256, (batch_size, size, size, 3), dtype=np.uint8)
  labels = rng.integers(0, NUM_CLASSES + 1, (batch_size,), dtype=np.int32)
  return images, labels


@pytest.fixture(scope="module")
def tiny():
  model = LandmarkNet("resnet_tiny", NUM_CLASSES, embedding_dim=32)
  images, _ = make_batch()
  variables = model.init(jax.random.key(0), images)
  return model, variables


@pytest.mark.slow
def test_heads_shapes_and_non_landmark_class(tiny):
  model, variables = tiny
  params = variables["params"]
  assert params["embedding_fc"]["kernel"].shape == (256, 32)  # tiny backbone: 256 features
  assert params["classifier"]["kernel"].shape == (32, NUM_CLASSES + 1)
  assert model.non_landmark_label == NUM_CLASSES
  embedding, logits = model.apply(variables, make_batch(4)[0])
  assert embedding.shape == (4, 32) and logits.shape == (4, NUM_CLASSES + 1)


def test_embed_is_the_l2_normalised_bn_output(tiny):
  model, variables = tiny
  images = make_batch(4)[0]
  embedding, logits = model.apply(variables, images)
  unit = model.apply(variables, images, method=LandmarkNet.embed)
  expected = np.asarray(embedding) / np.linalg.norm(np.asarray(embedding), axis=1, keepdims=True)
  np.testing.assert_allclose(unit, expected, rtol=1e-5, atol=1e-6)
  # The classifier reads the (unnormalised) BN output: logits = e·W + b.
  head = variables["params"]["classifier"]
  np.testing.assert_allclose(
    logits, np.asarray(embedding) @ head["kernel"] + head["bias"], rtol=1e-4, atol=1e-4
  )


@pytest.mark.slow
def test_embedding_bn_normalises_in_training_mode(tiny):
  model, variables = tiny
  (embedding, _), _ = model.apply(variables, make_batch(16)[0], train=True, mutable=["batch_stats"])
  # BN with scale 1, bias 0 at init: each feature has zero mean and unit variance over the batch.
  np.testing.assert_allclose(np.mean(embedding, axis=0), 0, atol=1e-4)
  np.testing.assert_allclose(np.var(embedding, axis=0), 1, atol=1e-2)


def test_normalize_images_matches_imagenet_statistics():
  pixel = np.array([[[[124, 116, 104]]]], np.uint8)
  expected = (pixel / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
  np.testing.assert_allclose(normalize_images(pixel), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_bf16_compute_keeps_float32_params(tiny):
  _, variables = tiny
  model = LandmarkNet("resnet_tiny", NUM_CLASSES, embedding_dim=32, dtype=jnp.bfloat16)
  images = make_batch(4)[0]
  bf16_variables = model.init(jax.random.key(0), images)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(bf16_variables))
  assert model.backbone.dtype == jnp.bfloat16
  embedding, logits = model.apply(variables, images)  # same weights, bf16 compute
  reference, _ = LandmarkNet("resnet_tiny", NUM_CLASSES, embedding_dim=32).apply(variables, images)
  assert embedding.dtype == jnp.float32
  np.testing.assert_allclose(embedding, reference, rtol=0.05, atol=0.05)


def loss_fn(params, batch_stats, model, images, labels):
  (embedding, logits), updates = model.apply(
    {"params": params, "batch_stats": batch_stats}, images, train=True, mutable=["batch_stats"]
  )
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  loss += 1e-3 * jnp.mean(jnp.sum(embedding**2, axis=-1))
  return loss, (embedding, logits, updates["batch_stats"])


def forward_backward(model, variables, images, labels, mesh):
  step = jax.jit(
    jax.value_and_grad(functools.partial(loss_fn, model=model), has_aux=True),
    out_shardings=sharding.replicated_sharding(mesh),
  )
  params = sharding.replicate(variables["params"], mesh)
  batch_stats = sharding.replicate(variables["batch_stats"], mesh)
  images, labels = sharding.shard_batch((images, labels), mesh)
  return jax.device_get(step(params, batch_stats, images=images, labels=labels))


@pytest.mark.slow
def test_data_parallel_forward_backward_equals_single_device(tiny):
  assert jax.device_count() == 8, "conftest sets 8 simulated CPU devices"
  model, variables = tiny
  images, labels = make_batch(16)

  mesh8 = sharding.make_data_mesh()
  images8, _ = sharding.shard_batch((images, labels), mesh8)
  assert len(images8.addressable_shards) == 8
  assert images8.addressable_shards[0].data.shape == (2, 32, 32, 3)

  single = forward_backward(
    model, variables, images, labels, sharding.make_data_mesh(jax.devices()[:1])
  )
  parallel = forward_backward(model, variables, images, labels, mesh8)
  (loss1, aux1), grads1 = single
  (loss8, aux8), grads8 = parallel
  np.testing.assert_allclose(loss8, loss1, rtol=1e-5)
  # Embeddings, logits and the BN running statistics: batch statistics are global, so the
  # sharded step normalises each device's 2 images with all 16 images' mean and variance.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5), aux8, aux1)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5), grads8, grads1)


def test_shard_batch_rejects_uneven_batch():
  mesh = sharding.make_data_mesh()
  with pytest.raises(ValueError, match="does not split over 8"):
    sharding.shard_batch(np.zeros((12, 4)), mesh)
