"""`landmark-jax build-index`: a cleaning's centroids → the centroid index, and the queries
its search is tuned on (`build-index --target-recall`)."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import numpy as np

from landmark_jax.data.labels import LabelMap
from landmark_jax.errors import DataError, MissingFileError, UsageError
from landmark_jax.index.centroid_index import CentroidIndex
from landmark_jax.index.config import IndexConfig
from landmark_jax.index.integrity import MANIFEST
from landmark_jax.index.landmarks import load_landmarks_csv, refuse_unmatched_rows
from landmark_jax.index.references import FILES as REFERENCE_FILES
from landmark_jax.index.references import References
from landmark_jax.index.tuning import PERTURBED_SIMILARITY, Tuning, perturbed_queries, tuned_index
from landmark_jax.stages.clean import RECORD_FILE


def is_done(index_dir: str | os.PathLike) -> bool:
  """Whether `index_dir` holds a saved index (its manifest is written last)."""
  return (pathlib.Path(index_dir) / MANIFEST).is_file()


def build_centroid_index(
  clean_dir: str | os.PathLike,
  config: IndexConfig = IndexConfig(),
  checkpoint_id: str | None = None,
  landmarks_csv: str | os.PathLike | None = None,
  *,
  ignore_unmatched: bool = False,
) -> CentroidIndex:
  """The index over a `write_cleaning` folder's centroids; the manifest records
  `checkpoint_id` (default: the one the cleaning recorded). `landmarks_csv`: the landmarks'
  names and coordinates, one row per landmark of the cleaning's label map; a row of another
  landmark is refused, or left out with a warning with `ignore_unmatched`
  (`refuse_unmatched_rows`)."""
  clean = pathlib.Path(clean_dir)
  if not (clean / "centroids.npy").is_file():
    raise MissingFileError(
      f"no cleaning output in {clean} (centroids.npy missing): run `landmark-jax clean` first"
    )
  if checkpoint_id is None and (clean / RECORD_FILE).is_file():
    checkpoint_id = json.loads((clean / RECORD_FILE).read_text()).get("checkpoint")
  centroids = np.load(clean / "centroids.npy", allow_pickle=False)
  labels = np.load(clean / "centroid_labels.npy", allow_pickle=False)
  references = None  # a cleaning from before class references existed has none
  if all((clean / name).is_file() for name in REFERENCE_FILES):
    references = References.load(clean, centroids.shape[1], labels)
  label_map = LabelMap.load(clean / "label_map.json")
  landmarks = None
  if landmarks_csv:
    landmarks = load_landmarks_csv(landmarks_csv)
    known = set(label_map.landmark_ids)
    unmatched = [lid for lid in landmarks if lid not in known]
    refuse_unmatched_rows(
      unmatched,
      landmarks_csv,
      ignore_unmatched=ignore_unmatched,
      among=f"of the cleaning's label map ({clean / 'label_map.json'})",
    )
    landmarks = {lid: info for lid, info in landmarks.items() if lid in known}
  return CentroidIndex.build(
    centroids,
    labels,
    config,
    references=references,
    cluster_sizes=np.load(clean / "cluster_sizes.npy", allow_pickle=False),
    label_map=label_map,
    metadata={"checkpoint": checkpoint_id} if checkpoint_id else None,
    landmarks=landmarks,
  )


TUNING_QUERIES = 2000  # recall@1 of 0.99 measured ± 0.002 (binomial standard error)


def tuning_queries(
  centroids: np.ndarray,
  clean_dir: str | os.PathLike,
  embeddings_dir: str | os.PathLike | None = None,
  count: int = TUNING_QUERIES,
  seed: int = 0,
) -> tuple[np.ndarray, str]:
  """Queries for tuning an index's search (`index.tuning`), and where they came from.

  Photos, if their embeddings are at hand: `embeddings_dir` (an `embed` folder), by default
  the one the cleaning was made from (``clean.json``). They are the queries' real
  distribution, non-landmark photos included. `count` are drawn at random, read from the
  shards by memory map (GLDv2's 4.1 M embeddings are 8 GB). Without them, centroids
  perturbed to a fixed similarity (`tuning.perturbed_queries`).

  Raises:
    MissingFileError: `embeddings_dir` given and not an `embed` folder.
    DataError: embeddings of another dimension than the centroids.
  """
  rng = np.random.default_rng(seed)
  given = embeddings_dir is not None
  if not given and (pathlib.Path(clean_dir) / RECORD_FILE).is_file():
    embeddings_dir = json.loads((pathlib.Path(clean_dir) / RECORD_FILE).read_text()).get(
      "embeddings"
    )
  shards = []
  if embeddings_dir is not None:
    shards = sorted(
      p / "embeddings.npy"
      for p in pathlib.Path(embeddings_dir).glob("shard-*")
      if (p / "embeddings.npy").is_file()
    )
    if given and not shards:
      raise MissingFileError(
        f"no embedding shards in {embeddings_dir}: give the output folder of `landmark-jax embed`"
      )
  if not shards:
    why = (
      f"the cleaning's embeddings at {embeddings_dir} are gone"
      if embeddings_dir
      else "no embedded photos at hand, --embeddings names them"
    )
    return (
      perturbed_queries(centroids, count, rng),
      f"{min(count, len(centroids))} centroids perturbed to cosine {PERTURBED_SIMILARITY} ({why})",
    )
  arrays = [np.load(path, mmap_mode="r", allow_pickle=False) for path in shards]
  if arrays[0].ndim != 2 or arrays[0].shape[1] != centroids.shape[1]:
    raise DataError(
      f"{shards[0]}: embeddings of shape {arrays[0].shape}, the centroids are "
      f"{centroids.shape[1]}-d"
    )
  total = sum(len(a) for a in arrays)
  rows = np.sort(rng.choice(total, min(count, total), replace=False))
  starts = np.cumsum([0] + [len(a) for a in arrays])
  queries = np.concatenate(
    [
      arrays[i][rows[(rows >= starts[i]) & (rows < starts[i + 1])] - starts[i]]
      for i in range(len(arrays))
    ]
  )
  return (
    np.ascontiguousarray(queries, np.float32),
    f"{len(rows)} of {total} embedded photos in {pathlib.Path(embeddings_dir)}",
  )


@dataclasses.dataclass
class BuiltIndex:
  """An index written by `build_index_folder`, and how its search was tuned (if it was)."""

  index: CentroidIndex
  tuning: Tuning | None = None  # with a recall target
  queries: int = 0  # tuning queries
  query_source: str = ""  # where they came from, in words


def build_index_folder(
  clean_dir: str | os.PathLike,
  out_dir: str | os.PathLike,
  config: IndexConfig = IndexConfig(),
  *,
  checkpoint_id: str | None = None,
  landmarks_csv: str | os.PathLike | None = None,
  target_recall: float | None = None,
  embeddings_dir: str | os.PathLike | None = None,
  eta: float | None = None,
  tuning_queries_count: int | None = None,
  ignore_unmatched: bool = False,
) -> BuiltIndex:
  """The index over a cleaning's centroids (`build_centroid_index`), saved to `out_dir`;
  with `target_recall`, searching with the cheapest settings that reach it
  (`index.tuning.tuned_index`) on queries sampled from `embeddings_dir` (`tuning_queries`),
  measured on those whose best score clears `eta` when it is given. `ignore_unmatched`: as
  `build_centroid_index`."""
  if target_recall is None and (
    embeddings_dir or eta is not None or tuning_queries_count is not None
  ):
    raise UsageError(
      "--embeddings, --eta and --tuning-queries choose how --target-recall is "
      "measured: give --target-recall too"
    )
  index = build_centroid_index(
    clean_dir, config, checkpoint_id, landmarks_csv, ignore_unmatched=ignore_unmatched
  )
  built = BuiltIndex(index)
  if target_recall is not None:
    queries, source = tuning_queries(
      index.centroids, clean_dir, embeddings_dir, tuning_queries_count or TUNING_QUERIES
    )
    index, tuning = tuned_index(index, queries, target_recall, eta=eta, query_source=source)
    built = BuiltIndex(index, tuning, len(queries), source)
  built.index.save(out_dir)
  return built
