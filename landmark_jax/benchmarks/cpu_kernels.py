"""CPU serving speed: the backbone's forward pass and one query's embedding, JAX against
torchvision, with XLA's own CPU kernels ("before") and with the library's choice ("after",
`runtime.CPU_KERNEL_FLAG`).

XLA reads its flags once per process, so each setting runs in a process of its own; in each,
PyTorch is timed beside JAX, and the ratio is taken inside the process. The settings run in
turns, `rounds` times, and the medians are reported.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from typing import Any, Sequence

import numpy as np

from landmark_jax.benchmarks.timing import median_seconds
from landmark_jax.runtime import CPU_KERNEL_FLAG, KEEP_XLA_DEFAULTS

SETTINGS = {
  "XLA's defaults (YNNPACK convolutions)": {KEEP_XLA_DEFAULTS: "1"},
  "landmark_jax (Eigen convolutions, YNNPACK dots)": {KEEP_XLA_DEFAULTS: "0"},
}


def _median_ms(run, repeats: int) -> float:
  return 1000 * median_seconds(run, warmup=1, repeats=repeats)


def measure(
  backbone: str, image_size: int, batch_sizes: Sequence[int], repeats: int
) -> list[dict[str, Any]]:
  """In this process: the backbone's forward ms per batch, JAX and PyTorch, and one query's
  embedding through `Embedder` (host pixels → host embedding; LandmarkNet with its heads)."""
  import jax
  import jax.numpy as jnp
  import torch

  from landmark_jax import sharding
  from landmark_jax.benchmarks.torch_reference import torch_backbone
  from landmark_jax.embedding import Embedder
  from landmark_jax.models import LandmarkNet, get_backbone

  torch.set_num_threads(os.cpu_count() or 1)
  rng = np.random.default_rng(0)
  flax_backbone = get_backbone(backbone)
  reference = torch_backbone(
    backbone, flax_backbone.stage_sizes, flax_backbone.width_per_group
  ).eval()
  variables = jax.jit(flax_backbone.init)(
    jax.random.key(0), jnp.zeros((1, image_size, image_size, 3))
  )
  forward = jax.jit(lambda v, x: flax_backbone.apply(v, x, train=False))
  rows = []
  for batch in batch_sizes:
    images = rng.standard_normal((batch, image_size, image_size, 3), dtype=np.float32)
    on_device = jnp.asarray(images)
    jax_ms = _median_ms(lambda: forward(variables, on_device), repeats)
    torch_images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())

    def torch_forward():
      with torch.inference_mode():
        return reference(torch_images)

    torch_ms = _median_ms(torch_forward, repeats)
    rows.append(
      {
        "what": f"backbone forward, batch {batch}",
        "jax ms": jax_ms,
        "torch ms": torch_ms,
        "jax speed vs torch": torch_ms / jax_ms,
      }
    )
  model = LandmarkNet(backbone, num_classes=1000)
  photo = rng.integers(0, 256, (1, image_size, image_size, 3), dtype=np.uint8)
  embedder = Embedder(
    model,
    jax.jit(model.init)(jax.random.key(0), photo),
    sharding.make_data_mesh(jax.local_devices()[:1]),
    buckets=(1,),
  )
  query_ms = _median_ms(lambda: embedder.embed_pixels(photo), repeats)
  rows.append(
    {
      "what": "one query's embedding (Embedder, batch 1)",
      "jax ms": query_ms,
      "torch ms": rows[0]["torch ms"] if batch_sizes[0] == 1 else None,
      "jax speed vs torch": rows[0]["torch ms"] / query_ms if batch_sizes[0] == 1 else None,
    }
  )
  return rows


def _run_setting(env_overrides: dict[str, str], args: list[str]) -> list[dict[str, Any]]:
  # This process's XLA_FLAGS may already carry the library's choice: each child starts from
  # the user's own flags and decides for itself.
  flags = os.environ.get("XLA_FLAGS", "").replace(CPU_KERNEL_FLAG, "").strip()
  env = dict(os.environ, XLA_FLAGS=flags, **env_overrides)
  result = subprocess.run(
    [sys.executable, "-m", __name__, *args], env=env, check=True, capture_output=True, text=True
  )
  return json.loads(result.stdout.strip().splitlines()[-1])


def benchmark_cpu_kernels(
  backbone: str = "wide_resnet50_2",
  image_size: int = 224,
  batch_sizes: Sequence[int] = (1, 8),
  repeats: int = 5,
  rounds: int = 2,
) -> list[dict[str, Any]]:
  """Rows of {setting, what, jax ms, torch ms, jax speed vs torch}, medians over `rounds`."""
  args = [backbone, str(image_size), ",".join(map(str, batch_sizes)), str(repeats)]
  samples: dict[str, list[list[dict]]] = {name: [] for name in SETTINGS}
  for _ in range(rounds):
    for name, env in SETTINGS.items():
      samples[name].append(_run_setting(env, args))
  rows = []
  for name, runs in samples.items():
    for i, first in enumerate(runs[0]):
      row = {"setting": name, "what": first["what"]}
      for key in ("jax ms", "torch ms", "jax speed vs torch"):
        values = [run[i][key] for run in runs if run[i][key] is not None]
        row[key] = statistics.median(values) if values else None
      rows.append(row)
  return rows


if __name__ == "__main__":  # one setting's measurement, in a process of its own
  from landmark_jax.runtime import set_cpu_kernel_flag

  set_cpu_kernel_flag()  # as an inference command does; not with LANDMARK_JAX_XLA_DEFAULTS=1
  name, size, batches, repeats = sys.argv[1:5]
  print(json.dumps(measure(name, int(size), [int(b) for b in batches.split(",")], int(repeats))))
