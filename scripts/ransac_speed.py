"""RANSAC verification time: our vectorised RANSAC vs scikit-image's, on real DELF shortlists.

    make demo && .venv/bin/python scripts/ransac_speed.py [workdir/demo/train]

Builds the DELF-style database (demo preset, feature-norm attention) with the demo model,
takes every 8th test photo as a query, and verifies each query's shortlist with both
implementations. Prints ms per query for each, the speed-up, and how often they agree.
"""

import dataclasses
import sys
import time

import numpy as np

from landmark_jax.baselines.delf import build_delf
from landmark_jax.data import source_for
from landmark_jax.train.checkpoints import load_trained


def main(checkpoint: str = "workdir/demo/train") -> None:
  trained = load_trained(checkpoint)
  # The demo model's config carries the demo's DELF settings (tiny_cpu).
  config = dataclasses.replace(trained.config.delf, attention="feature_norm")
  data = trained.config.data
  delf = build_delf(trained, source_for(data, "train", trained.label_map), config, progress=False)
  test = source_for(data, "test", trained.label_map)
  queries = delf.extractor.extract(test.paths[::8])
  results = {}
  for backend in ("numpy", "skimage"):
    backend_config = dataclasses.replace(config, ransac_backend=backend)
    seconds, inliers = 0.0, []
    for query in queries:
      photos, _ = delf.database.shortlist(query, backend_config)
      start = time.perf_counter()
      verified = delf.database.verify(query, photos, backend_config)
      seconds += time.perf_counter() - start
      inliers += [v.inliers for v in verified]
    results[backend] = (1000 * seconds / len(queries), np.array(inliers))
  (ours, ours_inliers), (reference, reference_inliers) = results["numpy"], results["skimage"]
  print(
    f"{len(queries)} queries × {config.num_candidates} candidates: numpy {ours:.1f} ms/query, "
    f"scikit-image {reference:.1f} ms/query, speed-up {reference / ours:.1f}×; same inlier "
    f"count on {np.mean(ours_inliers == reference_inliers):.0%} of pairs, mean |difference| "
    f"{np.mean(np.abs(ours_inliers - reference_inliers)):.2f}"
  )


if __name__ == "__main__":
  main(*sys.argv[1:])
