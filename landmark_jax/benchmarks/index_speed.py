"""Centroid search: ScaNN vs the exact backend at 10k / 100k / 1M 512-d centroids, and the
per-query latency of embedding + search with WRN-50-2.

For each size: build time, index size, and queries/s; ScaNN's partitions probed per query
are raised until recall@1 against the exact backend reaches the target (0.99), so the
queries/s compare at equal quality.
"""

from __future__ import annotations

import json
import pathlib
import statistics
import tempfile
from typing import Any, Sequence

import jax
import numpy as np

from landmark_jax.benchmarks.timing import directory_bytes, timed
from landmark_jax.index import CentroidIndex, IndexConfig


def clustered_unit_vectors(
  n: int, dim: int, rng: np.random.Generator, clusters: int = 1000, noise: float = 0.5
) -> np.ndarray:
  """Synthetic centroids: `clusters` groups (landmarks seen from similar angles), 512-d."""
  centers = rng.standard_normal((clusters, dim), dtype=np.float32)
  out = np.empty((n, dim), np.float32)
  for start in range(0, n, 100_000):  # in blocks: 1M × 512 needs no second 2 GB temporary
    stop = min(start + 100_000, n)
    block = centers[rng.integers(0, clusters, stop - start)]
    block += noise * rng.standard_normal(block.shape, dtype=np.float32)
    out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
  return out


