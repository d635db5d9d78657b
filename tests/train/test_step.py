import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmark_jax import losses, sharding
from landmark_jax.models import LandmarkNet
from landmark_jax.train import optim
from landmark_jax.train.config import LossConfig, OptimConfig
from landmark_jax.train.state import create_train_state
from landmark_jax.train.step import make_train_step, stage_labels

NUM_CLASSES = 4


def batches(count, size=16, seed=0):
  rng = np.random.default_rng(seed)
  return [
    {
      "image": rng.integers(0, 256, (size, 32, 32, 3), dtype=np.uint8),
      "label": rng.integers(0, NUM_CLASSES + 1, size).astype(np.int32),
    }
    for _ in range(count)
  ]


def run_steps(mesh, data, loss_config=LossConfig(center_weight=1e-2)):
  model = LandmarkNet("resnet_tiny", NUM_CLASSES, embedding_dim=16)
  tx = optim.make_optimizer(
    OptimConfig(lr_backbone=0.05, lr_embedding=0.1, lr_classifier=0.1, lr_decay_epochs=()), []
  )
  state = jax.jit(
    lambda rng: create_train_state(model, tx, rng, 32),
    out_shardings=sharding.replicated_sharding(mesh),
  )(jax.random.PRNGKey(0))
  step = make_train_step(model, tx, loss_config, mesh)
  history = []
  for batch in data:
    state, metrics = step(state, sharding.shard_batch(batch, mesh))
    history.append(jax.device_get(metrics))
  return jax.device_get(state), history


@pytest.mark.slow
@pytest.mark.parametrize("num_steps", [1, 3])
def test_eight_devices_equal_one_device(num_steps):
  data = batches(num_steps)
  single, single_metrics = run_steps(sharding.make_data_mesh(jax.devices()[:1]), data)
  parallel, parallel_metrics = run_steps(sharding.make_data_mesh(), data)
  assert jax.device_count() == 8

  def close(a, b):
    return np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)

  jax.tree.map(close, parallel.params, single.params)
  jax.tree.map(close, parallel.batch_stats, single.batch_stats)
  close(parallel.centers, single.centers)
  assert np.any(parallel.centers)  # the centers did move (they start at zero)
  assert int(parallel.step) == num_steps
  for a, b in zip(parallel_metrics, single_metrics):
    jax.tree.map(close, a, b)


@pytest.mark.slow
def test_centers_follow_the_update_rule_not_the_gradient():
  mesh = sharding.make_data_mesh()
  data = batches(1)
  model = LandmarkNet("resnet_tiny", NUM_CLASSES, embedding_dim=16)
  tx = optim.make_optimizer(OptimConfig(lr_decay_epochs=()), [])
  state = create_train_state(model, tx, jax.random.PRNGKey(0), 32)
  state = state.replace(centers=jax.random.normal(jax.random.PRNGKey(3), state.centers.shape))
  # The embeddings the step sees: the training-mode forward of the pre-step parameters.
  (embedding, _), _ = model.apply(
    {"params": state.params, "batch_stats": state.batch_stats},
    data[0]["image"],
    train=True,
    mutable=["batch_stats"],
  )
  expected = losses.update_centers(state.centers, embedding, data[0]["label"], 0.5, NUM_CLASSES)
  step = make_train_step(model, tx, LossConfig(center_alpha=0.5), mesh)
  new_state, metrics = step(sharding.replicate(state, mesh), sharding.shard_batch(data[0], mesh))
  np.testing.assert_allclose(new_state.centers, expected, rtol=1e-4, atol=1e-5)
  assert {"loss", "softmax", "center", "accuracy", "grad_norm", "param_norm"} <= set(metrics)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["softmax", "arcface", "contrastive"])
def test_ablation_losses_train(kind):
  state, history = run_steps(
    sharding.make_data_mesh(), batches(1, seed=1) * 8, LossConfig(kind=kind)
  )
  assert all(np.isfinite(m["loss"]) for m in history)
  assert history[-1]["loss"] < history[0]["loss"]  # the same batch, fitted


def test_stage_labels_map_later_classes_to_this_stages_non_landmark():
  np.testing.assert_array_equal(stage_labels(jnp.array([0, 2, 3, 8]), 3), [0, 2, 3, 3])
