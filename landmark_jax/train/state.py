"""The train state: one explicit pytree, replicated over the mesh and checkpointed whole."""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import optax

from landmark_jax.models import LandmarkNet


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer steps taken over the whole run
  params: Any
  batch_stats: Any
  opt_state: Any
  centers: jax.Array  # (n_k, D) center-loss centers of the current stage's landmark classes
  rng: jax.Array  # uint32[2]: a raw PRNG key (checkpointable as a plain array)
  stage: jax.Array  # int32 scalar: curriculum stage

  @property
  def num_classes(self) -> int:
    return self.centers.shape[0]


def create_train_state(
  model: LandmarkNet, tx: optax.GradientTransformation, rng: jax.Array, image_size: int
) -> TrainState:
  """Fresh state for `model`; centers start at zero (Wen et al.)."""
  init_rng, state_rng = jax.random.split(rng)
  variables = model.init(init_rng, jnp.zeros((1, image_size, image_size, 3), jnp.uint8))
  params = variables["params"]
  return TrainState(
    step=jnp.zeros((), jnp.int32),
    params=params,
    batch_stats=variables["batch_stats"],
    opt_state=tx.init(params),
    centers=jnp.zeros((model.num_classes, model.embedding_dim), jnp.float32),
    rng=state_rng,
    stage=jnp.zeros((), jnp.int32),
  )


def abstract_train_state(
  model: LandmarkNet, tx: optax.GradientTransformation, image_size: int, sharding=None
) -> TrainState:
  """Shapes, dtypes and shardings of a train state without computing it: orbax's restore
  target on resume."""
  shapes = jax.eval_shape(lambda: create_train_state(model, tx, jax.random.PRNGKey(0), image_size))
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), shapes)
