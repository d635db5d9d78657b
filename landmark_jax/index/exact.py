"""Exact maximum-inner-product search: a jitted matmul + `lax.top_k`, batched.

The recall reference for ScaNN and the fallback where ScaNN cannot run. Queries are
processed in fixed-size batches and the database in fixed-size chunks whose partial top-k
are merged, so a 1M × 512 database never needs a (queries × 1M) score matrix, and every
call reuses one compiled program (the last batch/chunk is padded).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.partial(jax.jit, static_argnames=("k",))
def _chunk_top_k(queries, chunk, valid_rows, offset, k: int):
  scores = queries @ chunk.T
  # Padding rows of the last chunk must never win.
  scores = jnp.where(jnp.arange(chunk.shape[0])[None, :] < valid_rows, scores, -jnp.inf)
  top_scores, top_index = jax.lax.top_k(scores, k)
  return top_scores, top_index + offset


@functools.partial(jax.jit, static_argnames=("k",))
def _merge_top_k(scores_a, index_a, scores_b, index_b, k: int):
  scores = jnp.concatenate([scores_a, scores_b], axis=1)
  index = jnp.concatenate([index_a, index_b], axis=1)
  top_scores, position = jax.lax.top_k(scores, k)
  return top_scores, jnp.take_along_axis(index, position, axis=1)


class ExactSearcher:
  """Exact top-k by dot product over `database` (n, d) float32."""

  def __init__(self, database: np.ndarray, chunk_size: int = 65536, query_batch: int = 256):
    self.database = np.ascontiguousarray(database, dtype=np.float32)
    self.chunk_size = min(chunk_size, max(len(self.database), 1))
    self.query_batch = query_batch
    n = len(self.database)
    # Only the last chunk is padded (copied): a padded copy of the whole database would
    # cost another 2 GB at 1 M × 512.
    self._chunks = []
    for start in range(0, n, self.chunk_size):
      chunk = self.database[start : start + self.chunk_size]
      if len(chunk) < self.chunk_size:
        chunk = np.concatenate(
          [chunk, np.zeros((self.chunk_size - len(chunk), chunk.shape[1]), np.float32)]
        )
      self._chunks.append(jnp.asarray(chunk))

  def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices (q, k) int64, scores (q, k) float32), best first."""
    queries = np.asarray(queries, np.float32)
    n = len(self.database)
    k_eff = min(k, n)
    k_chunk = min(k_eff, self.chunk_size)
    out_index, out_scores = [], []
    for start in range(0, len(queries), self.query_batch):
      batch = queries[start : start + self.query_batch]
      padded = np.zeros((self.query_batch, queries.shape[1]), np.float32)
      padded[: len(batch)] = batch
      best_scores = best_index = None
      for c, chunk in enumerate(self._chunks):
        offset = c * self.chunk_size
        scores, index = _chunk_top_k(jnp.asarray(padded), chunk, n - offset, offset, k_chunk)
        if best_scores is None:
          best_scores, best_index = scores, index
        else:
          best_scores, best_index = _merge_top_k(best_scores, best_index, scores, index, k_chunk)
      out_scores.append(np.asarray(best_scores)[: len(batch), :k_eff])
      out_index.append(np.asarray(best_index)[: len(batch), :k_eff])
    if not out_index:
      return np.zeros((0, k_eff), np.int64), np.zeros((0, k_eff), np.float32)
    return np.concatenate(out_index).astype(np.int64), np.concatenate(out_scores)
