"""`landmark-jax clean`: embedded photos → the cleaned dataset, its report and the centroids.

Output folder: ``train_clean.csv`` (GLDv2 format: ``landmark_id,images``), ``report.json`` /
``report.md``, ``dropped.csv`` (every landmark that lost photos or was kept whole:
``landmark_id,photos,kept,dropped,centroids,reason``), ``centroids.npy`` (L2-normalised),
``centroid_labels.npy`` (dense labels), ``cluster_sizes.npy``, ``references.npy`` /
``reference_labels.npy`` (the class references: given reference photos, else each valid
cluster's medoid), ``label_map.json`` and, last, ``clean.json`` (the model and the
embeddings it came from): a folder without it is an unfinished cleaning (`is_done`).
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
from landmark_jax.data.tables import read_csv
from landmark_jax.embedding import EmbeddedPhotos
from landmark_jax.errors import DataError
from landmark_jax.index.references import References
from landmark_jax.stages.embed import load_embeddings
from landmark_jax.text import spreadsheet_row

REPORT_FILE = "report.json"
RECORD_FILE = "clean.json"  # written last


def is_done(out_dir: str | os.PathLike) -> bool:
  """Whether `out_dir` holds a finished cleaning (`write_cleaning`)."""
  return (pathlib.Path(out_dir) / RECORD_FILE).is_file()


def load_report(out_dir: str | os.PathLike) -> dict:
  """The report of the cleaning in `out_dir` (`CleaningResult.report`)."""
  return json.loads((pathlib.Path(out_dir) / REPORT_FILE).read_text())


def clean_embeddings(
  embeddings: EmbeddedPhotos,
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
  embeddings: EmbeddedPhotos, reference_ids: Sequence[str]
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
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(DROPPED_CSV_COLUMNS)
    writer.writerows(
      spreadsheet_row(row[c] for c in DROPPED_CSV_COLUMNS) for row in report["affected_landmarks"]
    )


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
  with open(out / "train_clean.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["landmark_id", "images"])
    writer.writerows(map(spreadsheet_row, result.clean_rows()))
  report = result.report()
  (out / REPORT_FILE).write_text(json.dumps(report, indent=2))
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
  (out / RECORD_FILE).write_text(json.dumps(record))
  return report


def clean_folder(
  embeddings_dir: str | os.PathLike,
  out_dir: str | os.PathLike,
  config: CleaningConfig = CleaningConfig(),
  references_csv: str | os.PathLike | None = None,
) -> dict:
  """Cleans the photos of an ``embed`` folder into `out_dir` (`write_cleaning`); a
  references CSV (`read_reference_ids`) names reference photos. Returns the report."""
  reference_ids = read_reference_ids(references_csv) if references_csv else []
  embeddings = load_embeddings(embeddings_dir)
  return write_cleaning(
    clean_embeddings(embeddings, config, reference_ids),
    embeddings.label_map,
    out_dir,
    embeddings.checkpoint,
    embeddings_dir,
  )
