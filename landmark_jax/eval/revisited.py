"""`landmark-jax evaluate-revisited`: Revisited Oxford/Paris mAP with a trained model.

A dataset folder in revisitop's layout: ``jpg/<name>.jpg`` and the ground truth
``gnd_<dataset>.pkl`` (or ``.mat``). Queries are cropped to their bounding box, as the
protocol requires; the database (optionally plus a folder of distractor images, as in R1M)
is ranked by embedding similarity to each query.
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, Sequence

import numpy as np

from landmark_jax.data.transforms import open_image
from landmark_jax.errors import MissingFileError
from landmark_jax.eval.metrics import PROTOCOLS, crop_query, load_revisited_gnd, revisited_map

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _find_image(folder: pathlib.Path, name: str) -> pathlib.Path:
  for suffix in ("",) + IMAGE_SUFFIXES:
    path = folder / f"{name}{suffix}"
    if path.is_file():
      return path
  raise MissingFileError(f"image {name!r} of the ground truth not found in {folder}")


def rank_database(query_embeddings: np.ndarray, database_embeddings: np.ndarray) -> np.ndarray:
  """(database, queries) indices, most similar first: the official evaluation's layout."""
  similarity = database_embeddings @ query_embeddings.T
  return np.argsort(-similarity, axis=0, kind="stable")


def evaluate_revisited(embed, root: str | os.PathLike, gnd_file: str | os.PathLike, *,
                       distractors: str | os.PathLike | None = None,
                       trust_pickle: bool = False,
                       protocols: Sequence[str] = PROTOCOLS, kappas=(1, 5, 10)) -> dict[str, Any]:
  """mAP / mP@k per protocol.

  Args:
    embed: photos (paths or PIL images) → (N, D) unit embeddings, e.g.
      `PhotoEmbedder(trained).embed`.
    root: the folder holding ``jpg/``.
    distractors: a folder of extra database images (never positives nor junk).
    trust_pickle: allow a ``.pkl`` ground truth, which can run code when loaded
      (`load_revisited_gnd`).
  """
  root = pathlib.Path(root)
  images = root / "jpg" if (root / "jpg").is_dir() else root
  gnd = load_revisited_gnd(gnd_file, trust_pickle=trust_pickle)
  database = [str(_find_image(images, name)) for name in gnd["imlist"]]
  if distractors:
    database += sorted(str(p) for p in pathlib.Path(distractors).rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES)
  queries = [crop_query(open_image(str(_find_image(images, name))), entry["bbx"])
             for name, entry in zip(gnd["qimlist"], gnd["gnd"])]
  ranks = rank_database(embed(queries), embed(database))
  results = {p: revisited_map(ranks, gnd["gnd"], p, kappas) for p in protocols}
  return {"database_images": len(database), "queries": len(queries),
          "distractors": len(database) - len(gnd["imlist"]),
          **{p: {"mAP": r["mAP"], "mP@k": r["mP@k"], "queries": r["queries"]}
             for p, r in results.items()}}
