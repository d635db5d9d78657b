"""grain input pipelines: shuffled, sharded, decoded in worker processes, checkpointable.

Train: source → global shuffle (one permutation per epoch, from the one seed) → epochs →
decode + augment (seeded by the record's place in the global sequence, so the same seed
gives the same batches whatever the worker or process count) → this process's blocks → bad
images dropped and counted here → fixed-size batches. With P processes and a global batch B,
process p takes the p-th block of B/P records of every B: the global batch of each step is
the same records, in the same order, as on one process, so a run on several hosts trains
like one on a single host with as many devices. The iterator's `get_state()` /
`set_state()` resume mid-epoch exactly.

Eval: source → decode (center crop) → batches padded to a fixed size with a ``mask``, so
one compiled function serves every batch, the last one included.
"""

from __future__ import annotations

import collections
import functools
import logging
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import jax
import numpy as np
from absl import flags

from landmark_jax import sharding
from landmark_jax.data import transforms
from landmark_jax.data.config import ImageConfig, PipelineConfig
from landmark_jax.data.sources import ImageSource

# grain is imported where a dataset is built, not here: the configs import this module, and
# `benchmark device` must run on an accelerator machine that has no grain installed.
if TYPE_CHECKING:
  import grain

logger = logging.getLogger(__name__)


class SkippedImages:
  """Counts the images a pipeline dropped as unreadable, per epoch, in the main process.

  Used as grain's filter predicate after the workers, so the count covers every worker.
  """

  def __init__(self):
    self.by_epoch: collections.Counter = collections.Counter()
    self.examples: list[tuple[str, str]] = []  # (id, reason) of the first few
    self._epoch = 0

  @property
  def total(self) -> int:
    return sum(self.by_epoch.values())

  def _advance_to(self, epoch: int) -> None:
    while self._epoch < epoch:
      # Said only for an epoch that skipped some: a few dozen photos make hundreds of epochs
      # (one line each flooded a small run's log), and each stage's end gives the total.
      level = logging.INFO if self.by_epoch[self._epoch] else logging.DEBUG
      logger.log(
        level, "epoch %d: %d unreadable images skipped", self._epoch, self.by_epoch[self._epoch]
      )
      self._epoch += 1

  def __call__(self, record: Mapping[str, Any]) -> bool:
    self._advance_to(int(record.get("epoch", 0)))
    if record["valid"]:
      return True
    self.by_epoch[int(record.get("epoch", 0))] += 1
    if len(self.examples) < 20:
      self.examples.append((str(record["id"]), str(record["error"])))
      logger.warning("skipping image %s: %s", record["id"], record["error"])
    return False


