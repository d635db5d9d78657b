import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmark_jax.models import LandmarkNet
from landmark_jax.train import curriculum, optim
from landmark_jax.train.config import OptimConfig
from landmark_jax.train.state import create_train_state


@pytest.fixture(scope="module")
def trained_state():
  """A stage-0 state with 3 classes whose optimizer has momentum (two fake updates)."""
  model = LandmarkNet("resnet_tiny", num_classes=3, embedding_dim=8)
  tx = optim.make_optimizer(OptimConfig(lr_decay_epochs=()), [])
  state = create_train_state(model, tx, jax.random.PRNGKey(0), 32)
  params = state.params
  opt_state = state.opt_state
  for i in range(2):
    grads = jax.tree.map(lambda p, i=i: jnp.full_like(p, 0.1 * (i + 1)), params)
    grads["classifier"]["kernel"] = jax.random.normal(
      jax.random.PRNGKey(i), params["classifier"]["kernel"].shape
    )
    updates, opt_state = tx.update(grads, opt_state, params)
    params = jax.tree.map(lambda p, u: p + u, params, updates)
  centers = jax.random.normal(jax.random.PRNGKey(5), (3, 8))
  return state.replace(params=params, opt_state=opt_state, centers=centers), tx


def momentum_of(opt_state, name):
  trace = opt_state.inner_states["classifier"].inner_state[1].trace
  return np.asarray(trace["classifier"][name])


@pytest.mark.slow
@pytest.mark.parametrize("init", ["mean", "random"])
def test_old_rows_bit_identical_new_rows_as_configured(trained_state, init):
  state, tx = trained_state
  means = np.random.default_rng(0).standard_normal((2, 8)).astype(np.float32)
  grown = curriculum.grow_state(state, tx, 5, init, jax.random.PRNGKey(9), means)
  old_kernel = np.asarray(state.params["classifier"]["kernel"])
  kernel = np.asarray(grown.params["classifier"]["kernel"])
  bias = np.asarray(grown.params["classifier"]["bias"])
  assert kernel.shape == (8, 6) and grown.centers.shape == (5, 8) and int(grown.stage) == 1
  np.testing.assert_array_equal(kernel[:, :3], old_kernel[:, :3])  # old landmark columns
  np.testing.assert_array_equal(kernel[:, 5], old_kernel[:, 3])  # non-landmark, still last
  np.testing.assert_array_equal(bias[[0, 1, 2, 5]], np.asarray(state.params["classifier"]["bias"]))
  np.testing.assert_array_equal(grown.centers[:3], state.centers)
  if init == "mean":
    column_norm = np.linalg.norm(old_kernel[:, :3], axis=0).mean()
    expected = (means / np.linalg.norm(means, axis=1, keepdims=True)).T * column_norm
    np.testing.assert_allclose(kernel[:, 3:5], expected, rtol=1e-5)
    np.testing.assert_allclose(
      bias[3:5], np.asarray(state.params["classifier"]["bias"])[:3].mean(), rtol=1e-6
    )
    np.testing.assert_allclose(grown.centers[3:], means)
  else:
    expected = jax.nn.initializers.lecun_normal()(jax.random.PRNGKey(9), (8, 2), jnp.float32)
    np.testing.assert_array_equal(kernel[:, 3:5], expected)
    assert not np.any(bias[3:5]) and not np.any(grown.centers[3:])
  # Momentum: old columns kept, new ones zero, non-landmark's moved to the end.
  old_momentum = momentum_of(state.opt_state, "kernel")
  new_momentum = momentum_of(grown.opt_state, "kernel")
  assert np.any(old_momentum)
  np.testing.assert_array_equal(new_momentum[:, :3], old_momentum[:, :3])
  np.testing.assert_array_equal(new_momentum[:, 5], old_momentum[:, 3])
  assert not np.any(new_momentum[:, 3:5])
  # Everything outside the classifier is untouched.
  jax.tree.map(np.testing.assert_array_equal, grown.params["backbone"], state.params["backbone"])


def test_grown_state_trains_with_the_bigger_model(trained_state):
  state, tx = trained_state
  grown = curriculum.grow_state(state, tx, 5, "random", jax.random.PRNGKey(1))
  model = LandmarkNet("resnet_tiny", num_classes=5, embedding_dim=8)
  updates, _ = tx.update(jax.tree.map(jnp.ones_like, grown.params), grown.opt_state, grown.params)
  assert updates["classifier"]["kernel"].shape == (8, 6)
  logits = model.apply(
    {"params": grown.params, "batch_stats": grown.batch_stats}, jnp.zeros((1, 32, 32, 3), jnp.uint8)
  )[1]
  assert logits.shape == (1, 6)


