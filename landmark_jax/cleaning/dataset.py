"""Cleaning a whole dataset (`clean_dataset`): every landmark's photos cleaned alone
(`clusters.clean_landmark`), chunk by chunk so memory stays bounded, in spawned worker
processes when `CleaningConfig.num_workers` asks for them."""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
import os
import sys
from typing import Any, Hashable, Mapping, Sequence

import numpy as np

from landmark_jax.cleaning.clusters import LandmarkClusters, clean_landmark, unit_rows
from landmark_jax.cleaning.config import CleaningConfig
from landmark_jax.cleaning.result import CleaningResult, log_summary

# `clean_dataset` reads the embeddings one chunk of whole landmarks at a time (at least this
# many photos, ~128 MB of 512-d float32): memory stays bounded, and a worker gets enough
# work per task that sending the task costs nothing by comparison.
CHUNK_PHOTOS = 65_536


def group_rows(landmarks: Sequence[Hashable]) -> list[tuple[Hashable, np.ndarray]]:
  """``(landmark, its rows in input order)`` per landmark, in order of first appearance;
  non-landmark rows (None) are left out. One stable argsort, not a list per landmark."""
  first_seen = dict.fromkeys(landmarks)  # insertion order: first appearance
  first_seen.pop(None, None)
  code = {landmark: i for i, landmark in enumerate(first_seen)}
  codes = np.fromiter(
    map(code.get, landmarks, itertools.repeat(-1)), np.int64, count=len(landmarks)
  )
  order = np.argsort(codes, kind="stable")
  counts = np.bincount(codes[codes >= 0], minlength=len(code))
  order = order[len(order) - int(counts.sum()) :]  # the -1s (None) sort first
  return list(zip(first_seen, np.split(order, np.cumsum(counts)[:-1])))


def _chunks(jobs: Sequence[tuple], chunk_photos: int) -> list[slice]:
  """Consecutive runs of whole landmarks (jobs: landmark, rows, …) of at least
  `chunk_photos` photos (the last one may have fewer)."""
  chunks, start, photos = [], 0, 0
  for i, job in enumerate(jobs):
    photos += len(job[1])
    if photos >= chunk_photos:
      chunks.append(slice(start, i + 1))
      start, photos = i + 1, 0
  if start < len(jobs):
    chunks.append(slice(start, len(jobs)))
  return chunks


def _clean_chunk(
  embeddings: np.ndarray, jobs: Sequence[tuple], config: CleaningConfig
) -> list[tuple[LandmarkClusters, np.ndarray]]:
  """`clean_landmark` of each ``(landmark, rows, references)``, with its medoids' embeddings
  (so the caller never reads them back from a memory map), the chunk's rows read from
  `embeddings` (a memory map, say) in one sorted pass."""
  rows = np.concatenate([job[1] for job in jobs])
  order = np.argsort(rows, kind="stable")
  block = np.empty((len(rows), embeddings.shape[1]), embeddings.dtype)
  block[order] = embeddings[rows[order]]
  results, start = [], 0
  for landmark, landmark_rows, references in jobs:
    stop = start + len(landmark_rows)
    found = clean_landmark(landmark, block[start:stop], config, references)
    results.append((found, block[start:stop][found.medoids]))
    start = stop
  return results


# A worker process's view of the embeddings, opened once by `_open_in_worker`.
_WORKER: dict[str, Any] = {}


class _FileRows:
  """Rows of a C-order ``.npy`` read with `os.preadv`, one call per run of consecutive rows:
  unlike a memory map, reading leaves no file pages in the worker's resident memory (the
  kernel maps 64 KB around every faulting row, so scattered rows would map the whole
  file)."""

  def __init__(self, path: str, offset: int, shape: tuple[int, int], dtype: np.dtype):
    self._fd = os.open(path, os.O_RDONLY)
    self._offset, self.shape, self.dtype = offset, shape, dtype
    self._row_bytes = shape[1] * dtype.itemsize

  def __getitem__(self, rows: np.ndarray) -> np.ndarray:
    """The rows at sorted indices `rows`."""
    out = np.empty((len(rows), self.shape[1]), self.dtype)
    view = memoryview(out).cast("B")
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
      wanted = (stop - start) * self._row_bytes
      got = os.preadv(
        self._fd,
        [view[start * self._row_bytes : stop * self._row_bytes]],
        self._offset + int(rows[start]) * self._row_bytes,
      )
      if got != wanted:
        raise OSError(f"short read of embeddings: {got} of {wanted} bytes")
    return out


def _shared_handle(embeddings: np.ndarray):
  """How a worker opens `embeddings` without receiving a copy: a memory-mapped ``.npy``
  by its file, else one copy in shared memory (returned, to be released by the caller)."""
  if isinstance(embeddings, np.memmap) and embeddings.filename and embeddings.flags.c_contiguous:
    return (
      "file",
      str(embeddings.filename),
      embeddings.offset,
      embeddings.shape,
      embeddings.dtype.str,
    ), None
  from multiprocessing import shared_memory

  array = np.ascontiguousarray(embeddings)
  memory = shared_memory.SharedMemory(create=True, size=max(1, array.nbytes))
  np.ndarray(array.shape, array.dtype, buffer=memory.buf)[...] = array
  return ("shared", memory.name, 0, array.shape, array.dtype.str), memory


