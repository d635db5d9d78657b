"""Backbone throughput: forward and forward+backward images/s, JAX vs torchvision.

Both frameworks run the same architecture on the same machine in the same process, with the
same batch, resolution and loss; the ratio JAX/PyTorch is the figure to read.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from landmark_jax.benchmarks.timing import median_seconds
from landmark_jax.models import get_backbone, model_variables


def _jax_steps(name: str, batch_size: int, image_size: int, dtype):
  backbone = get_backbone(name, dtype=dtype)
  images = jnp.asarray(
    np.random.default_rng(0).standard_normal(
      (batch_size, image_size, image_size, 3), dtype=np.float32
    )
  )
  variables = jax.jit(backbone.init)(jax.random.key(0), images)

  @jax.jit
  def forward(variables, images):
    return backbone.apply(variables, images, train=False)

  def loss(params, batch_stats, images):
    features, updates = backbone.apply(
      model_variables(params, batch_stats), images, train=True, mutable=["batch_stats"]
    )
    return jnp.mean(features**2), updates

  forward_backward = jax.jit(jax.grad(loss, has_aux=True))
  return (
    functools.partial(forward, variables, images),
    functools.partial(forward_backward, variables["params"], variables["batch_stats"], images),
  )


def _torch_steps(name: str, batch_size: int, image_size: int):
  import torch
  import torchvision

  model = getattr(torchvision.models, name)(weights=None)
  model.fc = torch.nn.Identity()
  images = torch.from_numpy(
    np.random.default_rng(0).standard_normal(
      (batch_size, 3, image_size, image_size), dtype=np.float32
    )
  )

  def forward():
    model.eval()
    with torch.inference_mode():
      return model(images)

  def forward_backward():
    model.train()
    model.zero_grad(set_to_none=True)
    loss = (model(images) ** 2).mean()
    loss.backward()

  return forward, forward_backward


def benchmark_model(
  name: str = "wide_resnet50_2",
  batch_size: int = 8,
  image_size: int = 224,
  repeats: int = 5,
  dtype: str = "float32",
  compare_torch: bool = True,
) -> list[dict[str, Any]]:
  """Rows of {framework, pass, seconds/batch, images/s, ratio vs torch}."""
  jax_forward, jax_forward_backward = _jax_steps(name, batch_size, image_size, jnp.dtype(dtype))
  runs = {("jax", "forward"): jax_forward, ("jax", "forward+backward"): jax_forward_backward}
  if compare_torch:
    try:
      torch_forward, torch_forward_backward = _torch_steps(name, batch_size, image_size)
      runs[("torch", "forward")] = torch_forward
      runs[("torch", "forward+backward")] = torch_forward_backward
    except ImportError:
      print(
        "PyTorch/torchvision not installed: measuring JAX alone "
        "(`pip install 'landmark-jax[torch]'` for the comparison)"
      )
  rows = []
  for (framework, kind), run in runs.items():
    seconds = median_seconds(run, warmup=1, repeats=repeats)
    rows.append(
      {
        "model": name,
        "framework": framework,
        "pass": kind,
        "batch": batch_size,
        "dtype": dtype if framework == "jax" else "float32",
        "seconds/batch": seconds,
        "images/s": batch_size / seconds,
      }
    )
  torch_rate = {r["pass"]: r["images/s"] for r in rows if r["framework"] == "torch"}
  for row in rows:
    if row["pass"] in torch_rate:
      row["vs torch"] = row["images/s"] / torch_rate[row["pass"]]
  return rows
