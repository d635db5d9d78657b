"""Train-step throughput and the cost of the center-loss term.

For each backbone, the full train step (forward, backward, SGD update, BN statistics) is
timed with softmax only and with softmax + center loss (including the center update), the
two interleaved in the same run so that drift affects both equally.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from landmark_jax import sharding
from landmark_jax.benchmarks.timing import compiled_flops
from landmark_jax.models import LandmarkNet
from landmark_jax.train import optim
from landmark_jax.train.config import LossConfig, OptimConfig
from landmark_jax.train.state import create_train_state
from landmark_jax.train.step import make_train_step

DEFAULT_CASES = (("resnet_tiny", 64, 32), ("wide_resnet50_2", 224, 8))


class TrainStepRunner:
  """The train step compiled ahead of time for one case, and its (donated, so re-fed)
  state; `flops` is the compiled program's own count (XLA's cost analysis), per step."""

  def __init__(self, backbone, image_size, batch_size, num_classes, kind, dtype, mesh):
    model = LandmarkNet(backbone, num_classes, dtype=jnp.dtype(dtype))
    tx = optim.make_optimizer(OptimConfig(lr_decay_epochs=()), [])
    self.state = jax.jit(
      lambda rng: create_train_state(model, tx, rng, image_size),
      out_shardings=sharding.replicated_sharding(mesh),
    )(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    self.batch = sharding.shard_batch(
      {
        "image": rng.integers(0, 256, (batch_size, image_size, image_size, 3), dtype=np.uint8),
        "label": rng.integers(0, num_classes + 1, batch_size).astype(np.int32),
      },
      mesh,
    )
    # Compiled once, ahead of time: the same executable is timed and its FLOPs counted.
    self.step = (
      make_train_step(model, tx, LossConfig(kind=kind), mesh)
      .lower(self.state, self.batch)
      .compile()
    )
    self.flops = compiled_flops(self.step)

  def run(self, steps: int = 1) -> float:
    """Seconds for `steps` consecutive steps, waited for at the end only (as a training
    loop dispatches them)."""
    start = time.perf_counter()
    for _ in range(steps):
      self.state, metrics = self.step(self.state, self.batch)
    jax.block_until_ready(metrics)
    return time.perf_counter() - start

  __call__ = run


def benchmark_train(
  cases: Sequence[tuple[str, int, int]] = DEFAULT_CASES,
  num_classes: int = 1000,
  repeats: int = 5,
  dtype: str = "float32",
) -> list[dict[str, Any]]:
  mesh = sharding.make_data_mesh()
  rows = []
  for backbone, image_size, batch_size in cases:
    runners = {
      kind: TrainStepRunner(backbone, image_size, batch_size, num_classes, kind, dtype, mesh)
      for kind in ("softmax", "softmax_center")
    }
    for runner in runners.values():
      runner()  # compile
    times = {kind: [] for kind in runners}
    for _ in range(repeats):
      for kind, runner in runners.items():
        times[kind].append(runner())
    base = statistics.median(times["softmax"])
    for kind, samples in times.items():
      seconds = statistics.median(samples)
      rows.append(
        {
          "backbone": backbone,
          "image": image_size,
          "batch": batch_size,
          "classes": num_classes,
          "loss": kind,
          "seconds/step": seconds,
          "images/s": batch_size / seconds,
          "overhead vs softmax %": 100 * (seconds - base) / base,
        }
      )
  return rows