def benchmark_index(
  sizes: Sequence[int] = (10_000, 100_000, 1_000_000),
  dim: int = 512,
  num_queries: int = 1000,
  target_recall: float = 0.99,
  seed: int = 0,
) -> list[dict[str, Any]]:
  rows = []
  for n in sizes:
    rng = np.random.default_rng(seed)
    vectors = clustered_unit_vectors(n, dim, rng)
    queries = vectors[rng.integers(0, n, num_queries)]
    queries = queries + 0.1 * rng.standard_normal(queries.shape, dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    labels = np.arange(n)

    exact, build_exact = timed(
      lambda: CentroidIndex.build(vectors, labels, IndexConfig(backend="exact"))
    )
    exact.search(queries[:8], 1, exact=True)  # compile
    (_, _, truth), search_exact = timed(lambda: exact.search(queries, 1, exact=True))
    rows.append(
      {
        "centroids": n,
        "backend": "exact (jit matmul + top_k)",
        "build s": build_exact,
        "index MB": vectors.nbytes / 2**20,
        "queries/s": num_queries / search_exact,
        "recall@1": 1.0,
        "setting": "—",
        "exact scores ×": rescoring_cost(exact, queries, exact.exact_search),
      }
    )

    scann, build_scann = timed(
      lambda: CentroidIndex.build(vectors, labels, IndexConfig(backend="scann"))
    )
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

        def raw(q, k):
          return scann._scann.search_batched(q, final_num_neighbors=k, **extra)

        rows.append(
          {
            "centroids": n,
            "backend": f"ScaNN {info['mode']}",
            "build s": build_scann,
            "index MB": size_mb,
            "queries/s": num_queries / seconds,
            "recall@1": recall,
            "setting": "brute force"
            if setting is None
            else f"{setting}/{info['num_leaves']} leaves, reorder {info['reorder']}",
            "exact scores ×": rescoring_cost(scann, queries, raw, setting),
          }
        )
        break
  return rows


def rescoring_cost(
  index: CentroidIndex, queries: np.ndarray, raw_search, setting=None, k: int = 20
) -> float:
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


def benchmark_query_latency(
  backbone: str = "wide_resnet50_2",
  image_size: int = 224,
  index_size: int = 100_000,
  repeats: int = 5,
) -> list[dict[str, Any]]:
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
  return [
    {
      "backbone": backbone,
      "image": image_size,
      "index": index_size,
      "embed ms": embed_ms,
      "search ms": search_ms,
      "total ms": embed_ms + search_ms,
      "search share %": 100 * search_ms / (embed_ms + search_ms),
    }
  ]


# `build-index --target-recall` at GLDv2's scale: a synthetic `clean` folder and `embed`
# folder in the layouts `build-index` reads, and the recall/QPS table of its settings ladder.


def write_synthetic_clean(
  out: str | pathlib.Path,
  num_centroids: int,
  dim: int = 512,
  *,
  centroids_per_landmark: int = 5,
  seed: int = 0,
) -> np.ndarray:
  """A `clean` output folder (`stages.clean.write_cleaning`'s layout, without class
  references) of `num_centroids` clustered unit vectors, `centroids_per_landmark` per
  landmark; returns the centroids."""
  from landmark_jax.data.labels import LabelMap

  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  centroids = clustered_unit_vectors(num_centroids, dim, np.random.default_rng(seed))
  labels = np.arange(num_centroids, dtype=np.int64) // centroids_per_landmark
  np.save(out / "centroids.npy", centroids)
  np.save(out / "centroid_labels.npy", labels)
  np.save(out / "cluster_sizes.npy", np.full(num_centroids, 3, np.int64))
  LabelMap(tuple(range(int(labels[-1]) + 1))).save(out / "label_map.json")
  (out / "clean.json").write_text(json.dumps({"checkpoint": "synthetic"}))
  return centroids


def write_synthetic_embeddings(
  out: str | pathlib.Path,
  centroids: np.ndarray,
  landmark_labels: np.ndarray,
  num_photos: int,
  *,
  non_landmark_share: float = 0.5,
  shard_size: int = 8192,
  seed: int = 1,
) -> None:
  """An `embed` output folder of synthetic photos: landmark photos at a cosine drawn from
  [0.5, 0.95] to a random centroid (its landmark's), and non-landmark photos in random
  directions (labelled as the non-landmark class)."""
  from landmark_jax.data.labels import LabelMap

  out = pathlib.Path(out)
  rng = np.random.default_rng(seed)
  num_classes = int(landmark_labels.max()) + 1
  landmark = rng.random(num_photos) >= non_landmark_share
  source = rng.integers(0, len(centroids), num_photos)
  base = centroids[source].astype(np.float64)
  noise = rng.standard_normal(base.shape)
  noise -= np.sum(noise * base, axis=1, keepdims=True) * base
  noise /= np.linalg.norm(noise, axis=1, keepdims=True)
  cosine = rng.uniform(0.5, 0.95, (num_photos, 1))
  photos = np.where(landmark[:, None], cosine * base + np.sqrt(1 - cosine**2) * noise, noise)
  labels = np.where(landmark, landmark_labels[source], num_classes).astype(np.int32)
  for shard, start in enumerate(range(0, num_photos, shard_size)):
    folder = out / f"shard-{shard:05d}"
    folder.mkdir(parents=True, exist_ok=True)
    stop = min(start + shard_size, num_photos)
    np.save(folder / "embeddings.npy", photos[start:stop].astype(np.float32))
    np.save(folder / "ids.npy", np.array([f"photo{i:08d}" for i in range(start, stop)]))
    np.save(folder / "labels.npy", labels[start:stop])
    (folder / "skipped.json").write_text("[]")
  LabelMap(tuple(range(num_classes))).save(out / "label_map.json")
  (out / "embeddings.json").write_text(
    json.dumps(
      {
        "checkpoint": "synthetic",
        "records": num_photos,
        "shard_size": shard_size,
        "embedding_dim": centroids.shape[1],
      }
    )
  )


def benchmark_tuned_index(
  index_dir: str | pathlib.Path,
  queries: np.ndarray,
  *,
  eta: float | None = None,
  single_queries: int = 200,
) -> list[dict[str, Any]]:
  """Recall@1 (all queries, and those whose best exact score ≥ `eta`) and queries/s (one
  query per call, and all in one batch) of a saved ScaNN tree index, for each setting of its
  tuning ladder, against the exact backend measured in the same run; the index's own (tuned)
  setting is marked. Rows come in ladder order; at 1 M centroids and 2,000 queries the
  table took 32 min on a loaded 2-core machine (the slow rows probe every leaf)."""
  from landmark_jax.index import tuning

  index = CentroidIndex.load(index_dir)
  info = index.scann_info
  index.search(queries[:8], 1, exact=True)  # compile
  (_, true_scores, truth), exact_s = timed(lambda: index.search(queries, 1, exact=True))
  above = None if eta is None else true_scores[:, 0] >= eta
  one = [q[None] for q in queries[:single_queries]]
  _, exact_one_s = timed(lambda: [index.search(q, 1, exact=True) for q in one])
  rows = [
    {
      "setting": "exact (jit matmul + top_k)",
      "recall@1": 1.0,
      "recall@1 above η": 1.0 if above is not None else "—",
      "queries/s batched": len(queries) / exact_s,
      "queries/s single": len(one) / exact_one_s,
    }
  ]
  chosen = index.search_settings
  for setting in tuning.settings_ladder(info["num_leaves"]):
    extra = {"leaves_to_search": setting.leaves_to_search, "reorder": setting.reorder}
    index.search(queries[:8], 1, **extra)
    (_, scores, found), seconds = timed(lambda: index.search(queries, 1, **extra))
    _, one_s = timed(lambda: [index.search(q, 1, **extra) for q in one])
    args = (found[:, 0], truth[:, 0], scores[:, 0], true_scores[:, 0])
    recall_above = "—" if above is None else tuning.recall_at_1(*args, mask=above)
    rows.append(
      {
        "setting": tuning.describe(setting, info["num_leaves"])
        + (" **(tuned)**" if setting == chosen else ""),
        "recall@1": tuning.recall_at_1(*args),
        "recall@1 above η": recall_above,
        "queries/s batched": len(queries) / seconds,
        "queries/s single": len(one) / one_s,
      }
    )
  return rows
