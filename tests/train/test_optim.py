import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from landmark_jax.train import optim
from landmark_jax.train.config import OptimConfig

PARAMS = {
  "backbone": {"conv": {"kernel": jnp.full((2, 2), 1.0)}, "bn": {"scale": jnp.full((2,), 2.0)}},
  "embedding_fc": {"kernel": jnp.full((2, 3), 1.0), "bias": jnp.full((3,), 1.0)},
  "embedding_bn": {"scale": jnp.full((3,), 1.0)},
  "classifier": {"kernel": jnp.full((3, 4), -1.0), "bias": jnp.full((4,), 0.5)},
}
RATES = {"backbone": 0.01, "embedding_fc": 0.1, "embedding_bn": 0.1, "classifier": 1.0}


def pytorch_sgd(params, grads_per_step, rates, momentum, wd, decay=lambda path: True):
  """torch.optim.SGD's update, written out: d = g + wd·p; buf = μ·buf + d; p -= lr·buf."""
  params = {k: np.asarray(v, np.float64) for k, v in traverse_util.flatten_dict(params).items()}
  buffers = {}
  for grads in grads_per_step:
    for key, g in traverse_util.flatten_dict(grads).items():
      d = np.asarray(g, np.float64) + (wd * params[key] if decay(key) else 0.0)
      buffers[key] = d if key not in buffers else momentum * buffers[key] + d
      params[key] = params[key] - rates[key[0]] * buffers[key]
  return traverse_util.unflatten_dict(params)


def grads(seed):
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda v: rng.standard_normal(v.shape), PARAMS)


def run(tx, steps):
  params, state = PARAMS, tx.init(PARAMS)
  for g in steps:
    updates, state = tx.update(g, state, params)
    params = optax.apply_updates(params, updates)
  return params


def assert_tree_close(ours, reference):
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5), ours, reference)


@pytest.mark.slow
def test_three_groups_momentum_and_coupled_weight_decay_match_pytorch_sgd():
  config = OptimConfig(
    lr_backbone=0.01,
    lr_embedding=0.1,
    lr_classifier=1.0,
    momentum=0.9,
    weight_decay=5e-3,
    lr_decay_epochs=(),
  )
  steps = [grads(i) for i in range(3)]
  assert_tree_close(
    run(optim.make_optimizer(config, []), steps), pytorch_sgd(PARAMS, steps, RATES, 0.9, 5e-3)
  )


def test_norm_and_bias_excluded_from_weight_decay_when_configured():
  config = OptimConfig(
    lr_backbone=0.01,
    lr_embedding=0.1,
    lr_classifier=1.0,
    weight_decay=5e-2,
    decay_norm_and_bias=False,
    lr_decay_epochs=(),
  )
  steps = [grads(i) for i in range(2)]
  reference = pytorch_sgd(PARAMS, steps, RATES, 0.9, 5e-2, decay=lambda key: key[-1] == "kernel")
  assert_tree_close(run(optim.make_optimizer(config, []), steps), reference)


def test_learning_rates_divide_by_ten_at_the_decay_steps():
  config = OptimConfig(lr_decay_epochs=(12, 24))
  steps_per_epoch = [10] * 30
  decay_steps = optim.decay_steps_for(config, steps_per_epoch)
  assert decay_steps == [120, 240]
  schedule = optim.learning_rate_schedules(config, decay_steps)["backbone"]
  assert [float(schedule(s)) for s in (0, 119, 120, 239, 240, 299)] == pytest_approx(
    [0.01, 0.01, 0.001, 0.001, 0.0001, 0.0001]
  )
  # And the optimizer applies it: at step 120 the same gradient moves params 10× less.
  steps = [grads(0)] * 2
  config1 = OptimConfig(lr_decay_epochs=(1,), momentum=0.0, weight_decay=0.0)
  tx = optim.make_optimizer(config1, optim.decay_steps_for(config1, [1, 1]))
  state = tx.init(PARAMS)
  first, state = tx.update(steps[0], state, PARAMS)
  second, _ = tx.update(steps[1], state, PARAMS)
  ratio = np.asarray(first["classifier"]["kernel"]) / np.asarray(second["classifier"]["kernel"])
  np.testing.assert_allclose(ratio, 10.0, rtol=1e-5)


def pytest_approx(values):
  import pytest

  return pytest.approx(values, rel=1e-6)


def test_epochs_steps_with_uneven_stages():
  assert optim.epoch_start_steps([3, 3, 5, 5]) == [0, 3, 6, 11]
  assert optim.decay_steps_for(OptimConfig(lr_decay_epochs=(2, 40)), [3, 3, 5, 5]) == [6]


def test_per_stage_schedule_restarts_and_decays_inside_each_stage():
  # Two curriculum stages of 15 epochs (4 then 6 steps per epoch), the paper's decays at
  # epochs 12 and 24 of 30: 40 % and 80 % into each stage, i.e. its epochs 6 and 12.
  config = OptimConfig(lr_backbone=0.1, lr_decay_epochs=(12, 24))
  factors = optim.stage_rate_factors(config, [4] * 15 + [6] * 15, [15, 15], 30)
  schedule = optim.learning_rate_schedules(config, factors)["backbone"]
  by_hand = np.concatenate(
    [
      np.full(24, 0.1),
      np.full(24, 0.01),
      np.full(12, 0.001),
      np.full(36, 0.1),
      np.full(36, 0.01),
      np.full(18, 0.001),
    ]
  )
  np.testing.assert_allclose([float(schedule(s)) for s in range(150)], by_hand, rtol=1e-6)
  # The global reading decays at epochs 12 and 24 of the run: the second stage (from step
  # 60) never trains at the base rate.
  decay_steps = optim.decay_steps_for(config, [4] * 15 + [6] * 15)
  assert decay_steps == [48, 114]
  global_schedule = optim.learning_rate_schedules(config, decay_steps)["backbone"]
  assert np.isclose(max(float(global_schedule(s)) for s in range(60, 150)), 0.01)
