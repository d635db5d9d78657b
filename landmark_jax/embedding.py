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


def make_forward(model: LandmarkNet, mesh: jax.sharding.Mesh, normalize: bool = True):
  """Jitted (variables, images) → (embeddings, logits), batch sharded, outputs gathered."""
  replicated = sharding.replicated_sharding(mesh)
  return jax.jit(functools.partial(_forward, model, normalize),
                 in_shardings=(replicated, sharding.batch_sharding(mesh)),
                 out_shardings=(replicated, replicated))


def iterate_embeddings(model: LandmarkNet, variables: Any, dataset, mesh: jax.sharding.Mesh,
                       *, normalize: bool = True) -> Iterator[dict[str, np.ndarray]]:
  """Per eval batch: ``{"id", "label", "embedding", "logits", "mask"}`` on the host, with the
  padding rows removed (unreadable images remain, with ``mask=False``)."""
  forward = make_forward(model, mesh, normalize)
  variables = sharding.replicate(variables, mesh)
  for batch in DeviceIterator(dataset, mesh, device_keys=("image",)):
    embedding, logits = jax.device_get(forward(variables, batch["image"]))
    real = np.asarray([bool(i) for i in batch["id"]])  # padding rows have an empty id
    yield {"id": np.asarray(batch["id"])[real], "label": np.asarray(batch["label"])[real],
           "embedding": embedding[real], "logits": logits[real],
           "mask": np.asarray(batch["mask"])[real]}


def class_mean_embeddings(model: LandmarkNet, variables: Any, dataset, mesh, labels,
                          *, normalize: bool = False) -> np.ndarray:
  """Mean embedding of each class in `labels` over `dataset` (rows in `labels` order);
  a class with no readable image gets a zero row."""
  labels = list(labels)
  position = {label: i for i, label in enumerate(labels)}
  sums = None
  counts = np.zeros(len(labels))
  for batch in iterate_embeddings(model, variables, dataset, mesh, normalize=normalize):
    if sums is None:
      sums = np.zeros((len(labels), batch["embedding"].shape[1]))
    for label, embedding, ok in zip(batch["label"], batch["embedding"], batch["mask"]):
      if ok and int(label) in position:
        sums[position[int(label)]] += embedding
        counts[position[int(label)]] += 1
  if sums is None:
    raise ValueError("no images to average")
  return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
