"""The train step: pure, jitted over the ('data',) mesh, state replicated and donated."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from landmark_jax import losses, sharding
from landmark_jax.models import LandmarkNet, model_variables
from landmark_jax.train.config import LossConfig
from landmark_jax.train.state import TrainState


def stage_labels(labels, num_classes: int):
  """Global labels → this stage's: the non-landmark class is always the last output, so
  every label ≥ the stage's class count (only the global non-landmark label can be) is n_k."""
  return jnp.where(labels >= num_classes, num_classes, labels).astype(jnp.int32)


def compute_losses(
  embedding, logits, labels, centers, params, loss_config: LossConfig, non_landmark_label: int
) -> dict[str, jax.Array]:
  """The loss parts of `loss_config.kind`, and their weighted sum under "loss"."""
  kind = loss_config.kind
  parts = {}
  if kind == "arcface":
    logits = losses.arcface_logits(
      embedding,
      params["classifier"]["kernel"],
      labels,
      loss_config.arcface_scale,
      loss_config.arcface_margin,
    )
  parts["softmax"] = losses.softmax_cross_entropy(logits, labels)
  total = parts["softmax"]
  if kind == "softmax_center":
    parts["center"] = losses.center_loss(
      embedding, labels, centers, non_landmark_label, loss_config.center_reduction
    )
    total = total + loss_config.center_weight * parts["center"]
  elif kind == "contrastive":
    parts["contrastive"] = losses.contrastive_loss(
      embedding, labels, non_landmark_label, loss_config.contrastive_margin
    )
    total = total + loss_config.contrastive_weight * parts["contrastive"]
  elif kind not in ("softmax", "arcface"):
    raise ValueError(f"unknown loss kind {kind!r}")
  parts["loss"] = total
  return parts


def train_step(
  state: TrainState,
  batch: dict[str, jax.Array],
  *,
  model: LandmarkNet,
  tx: optax.GradientTransformation,
  loss_config: LossConfig,
) -> tuple[TrainState, dict[str, jax.Array]]:
  """One SGD step on a global batch; returns the new state and this step's metrics."""
  n = model.num_classes
  labels = stage_labels(batch["label"], n)

  def loss_fn(params):
    (embedding, logits), updates = model.apply(
      model_variables(params, state.batch_stats),
      batch["image"],
      train=True,
      mutable=["batch_stats"],
    )
    parts = compute_losses(embedding, logits, labels, state.centers, params, loss_config, n)
    return parts["loss"], (parts, embedding, logits, updates["batch_stats"])

  grads, (parts, embedding, logits, batch_stats) = jax.grad(loss_fn, has_aux=True)(state.params)
  updates, opt_state = tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  # The centers follow Wen et al.'s rule over the global batch; the embeddings here are the
  # whole (sharded) batch, so XLA all-reduces the per-class sums and every device computes
  # the same new centers.
  centers = state.centers
  if loss_config.kind == "softmax_center":
    centers = losses.update_centers(centers, embedding, labels, loss_config.center_alpha, n)
  metrics = {
    **parts,
    "accuracy": jnp.mean(jnp.argmax(logits, axis=-1) == labels),
    "grad_norm": optax.tree.norm(grads),
    "param_norm": optax.tree.norm(params),
  }
  new_state = state.replace(
    step=state.step + 1,
    params=params,
    batch_stats=batch_stats,
    opt_state=opt_state,
    centers=centers,
  )
  return new_state, metrics


def make_train_step(
  model: LandmarkNet,
  tx: optax.GradientTransformation,
  loss_config: LossConfig,
  mesh: jax.sharding.Mesh,
):
  """`train_step` jitted for the mesh: batch sharded over 'data', state replicated; the
  state's buffers are donated, so the step updates them in place."""
  replicated = sharding.replicated_sharding(mesh)
  return jax.jit(
    functools.partial(train_step, model=model, tx=tx, loss_config=loss_config),
    in_shardings=(replicated, sharding.batch_sharding(mesh)),
    out_shardings=(replicated, replicated),
    donate_argnums=0,
  )
