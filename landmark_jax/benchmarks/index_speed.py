"""Centroid search: ScaNN vs the exact backend at 10k / 100k / 1M 512-d centroids, and the
per-query latency of embedding + search with WRN-50-2.

For each size: build time, index size, and queries/s; ScaNN's partitions probed per query
are raised until recall@1 against the exact backend reaches the target (0.99), so the
queries/s compare at equal quality.
"""

from __future__ import annotations

import pathlib
import statistics
import tempfile
from typing import Any, Sequence

import jax
import numpy as np

from landmark_jax.benchmarks.timing import directory_bytes, timed
from landmark_jax.index import CentroidIndex, IndexConfig


def clustered_unit_vectors(n: int, dim: int, rng: np.random.Generator, clusters: int = 1000,
                           noise: float = 0.5) -> np.ndarray:
  """Synthetic centroids: `clusters` groups (landmarks seen from similar angles), 512-d."""
  centers = rng.standard_normal((clusters, dim), dtype=np.float32)
  out = np.empty((n, dim), np.float32)
  for start in range(0, n, 100_000):  # in blocks: 1M × 512 needs no second 2 GB temporary
    stop = min(start + 100_000, n)
    block = centers[rng.integers(0, clusters, stop - start)]
    block += noise * rng.standard_normal(block.shape, dtype=np.float32)
    out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
  return out


def benchmark_index(sizes: Sequence[int] = (10_000, 100_000, 1_000_000), dim: int = 512,
                    num_queries: int = 1000, target_recall: float = 0.99, seed: int = 0
                    ) -> list[dict[str, Any]]:
  rows = []
  for n in sizes:
    rng = np.random.default_rng(seed)
    vectors = clustered_unit_vectors(n, dim, rng)
    queries = vectors[rng.integers(0, n, num_queries)]
    queries = queries + 0.1 * rng.standard_normal(queries.shape, dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    labels = np.arange(n)

    exact, build_exact = timed(lambda: CentroidIndex.build(vectors, labels, IndexConfig(backend="exact")))
    exact.search(queries[:8], 1, exact=True)  # compile
    (_, _, truth), search_exact = timed(lambda: exact.search(queries, 1, exact=True))
    rows.append({"centroids": n, "backend": "exact (jit matmul + top_k)", "build s": build_exact,
                 "index MB": vectors.nbytes / 2**20, "queries/s": num_queries / search_exact,
                 "recall@1": 1.0, "setting": "—",
                 "exact scores ×": rescoring_cost(exact, queries, exact.exact_search)})

    scann, build_scann = timed(lambda: CentroidIndex.build(vectors, labels, IndexConfig(backend="scann")))
    with tempfile.TemporaryDirectory() as tmp:
      size_mb = directory_bytes(scann.save(pathlib.Path(tmp) / "i") / "scann") / 2**20
    info = scann.manifest()["scann"]
    settings = [None]
    if info["mode"] == "tree_ah":
      leaves = info["num_leaves"]
      settings = sorted({max(1, leaves * p // 100) for p in (2, 5, 10, 20, 30, 50, 100)})
    for setting in settings:
      scann.search(queries[:8], 1, leaves_to_search=setting)
      (_, _, found), seconds = timed(lambda: scann.search(queries, 1, leaves_to_search=setting))
      recall = float(np.mean(found[:, 0] == truth[:, 0]))
      if recall >= target_recall or setting == settings[-1]:
        extra = {"leaves_to_search": setting} if setting else {}
        raw = lambda q, k: scann._scann.search_batched(q, final_num_neighbors=k, **extra)
        rows.append({"centroids": n, "backend": f"ScaNN {info['mode']}", "build s": build_scann,
                     "index MB": size_mb, "queries/s": num_queries / seconds, "recall@1": recall,
                     "setting": "brute force" if setting is None else
                     f"{setting}/{info['num_leaves']} leaves, reorder {info['reorder']}",
                     "exact scores ×": rescoring_cost(scann, queries, raw, setting)})
        break
  return rows


def rescoring_cost(index: CentroidIndex, queries: np.ndarray, raw_search, setting=None,
                   k: int = 20) -> float:
  """Time of `index.search` (which recomputes each found neighbour's score exactly, so a
  photo scores the same in any batch) over the backend's own search (`raw_search(q, k)`),
  for k = 20 neighbours (a recognizer's top 5 landmarks × 4) and the same queries."""
  extra = {"leaves_to_search": setting} if setting else {}
  exact = raw_search is index.exact_search
  raw_search(queries[:8], k)
  index.search(queries[:8], k, exact=exact, **extra)
  _, raw = timed(lambda: raw_search(queries, k))
  _, full = timed(lambda: index.search(queries, k, exact=exact, **extra))
  return full / raw


def benchmark_query_latency(backbone: str = "wide_resnet50_2", image_size: int = 224,
                            index_size: int = 100_000, repeats: int = 5) -> list[dict[str, Any]]:
  """One photo at a time: embed with `backbone` (random weights) + ScaNN search."""
  from landmark_jax import sharding
  from landmark_jax.embedding import Embedder
  from landmark_jax.models import LandmarkNet
  rng = np.random.default_rng(0)
  model = LandmarkNet(backbone, num_classes=1000)
  image = rng.integers(0, 256, (1, image_size, image_size, 3), dtype=np.uint8)
  variables = jax.jit(model.init)(jax.random.PRNGKey(0), image)
  embedder = Embedder(model, variables, sharding.make_data_mesh(jax.local_devices()[:1]))
  embedding = embedder(image)[0]
  index = CentroidIndex.build(clustered_unit_vectors(index_size, 512, rng), np.arange(index_size))
  index.search(embedding, 5)
  embed_times, search_times = [], []
  for _ in range(repeats):
    embedding, seconds = timed(lambda: embedder(image)[0])
    embed_times.append(seconds)
    _, seconds = timed(lambda: index.search(embedding, 5))
    search_times.append(seconds)
  embed_ms = 1000 * statistics.median(embed_times)
  search_ms = 1000 * statistics.median(search_times)
  return [{"backbone": backbone, "image": image_size, "index": index_size,
           "embed ms": embed_ms, "search ms": search_ms, "total ms": embed_ms + search_ms,
           "search share %": 100 * search_ms / (embed_ms + search_ms)}]
