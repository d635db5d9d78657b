"""Batched, sharded inference of a LandmarkNet: the one forward pass every consumer shares,
and what it gives for a source's photos (`EmbeddedPhotos`).

Curriculum learning (class-mean initialisation), the offline stages (embed, clean) and
recognition all embed through `Embedder`, so it sits below all of them.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Iterator, Sequence

import jax
import numpy as np

from landmark_jax import sharding
from landmark_jax.data.labels import LabelMap
from landmark_jax.data.pipeline import DeviceIterator
from landmark_jax.geo import Location
from landmark_jax.models import LandmarkNet, l2_normalize, model_variables


@dataclasses.dataclass
class EmbeddedPhotos:
  """A source's readable photos, embedded: what cleaning, calibration and evaluation read,
  whether embedded in memory (`recognize.PhotoEmbedder.embed_source`) or read back from an
  ``embed`` folder (`stages.embed.load_embeddings`)."""

  ids: np.ndarray  # (n,) record ids
  labels: np.ndarray  # (n,) dense labels
  embeddings: np.ndarray  # (n, D) unit embeddings
  label_map: LabelMap  # the source's: what the labels mean
  skipped: list[str]  # ids of unreadable photos
  # Each photo's EXIF GPS location (None: none), when the photos were decoded for it; None
  # when they were not read (an ``embed`` folder keeps no locations)
  locations: list[Location | None] | None = None
  checkpoint: str | None = None  # the model that produced them (`TrainedModel.checkpoint_id`)

  def landmark_ids(self) -> list:
    return self.label_map.to_landmark_ids(self.labels)


def _forward(model: LandmarkNet, normalize: bool, variables, images):
  embedding, logits = model.apply(variables, images, train=False)
  return (l2_normalize(embedding) if normalize else embedding), logits


def eval_batch_size(batch_size: int, mesh: jax.sharding.Mesh) -> int:
  """An inference batch near `batch_size` that splits over the mesh."""
  return sharding.divisible_batch_size(batch_size, mesh)


def power_of_two_buckets(max_batch: int) -> list[int]:
  """1, 2, 4, … below `max_batch`, then `max_batch`: batch sizes that waste at most half a
  device call on padding, for log₂ compilations."""
  sizes, size = [], 1
  while size < max_batch:
    sizes.append(size)
    size *= 2
  return sizes + [max_batch]


class Embedder:
  """A model's inference forward pass on a mesh, with replicated weights.

  ``embedder(images)`` takes a batch whose size divides over the mesh and returns
  ``(embeddings, logits)`` on the host; `iterate` runs it over an eval pipeline;
  `embed_pixels` takes any number of crops and pads them to one of a few fixed batch sizes
  (`buckets`), so the program is compiled once per bucket and never again.
  """

  def __init__(
    self,
    model: LandmarkNet,
    variables: Any,
    mesh: jax.sharding.Mesh,
    normalize: bool = True,
    buckets: Sequence[int] = (8,),
  ):
    self.model = model
    self.mesh = mesh
    replicated = sharding.replicated_sharding(mesh)
    self._variables = sharding.replicate(
      model_variables(variables["params"], variables["batch_stats"]), mesh
    )
    self._forward = jax.jit(
      functools.partial(_forward, model, normalize),
      in_shardings=(replicated, sharding.batch_sharding(mesh)),
      out_shardings=(replicated, replicated),
    )
    self.buckets = sorted({sharding.divisible_batch_size(b, mesh, round_up=True) for b in buckets})

  @property
  def max_batch(self) -> int:
    return self.buckets[-1]

  def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(images, jax.Array):
      images = sharding.shard_batch(np.asarray(images), self.mesh)
    return jax.device_get(self._forward(self._variables, images))

  def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 crops → (N, D) embeddings, in padded batches of bucket sizes."""
    out = []
    for start in range(0, len(pixels), self.max_batch):
      chunk = pixels[start : start + self.max_batch]
      bucket = next(b for b in self.buckets if b >= len(chunk))
      padded = np.zeros((bucket, *chunk.shape[1:]), np.uint8)
      padded[: len(chunk)] = chunk
      out.append(self(padded)[0][: len(chunk)])
    return np.concatenate(out) if out else np.zeros((0, self.model.embedding_dim), np.float32)

  def warm_up(self, image_size: int) -> None:
    """Compiles every bucket now, so that no later call pays for compilation. Compiled ahead
    of time, not run: the calls later reuse these executables, and a start-up does not
    spend seconds of forward passes on a large model (1 + 2 + … + max_batch photos)."""
    for bucket in self.buckets:
      images = jax.ShapeDtypeStruct(
        (bucket, image_size, image_size, 3), np.uint8, sharding=sharding.batch_sharding(self.mesh)
      )
      self._forward.lower(self._variables, images).compile()

  def iterate(self, dataset) -> Iterator[dict[str, np.ndarray]]:
    """Per eval batch: ``{"id", "label", "embedding", "logits", "mask"}`` on the host, the
    padding rows removed (unreadable images remain, with ``mask=False``)."""
    for batch in DeviceIterator(dataset, self.mesh, device_keys=("image",)):
      embedding, logits = self(batch["image"])
      real = np.asarray([bool(i) for i in batch["id"]])  # padding rows have an empty id
      yield {
        "id": np.asarray(batch["id"])[real],
        "label": np.asarray(batch["label"])[real],
        "embedding": embedding[real],
        "logits": logits[real],
        "mask": np.asarray(batch["mask"])[real],
      }


def class_embedding_sums(embedder: Embedder, dataset, labels) -> tuple[np.ndarray, np.ndarray]:
  """Per class in `labels` (rows in `labels` order): the float64 sum of its readable
  images' embeddings over `dataset`, and their count. Sums, not means, so the parts of a
  dataset (one per process) add up to the whole."""
  labels = list(labels)
  position = {label: i for i, label in enumerate(labels)}
  sums = np.zeros((len(labels), embedder.model.embedding_dim))
  counts = np.zeros(len(labels))
  for batch in embedder.iterate(dataset):
    for label, embedding, ok in zip(batch["label"], batch["embedding"], batch["mask"]):
      if ok and int(label) in position:
        sums[position[int(label)]] += embedding
        counts[position[int(label)]] += 1
  return sums, counts


def class_means(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
  """Mean embedding per class from `class_embedding_sums`; a class with no readable image
  gets a zero row."""
  if not counts.any():
    raise ValueError("no images to average")
  return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)


def class_mean_embeddings(embedder: Embedder, dataset, labels) -> np.ndarray:
  """Mean embedding of each class in `labels` over `dataset` (rows in `labels` order); a
  class with no readable image gets a zero row."""
  return class_means(*class_embedding_sums(embedder, dataset, labels))
