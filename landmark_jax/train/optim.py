"""SGD with momentum, coupled weight decay and three learning-rate groups.

The paper: SGD, momentum 0.9, weight decay 5e-3; learning rates α1, α2, α3 divided by 10 at
epochs 12 and 24 of 30. Our reading: α1/α2/α3 belong to the backbone, the embedding layer
and the classification layer. Weight decay is PyTorch's (coupled L2): g ← g + wd·p before
momentum, buf ← μ·buf + g, p ← p − lr·buf.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
import optax

from landmark_jax.errors import ConfigError
from landmark_jax.train.config import OptimConfig

# Top-level LandmarkNet parameter collections → learning-rate group.
PARAM_GROUPS = {
  "backbone": "backbone",
  "embedding_fc": "embedding",
  "embedding_bn": "embedding",
  "classifier": "classifier",
}


def param_group_labels(params) -> Any:
  """A tree like `params` whose leaves name each parameter's group."""
  return {
    key: jax.tree.map(lambda _, group=PARAM_GROUPS[key]: group, subtree)
    for key, subtree in params.items()
  }


def decay_mask(params) -> Any:
  """True for kernels (ndim > 1); False for BN scales/biases and dense biases."""
  return jax.tree.map(lambda p: p.ndim > 1, params)


# From each of these steps on, the base rates times this factor (the first step: 1).
RateFactors = Mapping[int, float]


def _stepwise(rate: float, factors: RateFactors) -> Callable[[Any], Any]:
  """rate × the factor of the last boundary ≤ step (× 1 before the first)."""
  starts = sorted(factors)
  boundaries = jnp.asarray(starts, jnp.int32)
  values = jnp.asarray([rate] + [rate * factors[s] for s in starts], jnp.float32)
  return lambda step: values[jnp.sum(jnp.asarray(step) >= boundaries)]


def learning_rate_schedules(
  config: OptimConfig, decay_steps: Sequence[int] | RateFactors
) -> dict[str, Callable[[Any], Any]]:
  """Per group: base rate × factor at each decay step (the steps where epochs 12, 24 start),
  or, given a mapping (`stage_rate_factors`), base rate × the factor in force at the step."""
  rates = (
    ("backbone", config.lr_backbone),
    ("embedding", config.lr_embedding),
    ("classifier", config.lr_classifier),
  )
  if isinstance(decay_steps, Mapping):
    return {group: _stepwise(rate, decay_steps) for group, rate in rates}
  boundaries = {int(step): config.lr_decay_factor for step in decay_steps}
  return {group: optax.piecewise_constant_schedule(rate, boundaries) for group, rate in rates}


def make_optimizer(
  config: OptimConfig, decay_steps: Sequence[int] | RateFactors
) -> optax.GradientTransformation:
  def sgd(schedule):
    return optax.chain(
      optax.add_decayed_weights(
        config.weight_decay, mask=None if config.decay_norm_and_bias else decay_mask
      ),
      optax.trace(decay=config.momentum, nesterov=False),
      optax.scale_by_learning_rate(schedule),
    )

  schedules = learning_rate_schedules(config, decay_steps)
  return optax.multi_transform(
    {group: sgd(s) for group, s in schedules.items()}, param_group_labels
  )


def epoch_start_steps(steps_per_epoch: Sequence[int]) -> list[int]:
  """Global step at which each epoch starts, given every epoch's step count in order."""
  starts, step = [], 0
  for count in steps_per_epoch:
    starts.append(step)
    step += count
  return starts


def decay_steps_for(config: OptimConfig, steps_per_epoch: Sequence[int]) -> list[int]:
  starts = epoch_start_steps(steps_per_epoch)
  return [starts[epoch] for epoch in config.lr_decay_epochs if 0 < epoch < len(starts)]


def stage_rate_factors(
  config: OptimConfig, steps_per_epoch: Sequence[int], stage_epochs: Sequence[int], num_epochs: int
) -> dict[int, float]:
  """The per-stage schedule: every curriculum stage starts again at the base rates and
  decays at the same fractions of its own epochs as `lr_decay_epochs` are of `num_epochs`,
  the run's ``num_epochs`` setting (the paper's 12 and 24 of 30: 40 % and 80 % into each
  stage), rounded to the nearest epoch (halves up). `num_epochs` is the setting, not the
  stages' sum: with ``curriculum.epochs_per_stage=(30, 30, 30, 30)`` and ``num_epochs=30``
  every stage decays at its epochs 12 and 24; the default split of 30 epochs into 8/8/7/7
  decays at epochs 3 and 6 of each stage. A decay that lands on a stage's first epoch or
  past its last is left out of that stage.

  Returns step → the factor in force from that step on (what `learning_rate_schedules`
  takes), with a factor of 1 at the start of every stage after the first.

  Raises:
    ConfigError: `num_epochs` below 1.
  """
  if num_epochs < 1:
    raise ConfigError(f"num_epochs must be at least 1, got {num_epochs}")
  starts = epoch_start_steps(steps_per_epoch)
  factors: dict[int, float] = {}
  first_epoch = 0
  for stage, epochs in enumerate(stage_epochs):
    if stage:
      factors[starts[first_epoch]] = 1.0
    factor = 1.0
    for epoch in sorted(config.lr_decay_epochs):
      # round(epoch × epochs / num_epochs) in integers, halves up (no float ties)
      local = (2 * epoch * epochs + num_epochs) // (2 * num_epochs)
      if 0 < local < epochs:
        factor *= config.lr_decay_factor
        factors[starts[first_epoch + local]] = factor
    first_epoch += epochs
  return factors