class _ProcessBlocks:
  """Picklable index map of `process_blocks`: this process's i-th record → the global one."""

  def __init__(self, parent: grain.MapDataset, block: int, index: int, count: int):
    self.parent, self.block, self.index, self.count = parent, block, index, count

  def global_index(self, i: int) -> int:
    return (i // self.block * self.count + self.index) * self.block + i % self.block

  def __call__(self, i: int):
    return self.parent[self.global_index(i)]


def _blocks_owned(length: int, block: int, count: int) -> int:
  """How many records of a `length`-long sequence a process takes: its block of every whole
  global batch. The last, partial, global batch is left out, as one process's
  ``drop_remainder`` leaves it, so every process has the same number of batches."""
  return length // (block * count) * block


def process_blocks(
  dataset: grain.MapDataset,
  block: int,
  shard_index: int | None = None,
  shard_count: int | None = None,
) -> grain.MapDataset:
  """This process's records of `dataset`: blocks index, index + count, … of `block`
  consecutive records (see the module docstring)."""
  index = jax.process_index() if shard_index is None else shard_index
  count = jax.process_count() if shard_count is None else shard_count
  if count == 1:
    return dataset
  import grain

  blocks = _ProcessBlocks(dataset, block, index, count)
  return grain.MapDataset.range(_blocks_owned(len(dataset), block, count)).map(blocks)


def _per_process_batch(batch_size: int, process_count: int) -> int:
  if batch_size % process_count:
    raise ValueError(f"global batch {batch_size} does not split over {process_count} processes")
  return batch_size // process_count


def _with_epoch(epoch_length: int, index: int, record: Mapping[str, Any]) -> dict[str, Any]:
  return {**record, "epoch": index // epoch_length}


def _train_decode(config: ImageConfig, record, rng: np.random.Generator):
  return {**transforms.decode_train_record(record, rng, config), "epoch": record["epoch"]}


def _train_fields(record):
  return {"image": record["image"], "label": record["label"], "id": str(record["id"])}


def _maybe_prefetch(dataset: grain.IterDataset, config: PipelineConfig) -> grain.IterDataset:
  if config.num_workers <= 0:
    return dataset
  # grain's worker processes read absl flags, which only absl-launched programs have parsed;
  # a library cannot assume its caller's entry point, so use the flags' defaults.
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()
  import grain

  return dataset.mp_prefetch(
    grain.MultiprocessingOptions(
      num_workers=config.num_workers, per_worker_buffer_size=config.worker_buffer_size
    )
  )


def train_dataset(
  source: ImageSource,
  config: PipelineConfig,
  *,
  num_epochs: int | None = 1,
  shard_index: int | None = None,
  shard_count: int | None = None,
) -> tuple[grain.IterDataset, SkippedImages]:
  """Batches ``{"image": uint8 (B, S, S, 3), "label": int32 (B,), "id": str (B,)}`` for this
  process.

  `num_epochs=None` repeats forever. The last incomplete batch of the run is dropped.
  Returns the dataset and the live count of skipped (unreadable) images.
  """
  if len(source) == 0:
    raise ValueError("the training source is empty")
  import grain

  dataset = grain.MapDataset.source(source).shuffle(seed=config.seed)
  epoch_length = len(dataset)
  dataset = dataset.repeat(num_epochs)
  dataset = dataset.map_with_index(functools.partial(_with_epoch, epoch_length))
  # Seeded per element index: the augmentation of an image in an epoch does not depend on
  # the worker count, the process count or on where the pipeline was resumed.
  dataset = dataset.random_map(functools.partial(_train_decode, config.image), seed=config.seed + 1)
  count = jax.process_count() if shard_count is None else shard_count
  per_process = _per_process_batch(config.batch_size, count)
  dataset = process_blocks(dataset, per_process, shard_index, count)
  iterable = _maybe_prefetch(dataset.to_iter_dataset(), config)
  skipped = SkippedImages()
  iterable = iterable.filter(skipped).map(_train_fields)
  iterable = iterable.batch(per_process, drop_remainder=True)
  return iterable, skipped


def _eval_fields(record):
  return {
    "image": record["image"],
    "label": record["label"],
    "id": str(record["id"]),
    "mask": bool(record["valid"]),
  }


def _pad_batch(batch_size: int, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
  short = batch_size - len(batch["label"])
  if short == 0:
    return batch
  return {
    key: np.concatenate([value, np.zeros((short, *value.shape[1:]), value.dtype)])
    for key, value in batch.items()
  }


def eval_dataset(
  source: ImageSource, config: PipelineConfig, *, shard_index: int = 0, shard_count: int = 1
) -> grain.IterDataset:
  """Batches ``{"image", "label", "id", "mask"}`` over every record once, in order (with
  `shard_count` > 1, over records shard_index, shard_index + shard_count, …).

  Every batch has ``config.batch_size`` rows; ``mask`` is False for padding and for
  unreadable images (their ``id`` says which), so callers count and skip them. Inference
  runs on each process's own devices: on several processes each passes its own records
  (`distributed.this_process_part`), so the default reads them all, whatever the process.
  """
  import grain

  dataset = grain.MapDataset.source(source)[shard_index::shard_count]
  dataset = dataset.map(functools.partial(transforms.decode_eval_record, config=config.image))
  iterable = _maybe_prefetch(dataset.to_iter_dataset(), config).map(_eval_fields)
  return iterable.batch(config.batch_size, drop_remainder=False).map(
    functools.partial(_pad_batch, config.batch_size)
  )


class DeviceIterator:
  """Puts each host batch on the mesh, the batch axis sharded over ``('data',)``.

  Fields that are not numeric (ids) stay on the host. `get_state` / `set_state` are the
  underlying grain iterator's, so the position can be saved with a train checkpoint.
  """

  def __init__(
    self,
    dataset: grain.IterDataset,
    mesh: jax.sharding.Mesh,
    device_keys: tuple[str, ...] = ("image", "label", "mask"),
  ):
    self._iterator = iter(dataset)
    self._mesh = mesh
    self._device_keys = device_keys

  def __iter__(self) -> Iterator[dict[str, Any]]:
    return self

  def __next__(self) -> dict[str, Any]:
    batch = next(self._iterator)
    on_device = {k: v for k, v in batch.items() if k in self._device_keys}
    return {**batch, **sharding.shard_batch(on_device, self._mesh)}

  def get_state(self) -> dict[str, Any]:
    return self._iterator.get_state()

  def set_state(self, state: dict[str, Any]) -> None:
    self._iterator.set_state(state)
