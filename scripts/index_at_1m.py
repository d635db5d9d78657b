"""One million centroids through `landmark-jax build-index --target-recall`, and the recall/QPS
table of every search setting against exact search (docs/benchmarks.md, "A recall target at
1 M centroids").

    python scripts/index_at_1m.py folders DIR            # clean/ (1 M × 512) + embeddings/
    /usr/bin/time -v landmark-jax build-index --clean DIR/clean --out DIR/index \\
        --target-recall 0.99 --embeddings DIR/embeddings --eta 0.6
    python scripts/index_at_1m.py table DIR 0.6          # the ladder on DIR/index

`folders` writes a clean folder of 1,000,000 clustered unit vectors (5 per landmark) and an
embed folder of 20,000 photos (half landmark photos at cosine U(0.5, 0.95) to a centroid,
half non-landmark photos in random directions): ~47 s, 2.6 GB. `table` measures every
setting of the tuning ladder on the same 2,000 queries build-index tuned on (~30 min on 2
cores) and writes DIR/table.json.
"""

import json
import pathlib
import sys
import time

import numpy as np

from landmark_jax.benchmarks.index_speed import (
  benchmark_tuned_index,
  write_synthetic_clean,
  write_synthetic_embeddings,
)
from landmark_jax.benchmarks.timing import format_table, machine_description
from landmark_jax.stages.build_index import tuning_queries


def folders(root: pathlib.Path) -> None:
  start = time.perf_counter()
  centroids = write_synthetic_clean(root / "clean", 1_000_000, 512)
  write_synthetic_embeddings(
    root / "embeddings", centroids, np.load(root / "clean" / "centroid_labels.npy"), 20_000
  )
  print(f"folders written in {time.perf_counter() - start:.1f} s")


def table(root: pathlib.Path, eta: float) -> None:
  centroids = np.load(root / "clean" / "centroids.npy", mmap_mode="r")
  queries, source = tuning_queries(centroids, root / "clean", root / "embeddings", 2000)
  del centroids
  rows = benchmark_tuned_index(root / "index", queries, eta=eta, single_queries=100)
  print(machine_description(), "|", source)
  print(
    format_table(
      rows, ["setting", "recall@1", "recall@1 above η", "queries/s batched", "queries/s single"]
    )
  )
  (root / "table.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
  if len(sys.argv) < 3 or sys.argv[1] not in ("folders", "table"):
    sys.exit(__doc__)
  if sys.argv[1] == "folders":
    folders(pathlib.Path(sys.argv[2]))
  else:
    table(pathlib.Path(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 0.6)
