"""Curriculum learning: the classifier and the centers grow when a new geographic part joins.

Stage k trains on parts 1..k. Going from n_old to n_new landmark classes, the classifier's
kernel (D, n_old + 1) becomes (D, n_new + 1): the old landmark columns stay bit-identical,
the new ones are appended, and the non-landmark column stays last. Momentum buffers grow
the same way (new columns start at zero); the centers gain rows for the new classes.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import numpy as np
import optax

from landmark_jax.train.state import TrainState


def split_epochs(num_epochs: int, num_stages: int, epochs_per_stage: tuple[int, ...]) -> list[int]:
  """Epochs of each stage: the configured ones, or `num_epochs` split as evenly as possible
  (earlier stages get the remainder: their classes are trained longest in the paper's
  scheme anyway)."""
  if epochs_per_stage:
    if len(epochs_per_stage) != num_stages:
      raise ValueError(f"epochs_per_stage has {len(epochs_per_stage)} entries for "
                       f"{num_stages} curriculum stages")
    return list(epochs_per_stage)
  base, extra = divmod(num_epochs, num_stages)
  if base == 0:
    raise ValueError(f"{num_epochs} epochs cannot cover {num_stages} curriculum stages")
  return [base + (1 if stage < extra else 0) for stage in range(num_stages)]


def grow_columns(array, old_n: int, new_columns):
  """(…, old_n + 1) → (…, old_n + k + 1): new columns inserted before the last
  (non-landmark) column; everything else copied unchanged."""
  return jnp.concatenate([array[..., :old_n], new_columns, array[..., old_n:]], axis=-1)


def _is_classifier(path) -> bool:
  return any(getattr(entry, "key", None) == "classifier" for entry in path)


def _grow_tree(old_tree, new_template, old_n: int):
  """Copies `old_tree` into the shapes of `new_template`: leaves of equal shape are copied,
  classifier leaves whose last axis grew get zero columns (optimizer buffers)."""
  def grow(path, old, new):
    if old.shape == new.shape:
      return old
    if not _is_classifier(path):
      raise ValueError(f"unexpected shape change at {jax.tree_util.keystr(path)}: "
                       f"{old.shape} → {new.shape}")
    zeros = jnp.zeros((*old.shape[:-1], new.shape[-1] - old.shape[-1]), old.dtype)
    return grow_columns(old, old_n, zeros)
  return jax.tree_util.tree_map_with_path(grow, old_tree, new_template)


def grow_state(state: TrainState, tx: optax.GradientTransformation, new_num_classes: int,
               init: str, rng: jax.Array, class_means: np.ndarray | None = None) -> TrainState:
  """The state for the next stage, with `new_num_classes` landmark classes.

  Args:
    init: "mean" — each new classifier column is the class's mean embedding, L2-normalised
      and scaled to the mean norm of the existing landmark columns (weight imprinting), its
      bias the mean existing landmark bias, and its center the mean embedding itself;
      "random" — LeCun-normal columns (the Dense default), zero bias, zero centers.
    class_means: (new - old, D) mean embeddings of the new classes (needed for "mean").
  """
  old_n = state.num_classes
  added = new_num_classes - old_n
  if added <= 0:
    raise ValueError(f"a new stage must add classes: {old_n} → {new_num_classes}")
  kernel = state.params["classifier"]["kernel"]
  bias = state.params["classifier"]["bias"]
  dim = kernel.shape[0]
  if init == "mean":
    if class_means is None or class_means.shape != (added, dim):
      raise ValueError(f"init='mean' needs class_means of shape {(added, dim)}")
    means = jnp.asarray(class_means, jnp.float32)
    column_norm = jnp.mean(jnp.linalg.norm(kernel[:, :old_n], axis=0))
    unit = means / jnp.maximum(jnp.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    new_kernel = (unit * column_norm).T
    new_bias = jnp.full((added,), jnp.mean(bias[:old_n]))
    new_centers = means
  elif init == "random":
    new_kernel = jax.nn.initializers.lecun_normal()(rng, (dim, added), jnp.float32)
    new_bias = jnp.zeros((added,), jnp.float32)
    new_centers = jnp.zeros((added, dim), jnp.float32)
  else:
    raise ValueError(f"new_class_init must be 'mean' or 'random', got {init!r}")

  params = dict(state.params)
  params["classifier"] = {"kernel": grow_columns(kernel, old_n, new_kernel),
                          "bias": grow_columns(bias, old_n, new_bias)}
  opt_state = _grow_tree(state.opt_state, tx.init(params), old_n)
  return state.replace(
      params=params, opt_state=opt_state,
      centers=jnp.concatenate([state.centers, new_centers], axis=0),
      stage=state.stage + 1)
