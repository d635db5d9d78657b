"""From embeddings to a centroid index: clean, write the cleaned dataset and report, build.

``clean`` output folder: ``train_clean.csv`` (GLDv2 format: ``landmark_id,images``),
``report.json`` / ``report.md``, ``dropped.csv`` (every landmark that lost photos or was kept
whole: ``landmark_id,photos,kept,dropped,centroids,reason``), ``centroids.npy``
(L2-normalised), ``centroid_labels.npy`` (dense labels), ``cluster_sizes.npy``,
``references.npy`` / ``reference_labels.npy`` (the class references: given reference photos,
else each valid cluster's medoid) and ``label_map.json``.
"""

from __future__ import annotations

import collections
import csv
import json
import os
import pathlib
from typing import Hashable, Sequence

import numpy as np

from landmark_jax.cleaning.config import CleaningConfig
from landmark_jax.cleaning.dataset import clean_dataset
from landmark_jax.cleaning.result import CleaningResult
from landmark_jax.data.labels import LabelMap
from landmark_jax.data.sources import read_csv
from landmark_jax.errors import DataError, MissingFileError
from landmark_jax.index.centroid_index import CentroidIndex
from landmark_jax.index.config import IndexConfig
from landmark_jax.index.landmarks import load_landmarks_csv
from landmark_jax.index.references import FILES as REFERENCE_FILES
from landmark_jax.index.references import References
from landmark_jax.index.tuning import PERTURBED_SIMILARITY, perturbed_queries
from landmark_jax.stages.embed import Embeddings


def clean_embeddings(
  embeddings: Embeddings,
  config: CleaningConfig = CleaningConfig(),
  reference_ids: Sequence[str] = (),
) -> CleaningResult:
  """Cleans embedded photos; `reference_ids` (photo ids, e.g. a references CSV's) are the
  reference photos of their landmarks (`clean_dataset`'s `references`)."""
  return clean_dataset(
    embeddings.ids,
    embeddings.landmark_ids(),
    embeddings.embeddings,
    config,
    references=reference_embeddings(embeddings, reference_ids),
  )


def reference_embeddings(
  embeddings: Embeddings, reference_ids: Sequence[str]
) -> dict[Hashable, np.ndarray]:
  """Landmark id → the embeddings of its photos among `reference_ids`.

  Raises:
    DataError: an id that is not an embedded photo, or a non-landmark photo.
  """
  if not len(reference_ids):
    return {}
  row_of = {str(i): r for r, i in enumerate(embeddings.ids)}
  missing = [i for i in reference_ids if str(i) not in row_of]
  if missing:
    raise DataError(
      f"{len(missing)} reference photo id(s) are not among the embedded photos "
      f"(first: {', '.join(map(str, missing[:3]))}): reference photos must be "
      "training photos of their landmark, embedded by `landmark-jax embed`"
    )
  landmark_ids = embeddings.landmark_ids()
  grouped = collections.defaultdict(list)
  for image_id in reference_ids:
    row = row_of[str(image_id)]
    if landmark_ids[row] is None:
      raise DataError(f"reference photo {image_id} is a non-landmark photo")
    grouped[landmark_ids[row]].append(row)
  return {landmark: embeddings.embeddings[rows] for landmark, rows in grouped.items()}


def read_reference_ids(path: str | os.PathLike) -> list[str]:
  """The `id` column of a references CSV (one reference photo per row; its landmark is the
  photo's own)."""
  return [row["id"].strip() for row in read_csv(path, ["id"]) if row["id"].strip()]


REPORT_MD_ROWS = 50  # affected landmarks shown in report.md; dropped.csv has them all
DROPPED_CSV_COLUMNS = ("landmark_id", "photos", "kept", "dropped", "centroids", "reason")


def _settings_line(settings: dict) -> str:
  names = (
    "linkage",
    "distance_threshold",
    "min_cluster_size",
    "keep_landmarks_without_cluster",
    "remove_near_duplicates",
    "near_duplicate_similarity",
    "reference_similarity",
  )
  return "Settings: " + ", ".join(f"{name}={settings[name]}" for name in names) + "."


def _cell(text: str) -> str:
  return text.replace("|", "\\|")  # a `|` in a folder-named landmark would split the row


def _affected_markdown(report: dict) -> list[str]:
  rows = report["affected_landmarks"]
  if not rows:
    return ["", "Every photo of every landmark is in a valid cluster."]
  lines = [
    "",
    f"## Landmarks that lost photos or were kept whole ({len(rows)})",
    "",
    f"No valid cluster: {len(report['landmarks_kept_whole'])} kept whole as one "
    f"centroid of all their photos, {len(report['landmarks_dropped'])} dropped "
    f"entirely. Photos dropped in all: {report['images_dropped']}.",
    "",
    "| landmark | photos | kept | dropped | centroids | why |",
    "|---|---|---|---|---|---|",
  ]
  lines += [
    f"| {_cell(r['landmark_id'])} | {r['photos']} | {r['kept']} "
    f"| {r['dropped']} | {r['centroids']} | {r['explanation']} |"
    for r in rows[:REPORT_MD_ROWS]
  ]
  if len(rows) > REPORT_MD_ROWS:
    lines += ["", f"… and {len(rows) - REPORT_MD_ROWS} more (all in dropped.csv)"]
  return lines


