"""Batched, sharded inference of a LandmarkNet over an eval pipeline.

Shared by curriculum learning (class-mean initialisation) and by the index stage (embed,
clean, recognise), so it sits below both.
"""

from __future__ import annotations

import functools
from typing import Any, Iterator

import jax
import numpy as np

from landmark_jax import sharding
from landmark_jax.data.pipeline import DeviceIterator
from landmark_jax.models import LandmarkNet, l2_normalize


def _forward(model: LandmarkNet, normalize: bool, variables, images):
  embedding, logits = model.apply(variables, images, train=False)
  return (l2_normalize(embedding) if normalize else embedding), logits


class Embedder:
  """A model's inference forward pass, compiled once for a mesh, with replicated weights.

  ``embedder(images)`` takes a batch whose size divides over the mesh and returns
  ``(embeddings, logits)`` on the host; `iterate` runs it over an eval pipeline.
  """

  def __init__(self, model: LandmarkNet, variables: Any, mesh: jax.sharding.Mesh,
               normalize: bool = True):
    self.model = model
    self.mesh = mesh
    replicated = sharding.replicated_sharding(mesh)
    self._variables = sharding.replicate(
        {"params": variables["params"], "batch_stats": variables["batch_stats"]}, mesh)
    self._forward = jax.jit(functools.partial(_forward, model, normalize),
                            in_shardings=(replicated, sharding.batch_sharding(mesh)),
                            out_shardings=(replicated, replicated))

  def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(images, jax.Array):
      images = sharding.shard_batch(np.asarray(images), self.mesh)
    return jax.device_get(self._forward(self._variables, images))

  def iterate(self, dataset) -> Iterator[dict[str, np.ndarray]]:
    """Per eval batch: ``{"id", "label", "embedding", "logits", "mask"}`` on the host, the
    padding rows removed (unreadable images remain, with ``mask=False``)."""
    for batch in DeviceIterator(dataset, self.mesh, device_keys=("image",)):
      embedding, logits = self(batch["image"])
      real = np.asarray([bool(i) for i in batch["id"]])  # padding rows have an empty id
      yield {"id": np.asarray(batch["id"])[real], "label": np.asarray(batch["label"])[real],
             "embedding": embedding[real], "logits": logits[real],
             "mask": np.asarray(batch["mask"])[real]}


def class_mean_embeddings(embedder: Embedder, dataset, labels) -> np.ndarray:
  """Mean embedding of each class in `labels` over `dataset` (rows in `labels` order); a
  class with no readable image gets a zero row."""
  labels = list(labels)
  position = {label: i for i, label in enumerate(labels)}
  sums = None
  counts = np.zeros(len(labels))
  for batch in embedder.iterate(dataset):
    if sums is None:
      sums = np.zeros((len(labels), batch["embedding"].shape[1]))
    for label, embedding, ok in zip(batch["label"], batch["embedding"], batch["mask"]):
      if ok and int(label) in position:
        sums[position[int(label)]] += embedding
        counts[position[int(label)]] += 1
  if sums is None:
    raise ValueError("no images to average")
  return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