def test_split_epochs():
  assert curriculum.split_epochs(30, 4, ()) == [8, 8, 7, 7]
  assert curriculum.split_epochs(30, 2, (10, 20)) == [10, 20]
  with pytest.raises(ValueError, match="2 entries for 3"):
    curriculum.split_epochs(30, 3, (10, 20))


def test_a_classifier_without_bias_grows_too():
  # model.classifier_bias=False (the probe of the bias, docs/decisions.md): nothing to extend.
  model = LandmarkNet("resnet_tiny", num_classes=2, embedding_dim=8, classifier_bias=False)
  tx = optim.make_optimizer(OptimConfig(lr_decay_epochs=()), [])
  state = create_train_state(model, tx, jax.random.PRNGKey(0), 32)
  assert set(state.params["classifier"]) == {"kernel"}
  means = np.ones((1, 8), np.float32)
  grown = curriculum.grow_state(state, tx, 3, "mean", jax.random.PRNGKey(1), means)
  assert set(grown.params["classifier"]) == {"kernel"}
  assert grown.params["classifier"]["kernel"].shape == (8, 4)
  wider = LandmarkNet("resnet_tiny", num_classes=3, embedding_dim=8, classifier_bias=False)
  _, logits = wider.apply(
    {"params": grown.params, "batch_stats": grown.batch_stats}, np.zeros((1, 32, 32, 3), np.uint8)
  )
  assert logits.shape == (1, 4)


def test_too_few_epochs_or_images_name_the_setting(demo_cache):
  from landmark_jax.config import load_config
  from landmark_jax.data import source_for
  from landmark_jax.errors import ConfigError, DataError

  with pytest.raises(ConfigError, match="num_epochs must be at least 1, got 0"):
    curriculum.split_epochs(0, 1, ())
  with pytest.raises(ConfigError, match="3 epochs cannot cover 4 curriculum stages"):
    curriculum.split_epochs(3, 4, ())
  one_stage = load_config("tiny_cpu", ["pipeline.batch_size=1000"])
  source = source_for(one_stage.data, "train")
  with pytest.raises(DataError, match="the training data has 366 images, fewer than one batch"):
    curriculum.plan_stages(one_stage, source)
  staged = load_config("tiny_cpu", ["pipeline.batch_size=1000", "curriculum.enabled=True"])
  with pytest.raises(DataError, match="a curriculum stage has 303 images"):
    curriculum.plan_stages(staged, source)


class _RegionSource:
  """What `plan_stages` reads: a label map from regions for 2 of 4 landmarks, 16 images a
  stage."""

  def __init__(self):
    from landmark_jax.data.labels import LabelMap

    self.label_map = LabelMap.from_ids(
      [1, 2, 3, 4], {1: "europe_russia", 2: "north_america_oceania"}
    )

  def stage_subset(self, stage):
    return range(16 * (stage + 1))

  def __len__(self):
    return 48


def test_landmarks_without_a_region_are_refused_only_when_the_curriculum_uses_regions():
  from landmark_jax.config import load_config
  from landmark_jax.errors import ConfigError, DataError

  def plan(*overrides):
    config = load_config("default", ["pipeline.batch_size=8", "num_epochs=3", *overrides])
    return curriculum.plan_stages(config, _RegionSource())

  with pytest.raises(
    DataError,
    match=r"2 of 4 landmarks have no region .*\(3, 4\).*"
    "curriculum.unassigned=last",
  ):
    plan()
  # The way out keeps today's stages: the two without a region join the last one.
  assert plan("curriculum.unassigned=last").num_classes == (1, 2, 4)
  # Without the curriculum (tiny_cpu, `fit`) the regions are unused: one stage, no refusal.
  assert plan("curriculum.enabled=False").num_classes == (4,)
  with pytest.raises(ConfigError, match="curriculum.unassigned must be one of refuse, last"):
    load_config("default", ["curriculum.unassigned=first"])


def test_stages_are_planned_for_a_given_number_of_processes():
  from landmark_jax.config import load_config

  config = load_config(
    "default", ["pipeline.batch_size=8", "num_epochs=4", "curriculum.unassigned=last"]
  )
  # Stages of 16, 32 and 48 images, of 2, 1 and 1 epochs (the remainder goes to the first).
  # 2 processes: each holds half a stage, in batches of 4 → 2·8/4, 16/4, 24/4 steps.
  assert curriculum.plan_stages(config, _RegionSource(), processes=2).steps == (4, 4, 6)
  # 3 processes: batches of 8 // 3 = 2 over shards of 5, 10 and 16 → 2·5/2, 10/2, 16/2.
  assert curriculum.plan_stages(config, _RegionSource(), processes=3).steps == (5, 5, 8)