def _open_in_worker(handle) -> None:
  kind, name, offset, shape, dtype = handle
  if kind == "file":
    _WORKER["embeddings"] = _FileRows(name, offset, tuple(shape), np.dtype(dtype))
  else:
    from multiprocessing import shared_memory

    # track=False: the parent created the block and unlinks it; a worker that registered it
    # too would have the resource tracker unlink it (or warn) when the worker exits.
    memory = (
      shared_memory.SharedMemory(name=name, track=False)
      if sys.version_info >= (3, 13)
      else shared_memory.SharedMemory(name=name)
    )
    _WORKER["memory"] = memory  # keeps the mapping alive
    _WORKER["embeddings"] = np.ndarray(tuple(shape), np.dtype(dtype), buffer=memory.buf)


def _clean_chunk_in_worker(args) -> list[tuple[LandmarkClusters, np.ndarray]]:
  jobs, config = args
  return _clean_chunk(_WORKER["embeddings"], jobs, config)


def _clean_groups(
  embeddings: np.ndarray, jobs: list[tuple], config: CleaningConfig, chunk_photos: int
) -> list[tuple[LandmarkClusters, np.ndarray]]:
  """`clean_landmark` of every job, chunk by chunk, in `config.num_workers` processes (0:
  here). Workers read the embeddings themselves (`_shared_handle`): a task is row indices."""
  chunks = [jobs[part] for part in _chunks(jobs, chunk_photos)]
  if config.num_workers <= 0 or len(chunks) <= 1:
    return [result for chunk in chunks for result in _clean_chunk(embeddings, chunk, config)]
  handle, memory = _shared_handle(embeddings)
  try:
    # Spawned, not forked: a fork of a process running JAX's threads can deadlock, and a
    # forked worker would start out holding (and be measured with) all of this process's
    # memory. A spawned one imports NumPy and this module, and opens the embeddings.
    with concurrent.futures.ProcessPoolExecutor(
      config.num_workers,
      mp_context=multiprocessing.get_context("spawn"),
      initializer=_open_in_worker,
      initargs=(handle,),
    ) as pool:
      return [
        result
        for results in pool.map(_clean_chunk_in_worker, [(chunk, config) for chunk in chunks])
        for result in results
      ]
  finally:
    if memory is not None:
      memory.close()
      memory.unlink()


def clean_dataset(
  ids: Sequence[str],
  landmarks: Sequence[Hashable],
  embeddings: np.ndarray,
  config: CleaningConfig = CleaningConfig(),
  references: Mapping[Hashable, np.ndarray] | None = None,
  *,
  chunk_photos: int = CHUNK_PHOTOS,
) -> CleaningResult:
  """Cleans every landmark (non-landmark images, landmark None, are left out).

  `references`: landmark id → embeddings of its reference photos, checked against each
  valid cluster (`CleaningConfig.reference_similarity`) and kept as the landmark's class
  references; a landmark without any gets its clusters' medoids instead.

  `embeddings` may be a memory map (``np.load(..., mmap_mode="r")``): landmarks are cleaned
  in chunks of about `chunk_photos` photos, each read when its turn comes, so memory holds
  one chunk per process, not a copy of every landmark's photos. With
  `config.num_workers` > 0, chunks go to that many spawned processes, which read the
  memory-mapped file's rows themselves (an in-memory array is put in shared memory once);
  a script that calls this needs the ``if __name__ == "__main__":`` guard spawn requires.
  The result is the same in every case: each landmark is cleaned alone, from the same rows."""
  ids = np.asarray(ids, dtype=object)
  landmarks = list(landmarks)
  groups = group_rows(landmarks)
  jobs = [(landmark, rows, (references or {}).get(landmark)) for landmark, rows in groups]
  cleaned = _clean_groups(embeddings, jobs, config, chunk_photos)
  outcomes = [outcome for outcome, _ in cleaned]
  keep = np.zeros(len(ids), bool)
  centroids, centroid_landmarks, sizes, chosen, chosen_landmarks = [], [], [], [], []
  given_count = 0
  for (landmark, index), (outcome, medoid_embeddings) in zip(groups, cleaned):
    keep[index] = outcome.assignment >= 0
    centroids.append(outcome.centroids)
    centroid_landmarks += [landmark] * len(outcome.centroids)
    sizes.append(outcome.sizes)
    given = (references or {}).get(landmark)
    mine = given if given is not None and len(given) else medoid_embeddings
    if len(outcome.centroids):  # a dropped landmark leaves the index: no references
      chosen.append(unit_rows(mine).astype(np.float32))
      chosen_landmarks += [landmark] * len(mine)
      given_count += len(mine) if mine is given else 0
  dim = embeddings.shape[1]
  result = CleaningResult(
    ids,
    landmarks,
    keep,
    np.concatenate(centroids) if centroids else np.zeros((0, dim), np.float32),
    centroid_landmarks,
    np.concatenate(sizes) if sizes else np.zeros(0, np.int64),
    [o.landmark for o in outcomes if o.outcome.valid_clusters == 0],
    [o.outcome for o in outcomes],
    config,
    np.concatenate(chosen) if chosen else np.zeros((0, dim), np.float32),
    chosen_landmarks,
    given_count,
  )
  log_summary(result)
  return result
