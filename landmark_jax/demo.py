"""The demo behind the README's first command.

Until the whole pipeline lands (training, index, recognition), the demo runs the quickest
real thing the library does end to end: a tiny LandmarkNet's forward pass on a real
photograph that ships inside scikit-image, embedding it for retrieval.
"""

from __future__ import annotations

import pathlib
import time

import jax
import numpy as np
from PIL import Image

from landmark_jax.models import LandmarkNet


def bundled_photo_path(name: str = "astronaut.png") -> pathlib.Path:
  import skimage.data
  return pathlib.Path(skimage.data.__file__).parent / name


def run_demo(image_size: int = 128) -> dict:
  path = bundled_photo_path()
  with Image.open(path) as image:
    pixels = np.asarray(image.convert("RGB").resize((image_size, image_size), Image.BILINEAR))
  model = LandmarkNet("resnet_tiny", num_classes=10, embedding_dim=64)
  variables = jax.jit(model.init)(jax.random.key(0), pixels[None])
  embed = jax.jit(lambda v, x: model.apply(v, x, method=LandmarkNet.embed))
  embed(variables, pixels[None]).block_until_ready()  # compile once, then time the call
  start = time.perf_counter()
  embedding = np.asarray(embed(variables, pixels[None]))[0]
  seconds = time.perf_counter() - start
  summary = {"photo": str(path), "input": f"{image_size}×{image_size} RGB",
             "embedding_dim": embedding.shape[0], "embedding_norm": float(np.linalg.norm(embedding)),
             "milliseconds": 1000 * seconds, "devices": jax.device_count()}
  for key, value in summary.items():
    print(f"{key:>15}: {value}")
  return summary