def report_markdown(report: dict) -> str:
  lines = [
    "# Cleaning report",
    "",
    _settings_line(report["settings"]),
    "",
    "| | before | after |",
    "|---|---|---|",
    f"| landmark images | {report['images_before']} | {report['images_after']} |",
    f"| landmarks | {report['landmarks_before']} | {report['landmarks_after']} |",
    "",
    f"Centroids: {report['centroids']}, of which "
    f"{len(report['landmarks_kept_whole'])} for whole landmarks without a valid cluster; "
    f"near-duplicate photos dropped: {report['near_duplicates_dropped']}; "
    f"class references: {report['references']} ({report['references_given']} given, "
    f"{report['references'] - report['references_given']} cluster medoids); "
    f"non-landmark images (not cleaned): {report['non_landmark_images']}.",
    "",
    "| centroids per landmark | landmarks |",
    "|---|---|",
  ]
  lines += [f"| {k} | {v} |" for k, v in report["clusters_per_landmark_histogram"].items()]
  return "\n".join(lines + _affected_markdown(report)) + "\n"


def _write_dropped_csv(report: dict, path: pathlib.Path) -> None:
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(DROPPED_CSV_COLUMNS)
    writer.writerows([row[c] for c in DROPPED_CSV_COLUMNS] for row in report["affected_landmarks"])


def write_cleaning(
  result: CleaningResult,
  label_map: LabelMap,
  out_dir: str | os.PathLike,
  checkpoint: str | None = None,
  embeddings_dir: str | os.PathLike | None = None,
) -> dict:
  """Writes the folder described in the module docstring; `checkpoint` (the model the
  embeddings came from) is kept in ``clean.json`` for the index manifest, and
  `embeddings_dir` (the `embed` folder cleaned) for `build-index --target-recall`, which
  samples its photos as queries."""
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  with open(out / "train_clean.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["landmark_id", "images"])
    writer.writerows(result.clean_rows())
  report = result.report()
  (out / "report.json").write_text(json.dumps(report, indent=2))
  (out / "report.md").write_text(report_markdown(report))
  _write_dropped_csv(report, out / "dropped.csv")
  np.save(out / "centroids.npy", result.centroids.astype(np.float32))
  np.save(
    out / "centroid_labels.npy",
    np.array([label_map.to_label(l) for l in result.centroid_landmarks], np.int64),
  )
  np.save(out / "cluster_sizes.npy", result.cluster_sizes.astype(np.int64))
  References(result.references, [label_map.to_label(l) for l in result.reference_landmarks]).save(
    out
  )
  label_map.save(out / "label_map.json")
  record = {"checkpoint": checkpoint}
  if embeddings_dir is not None:
    record["embeddings"] = str(pathlib.Path(embeddings_dir).absolute())
  (out / "clean.json").write_text(json.dumps(record))
  return report


def build_centroid_index(
  clean_dir: str | os.PathLike,
  config: IndexConfig = IndexConfig(),
  checkpoint_id: str | None = None,
  landmarks_csv: str | os.PathLike | None = None,
) -> CentroidIndex:
  """The index over a `write_cleaning` folder's centroids; the manifest records
  `checkpoint_id` (default: the one the cleaning recorded)."""
  clean = pathlib.Path(clean_dir)
  if not (clean / "centroids.npy").is_file():
    raise MissingFileError(
      f"no cleaning output in {clean} (centroids.npy missing): run `landmark-jax clean` first"
    )
  if checkpoint_id is None and (clean / "clean.json").is_file():
    checkpoint_id = json.loads((clean / "clean.json").read_text()).get("checkpoint")
  centroids = np.load(clean / "centroids.npy", allow_pickle=False)
  labels = np.load(clean / "centroid_labels.npy", allow_pickle=False)
  references = None  # a cleaning from before class references existed has none
  if all((clean / name).is_file() for name in REFERENCE_FILES):
    references = References.load(clean, centroids.shape[1], labels)
  return CentroidIndex.build(
    centroids,
    labels,
    config,
    references=references,
    cluster_sizes=np.load(clean / "cluster_sizes.npy", allow_pickle=False),
    label_map=LabelMap.load(clean / "label_map.json"),
    metadata={"checkpoint": checkpoint_id} if checkpoint_id else None,
    landmarks=load_landmarks_csv(landmarks_csv) if landmarks_csv else None,
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
  if not given and (pathlib.Path(clean_dir) / "clean.json").is_file():
    embeddings_dir = json.loads((pathlib.Path(clean_dir) / "clean.json").read_text()).get(
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
