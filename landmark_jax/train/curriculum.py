"""Curriculum learning: planning the stages, and growing the classifier and the centers when
a new geographic part joins.

Stage k trains on parts 1..k; `plan_stages` says how many classes, images, epochs and
steps each stage has. Going from n_old to n_new landmark classes, the classifier's
kernel (D, n_old + 1) becomes (D, n_new + 1): the old landmark columns stay bit-identical,
the new ones are appended, and the non-landmark column stays last. Momentum buffers grow
the same way (new columns start at zero); the centers gain rows for the new classes.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from landmark_jax import distributed, sharding
from landmark_jax.config import TrainConfig
from landmark_jax.data import ImageSource, eval_dataset
from landmark_jax.data.labels import check_unassigned
from landmark_jax.embedding import Embedder, class_embedding_sums, class_means, eval_batch_size
from landmark_jax.errors import ConfigError, DataError
from landmark_jax.models import LandmarkNet, model_variables
from landmark_jax.train.state import TrainState


@dataclasses.dataclass(frozen=True)
class StagePlan:
  """How many classes, images, epochs and steps each curriculum stage has."""

  num_classes: tuple[int, ...]
  sources: tuple[ImageSource, ...]
  epochs: tuple[int, ...]
  steps: tuple[int, ...]
  steps_per_epoch: tuple[int, ...]  # every epoch of the run, in order (for the LR schedule)

  def first_step(self, stage: int) -> int:
    return sum(self.steps[:stage])

  @property
  def total_steps(self) -> int:
    return sum(self.steps)


def plan_stages(
  config: TrainConfig, source: ImageSource, *, processes: int | None = None
) -> StagePlan:
  """One stage per geographic part present in `source` (one stage without regions or with
  the curriculum off); every process runs the same number of steps. `processes`: plan for
  that many processes instead of this run's (`landmark-jax recipe`'s estimate, which must
  not start JAX's backends to ask).

  Raises:
    DataError: with the curriculum in use, landmarks without a region and
      ``curriculum.unassigned="refuse"`` (`check_unassigned`); a stage smaller than a batch.
  """
  label_map = source.label_map
  use_curriculum = config.curriculum.enabled and label_map.num_stages > 1
  if use_curriculum:
    check_unassigned(label_map, config.curriculum.unassigned)
  num_classes = label_map.stage_sizes if use_curriculum else (label_map.num_classes,)
  sources = (
    tuple(source.stage_subset(k) for k in range(len(num_classes))) if use_curriculum else (source,)
  )
  epochs = split_epochs(
    config.num_epochs,
    len(num_classes),
    config.curriculum.epochs_per_stage if use_curriculum else (),
  )
  processes = processes or jax.process_count()
  batch = config.pipeline.batch_size // processes
  steps, per_epoch = [], []
  for stage_source, stage_epochs in zip(sources, epochs):
    # Every process runs the same number of steps: the smallest shard decides.
    shard = len(stage_source) // processes
    if shard < batch:
      what = "a curriculum stage has" if len(sources) > 1 else "the training data has"
      raise DataError(
        f"{what} {len(stage_source)} images, fewer than one batch of "
        f"{config.pipeline.batch_size}: lower pipeline.batch_size"
      )
    steps.append(stage_epochs * shard // batch)
    per_epoch += [(e + 1) * shard // batch - e * shard // batch for e in range(stage_epochs)]
  return StagePlan(tuple(num_classes), sources, tuple(epochs), tuple(steps), tuple(per_epoch))


def split_epochs(num_epochs: int, num_stages: int, epochs_per_stage: tuple[int, ...]) -> list[int]:
  """Epochs of each stage: the configured ones, or `num_epochs` split as evenly as possible
  (earlier stages get the remainder: their classes are trained longest in the paper's
  scheme anyway)."""
  if epochs_per_stage:
    if len(epochs_per_stage) != num_stages:
      raise ConfigError(
        f"curriculum.epochs_per_stage has {len(epochs_per_stage)} entries for "
        f"{num_stages} curriculum stages"
      )
    return list(epochs_per_stage)
  base, extra = divmod(num_epochs, num_stages)
  if num_epochs < 1:
    raise ConfigError(f"num_epochs must be at least 1, got {num_epochs}")
  if base == 0:
    raise ConfigError(f"{num_epochs} epochs cannot cover {num_stages} curriculum stages")
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
      raise ValueError(
        f"unexpected shape change at {jax.tree_util.keystr(path)}: {old.shape} → {new.shape}"
      )
    zeros = jnp.zeros((*old.shape[:-1], new.shape[-1] - old.shape[-1]), old.dtype)
    return grow_columns(old, old_n, zeros)

  return jax.tree_util.tree_map_with_path(grow, old_tree, new_template)


def grow_state(
  state: TrainState,
  tx: optax.GradientTransformation,
  new_num_classes: int,
  init: str,
  rng: jax.Array,
  class_means: np.ndarray | None = None,
) -> TrainState:
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
  bias = state.params["classifier"].get("bias")
  dim = kernel.shape[0]
  if init == "mean":
    if class_means is None or class_means.shape != (added, dim):
      raise ValueError(f"init='mean' needs class_means of shape {(added, dim)}")
    means = jnp.asarray(class_means, jnp.float32)
    column_norm = jnp.mean(jnp.linalg.norm(kernel[:, :old_n], axis=0))
    unit = means / jnp.maximum(jnp.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    new_kernel = (unit * column_norm).T
    new_bias = None if bias is None else jnp.full((added,), jnp.mean(bias[:old_n]))
    new_centers = means
  elif init == "random":
    new_kernel = jax.nn.initializers.lecun_normal()(rng, (dim, added), jnp.float32)
    new_bias = jnp.zeros((added,), jnp.float32)
    new_centers = jnp.zeros((added, dim), jnp.float32)
  else:
    raise ValueError(f"new_class_init must be 'mean' or 'random', got {init!r}")

  params = dict(state.params)
  params["classifier"] = {"kernel": grow_columns(kernel, old_n, new_kernel)}
  if bias is not None:
    params["classifier"]["bias"] = grow_columns(bias, old_n, new_bias)
  opt_state = _grow_tree(state.opt_state, tx.init(params), old_n)
  return state.replace(
    params=params,
    opt_state=opt_state,
    centers=jnp.concatenate([state.centers, new_centers], axis=0),
    stage=state.stage + 1,
  )


def grow_for_next_stage(
  config: TrainConfig,
  plan: StagePlan,
  stage: int,
  state: TrainState,
  model: LandmarkNet,
  tx: optax.GradientTransformation,
  mesh,
  source: ImageSource,
) -> TrainState:
  """The replicated state for stage `stage + 1`: with ``new_class_init="mean"`` the new
  classes' mean embeddings under the current model initialise their columns and centers."""
  old_n, new_n = plan.num_classes[stage], plan.num_classes[stage + 1]
  state = jax.device_get(state)  # replicated: every process holds all of it
  means = None
  if config.curriculum.new_class_init == "mean":
    images = source.subset(np.flatnonzero((source.labels >= old_n) & (source.labels < new_n)))
    # Each process embeds its share on its own devices; the sums meet in float64, so every
    # process computes the same means, and as one process would.
    local = distributed.local_mesh()
    dataset = eval_dataset(
      images.subset(distributed.this_process_part(len(images))),
      dataclasses.replace(
        config.pipeline, batch_size=eval_batch_size(config.pipeline.batch_size, local)
      ),
    )
    embedder = Embedder(
      model, model_variables(state.params, state.batch_stats), local, normalize=False
    )
    sums, counts = class_embedding_sums(embedder, dataset, range(old_n, new_n))
    means = class_means(
      distributed.sum_over_processes(sums), distributed.sum_over_processes(counts)
    )
  rng = jax.random.fold_in(state.rng, 1_000_003 + stage)
  grown = grow_state(state, tx, new_n, config.curriculum.new_class_init, rng, means)
  return sharding.replicate(grown, mesh)
