"""`landmark-jax evaluate-revisited`: Revisited Oxford/Paris mAP with a trained model.

A dataset folder in revisitop's layout: ``jpg/<name>.jpg`` and the ground truth
``gnd_<dataset>.pkl`` (or ``.mat``). Queries are cropped to their bounding box, as the
protocol requires; the database (optionally plus a folder of distractor images, as in R1M)
is ranked by embedding similarity to each query, and scored by the official revisitop
evaluation (`landmark_jax.eval.metrics.revisited_map`). That is the standard protocol.

Two departures towards the paper's protocol (Boiarov & Tyantov 2019, §4), each opt-in and
reported beside the standard numbers, never in their place:

- **Junk pairs** (`read_junk_pairs`, `move_pairs_to_junk`): the paper moved query positives
  of the right landmark shot from another angle, or inside/outside the building, to "junk".
  It did not publish which pairs, so the user supplies the list: a CSV with a header row
  naming the columns ``query`` and ``image`` (other columns are ignored), one
  (query, database image) pair per row, both names exactly as the ground truth's
  ``qimlist`` / ``imlist`` spell them (no folder, no ``.jpg``). A pair that is an easy or
  hard positive of its query becomes junk of that query (junk in every protocol). A pair
  that is already junk, or neither positive nor junk (a negative), is left as it is and
  counted (``already_junk``, ``not_positive``): moving a negative to junk would raise the AP
  by hiding a wrong answer, which is not what the paper did. A name the ground truth does
  not have, or an empty cell, is an error naming the file and line.
- **Through centroids** (`ThroughCentroids`, `rank_through_centroids`): each query is answered
  by the landmark recognizer (nearest per-angle centroid, threshold η) instead of by database
  similarity alone. The index is built by the command from the database itself: Revisited
  Oxford/Paris name each image after the Flickr search that found it
  (``paris_defense_000605`` → ``paris_defense``), so images are grouped by their name
  without the trailing ``_NNNNNN`` (`landmark_of`), except the generic searches
  (``oxford``, ``paris_general``: `GENERIC_PREFIXES`), which name no landmark; each group
  is cleaned and clustered into centroids with the library's own rules
  (`landmark_jax.cleaning.dataset.clean_dataset`, the checkpoint's ``cleaning`` settings) and
  indexed (`CentroidIndex.build`). The ranking, for the official mAP: when the recognizer
  names a landmark, the database images named after that landmark come first, in order of
  similarity to the query, then every other database image (generic searches' and
  distractors included) in order of similarity; when it answers "no landmark" (best
  similarity below η) or names a landmark with no image in the database, the ranking is the
  plain similarity one. Cleaning shapes only the centroids, what the recognizer knows: an
  image it dropped as redundant (a near-duplicate) or as an outlier still counts as its
  landmark's in the ranking, since the ground truth judges images, not our cleaning.
  A query's own landmark — what "recognised correctly" is checked against — is its name's
  prefix; for queries named after a generic search (Oxford's ``oxford_002985``, Paris's
  ``paris_general_002985``) it is the most frequent landmark among its easy and hard
  positives in the ground truth as given (before junk pairs move any).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import math
import os
import pathlib
import re
from typing import Any, Hashable, Iterable, Mapping, Sequence

import numpy as np

from landmark_jax.cleaning.config import CleaningConfig
from landmark_jax.cleaning.dataset import clean_dataset
from landmark_jax.config import apply_overrides
from landmark_jax.data.labels import LabelMap
from landmark_jax.data.tables import open_csv
from landmark_jax.data.transforms import open_image
from landmark_jax.errors import DataError, MissingFileError
from landmark_jax.eval.metrics import (
  PROTOCOLS,
  crop_query,
  load_revisited_gnd,
  refuse_untrusted_pickle,
  revisited_map,
)
from landmark_jax.index import threshold
from landmark_jax.index.centroid_index import CentroidIndex
from landmark_jax.index.config import IndexConfig
from landmark_jax.recognize.decision import Decision
from landmark_jax.recognize.embedder import PhotoEmbedder
from landmark_jax.train.checkpoints import load_trained

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


# Junk pairs ---------------------------------------------------------------------------------

JUNK_PAIRS_COLUMNS = ("query", "image")


@dataclasses.dataclass(frozen=True)
class JunkPair:
  """One (query, database image) pair to relabel as junk; `where` names its source row in
  error messages (``"junk.csv line 3"``)."""

  query: str
  image: str
  where: str = ""


def read_junk_pairs(path: str | os.PathLike) -> list[JunkPair]:
  """The pairs of a junk-pairs CSV (format: this module's docstring), in file order.

  Raises:
    MissingFileError: no such file.
    DataError: no ``query`` / ``image`` header, or a row with an empty name, naming the line.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise MissingFileError(f"junk pairs file {path} not found")
  with open_csv(path, csv.DictReader) as reader:  # a spreadsheet's encoding and quotes
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [c for c in JUNK_PAIRS_COLUMNS if c not in header]
    if missing:
      raise DataError(
        f"{path} line 1: the header must name the columns query,image (got "
        f"{','.join(header) or 'an empty file'}); missing {', '.join(missing)}"
      )
    reader.fieldnames = header  # stripped, so " image" still names the column
    pairs = []
    for row in reader:
      # (DictReader skips blank lines itself.)
      values = [(row.get(c) or "").strip() for c in JUNK_PAIRS_COLUMNS]
      where = f"{path} line {reader.line_num}"
      empty = [c for c, v in zip(JUNK_PAIRS_COLUMNS, values) if not v]
      if empty:
        raise DataError(
          f"{where}: empty {' and '.join(empty)}; each row is query,image with "
          "names as in the ground truth"
        )
      pairs.append(JunkPair(*values, where=where))
  return pairs


def _as_pair(pair: JunkPair | Sequence[str], number: int) -> JunkPair:
  if isinstance(pair, JunkPair):
    return pair if pair.where else dataclasses.replace(pair, where=f"pair {number}")
  query, image = pair
  return JunkPair(str(query), str(image), f"pair {number}")


def move_pairs_to_junk(
  gnd: Mapping[str, Any], pairs: Iterable[JunkPair | Sequence[str]]
) -> tuple[dict[str, Any], dict[str, int]]:
  """A new ground truth in which each listed pair that is a positive (easy or hard) of its
  query is junk of that query instead — junk in every protocol — and what moved.

  `gnd` (as `load_revisited_gnd` returns it) is not changed. Pairs already junk, and pairs
  that are neither positive nor junk, are left as they are and counted; a pair listed again
  is counted once, as a duplicate.

  Returns:
    (new gnd, counts): ``pairs`` (listed), ``moved`` (= ``moved_from_easy`` +
    ``moved_from_hard``), ``already_junk``, ``not_positive``, ``duplicates`` and
    ``queries_changed``.

  Raises:
    DataError: a pair names a query not in ``qimlist`` or an image not in ``imlist``;
      the message names the pair's row.
  """
  query_index = {name: i for i, name in enumerate(gnd["qimlist"])}
  image_index = {name: i for i, name in enumerate(gnd["imlist"])}
  entries = [
    dict(entry) | {key: list(entry.get(key, [])) for key in ("easy", "hard", "junk")}
    for entry in gnd["gnd"]
  ]
  counts = collections.Counter(
    pairs=0,
    moved=0,
    moved_from_easy=0,
    moved_from_hard=0,
    already_junk=0,
    not_positive=0,
    duplicates=0,
  )
  seen, changed = set(), set()
  for number, raw in enumerate(pairs, 1):
    pair = _as_pair(raw, number)
    counts["pairs"] += 1
    if pair.query not in query_index:
      raise DataError(
        f"{pair.where}: query {pair.query!r} is not a query of the ground truth "
        "(its qimlist; names without folder or .jpg)"
      )
    if pair.image not in image_index:
      raise DataError(
        f"{pair.where}: image {pair.image!r} is not a database image of the "
        "ground truth (its imlist; names without folder or .jpg)"
      )
    q, i = query_index[pair.query], image_index[pair.image]
    if (q, i) in seen:
      counts["duplicates"] += 1
      continue
    seen.add((q, i))
    entry = entries[q]
    for kind in ("easy", "hard"):
      if i in entry[kind]:
        entry[kind] = [x for x in entry[kind] if x != i]
        entry["junk"] = entry["junk"] + [i]
        counts[f"moved_from_{kind}"] += 1
        counts["moved"] += 1
        changed.add(q)
        break
    else:
      counts["already_junk" if i in entry["junk"] else "not_positive"] += 1
  counts["queries_changed"] = len(changed)
  return {**gnd, "gnd": entries}, dict(counts)


# Through centroids --------------------------------------------------------------------------

# Revisited Oxford / Paris searches that name no landmark: their images belong to none.
GENERIC_PREFIXES = ("oxford", "paris_general")

_NUMBERED = re.compile(r"^(.+)_\d+$")


def landmark_of(name: str, generic_prefixes: Sequence[str] = GENERIC_PREFIXES) -> str | None:
  """A Revisited Oxford/Paris image's landmark: its name without the trailing ``_NNNNNN``
  (``all_souls_000013`` → ``all_souls``); None for a generic search's image or a name
  without that numbered tail."""
  match = _NUMBERED.match(pathlib.PurePath(name).name)
  if match is None or match.group(1) in generic_prefixes:
    return None
  return match.group(1)


def query_landmarks(
  gnd: Mapping[str, Any], generic_prefixes: Sequence[str] = GENERIC_PREFIXES
) -> list[str | None]:
  """Each query's landmark (module docstring): its name's, else the most frequent among its
  easy + hard positives (ties: the alphabetically first), else None."""
  answers = []
  for name, entry in zip(gnd["qimlist"], gnd["gnd"]):
    landmark = landmark_of(name, generic_prefixes)
    if landmark is None:
      votes = collections.Counter(
        landmark_of(gnd["imlist"][i], generic_prefixes)
        for i in list(entry.get("easy", [])) + list(entry.get("hard", []))
      )
      votes.pop(None, None)
      if votes:
        top = max(votes.values())
        landmark = min(l for l, n in votes.items() if n == top)
    answers.append(landmark)
  return answers


def rank_through_centroids(
  query_embeddings: np.ndarray,
  database_embeddings: np.ndarray,
  database_landmarks: Sequence[Hashable | None],
  recognised: Sequence[Hashable | None],
) -> np.ndarray:
  """(database, queries) ranking through the recognizer's answers.

  For query q recognised as landmark L (``recognised[q]``), the database images whose
  ``database_landmarks`` entry is L come first, then all others; each block in order of
  similarity (dot product) to the query, ties by database order. A query recognised as
  None (no landmark), or as a landmark no database image has, keeps the plain similarity
  ranking (`rank_database`).
  """
  if len(recognised) != len(query_embeddings):
    raise ValueError(f"{len(recognised)} answers for {len(query_embeddings)} queries")
  if len(database_landmarks) != len(database_embeddings):
    raise ValueError(
      f"{len(database_landmarks)} landmarks for {len(database_embeddings)} database images"
    )
  ranks = rank_database(query_embeddings, database_embeddings)
  landmarks = np.empty(len(database_landmarks), dtype=object)
  landmarks[:] = list(database_landmarks)
  for q, landmark in enumerate(recognised):
    if landmark is None:
      continue
    order = ranks[:, q]
    member = landmarks[order] == landmark
    if member.any():
      # A stable partition of the similarity order: each block stays best first.
      ranks[:, q] = np.concatenate([order[member], order[~member]])
  return ranks


@dataclasses.dataclass(frozen=True)
class ThroughCentroids:
  """How `evaluate_revisited` answers queries through the recognizer's decision (module
  docstring).

  Attributes:
    eta: the threshold below which a query is "no landmark" (None: every query gets its
      nearest landmark).
    cleaning: the cleaning settings the database's landmarks are cleaned with.
    index: the index settings.
    generic_prefixes: image-name prefixes that name no landmark.
  """

  eta: float | None = None
  cleaning: CleaningConfig = CleaningConfig()
  index: IndexConfig = IndexConfig()
  generic_prefixes: tuple[str, ...] = GENERIC_PREFIXES


def database_centroid_index(
  names: Sequence[str],
  embeddings: np.ndarray,
  cleaning: CleaningConfig = CleaningConfig(),
  index_config: IndexConfig = IndexConfig(),
  generic_prefixes: Sequence[str] = GENERIC_PREFIXES,
):
  """The database's images grouped by `landmark_of`, cleaned, as a centroid index.

  Returns:
    (index, the `CleaningResult`).
  """
  landmarks = [landmark_of(name, generic_prefixes) for name in names]
  if not any(l is not None for l in landmarks):
    raise DataError(
      "--through-centroids: no database image is named after a landmark "
      "(<landmark>_<number>, generic prefixes "
      f"{', '.join(generic_prefixes) or 'none'} excluded)"
    )
  result = clean_dataset(list(names), landmarks, embeddings, cleaning)
  if not len(result.centroids):
    raise DataError(
      "--through-centroids: cleaning kept no centroid of the database's "
      "landmarks; loosen the cleaning settings (key=value)"
    )
  label_map = LabelMap.from_ids(result.centroid_landmarks)
  index = CentroidIndex.build(
    result.centroids,
    [label_map.to_label(l) for l in result.centroid_landmarks],
    index_config,
    cluster_sizes=result.cluster_sizes,
    label_map=label_map,
  )
  return index, result


def _scores(ranks: np.ndarray, gnd, protocols, kappas) -> dict[str, Any]:
  results = {p: revisited_map(ranks, gnd, p, kappas) for p in protocols}
  return {
    p: {"mAP": r["mAP"], "mP@k": r["mP@k"], "queries": r["queries"]} for p, r in results.items()
  }


def _through_centroids(
  how: ThroughCentroids,
  database_names: Sequence[str],
  gnd,
  query_embeddings,
  database_embeddings,
  own_landmarks,
  protocols,
  kappas,
):
  index, cleaning = database_centroid_index(
    database_names,
    database_embeddings[: len(database_names)],
    how.cleaning,
    how.index,
    how.generic_prefixes,
  )
  # The database's own index and label map: the decision needs nothing of the model.
  eta = -math.inf if how.eta is None else how.eta
  predictions = Decision(index, eta=eta).predict(query_embeddings)
  recognised = [p.landmark_id for p in predictions]
  distractors = len(database_embeddings) - len(database_names)
  named = [landmark_of(name, how.generic_prefixes) for name in database_names]
  ranks = rank_through_centroids(
    query_embeddings, database_embeddings, named + [None] * distractors, recognised
  )
  indexed = set(index.label_map.landmark_ids)
  outcome = collections.Counter(
    "rejected" if got is None else "correct" if got == own else "wrong"
    for got, own in zip(recognised, own_landmarks)
  )
  return {
    **_scores(ranks, gnd["gnd"], protocols, kappas),
    "recognised_correctly": outcome["correct"],
    "recognised_wrongly": outcome["wrong"],
    "rejected": outcome["rejected"],
    "query_landmark_not_in_index": sum(own not in indexed for own in own_landmarks),
    "eta": None if how.eta is None else threshold.as_threshold(how.eta),
    "index": {
      "landmarks": len(indexed),
      "centroids": len(index),
      "database_images_kept": int(cleaning.keep.sum()),
      "landmarks_kept_whole": sorted(map(str, cleaning.landmarks_kept_whole)),
    },
    "per_query": [
      {"query": name, "landmark": own, "recognised": got, "score": p.score}
      for name, own, got, p in zip(gnd["qimlist"], own_landmarks, recognised, predictions)
    ],
  }


def evaluate_revisited(
  embed,
  root: str | os.PathLike,
  gnd: str | os.PathLike | Mapping[str, Any],
  *,
  distractors: str | os.PathLike | None = None,
  trust_pickle: bool = False,
  protocols: Sequence[str] = PROTOCOLS,
  kappas=(1, 5, 10),
  junk_pairs: str | os.PathLike | Iterable[JunkPair | Sequence[str]] | None = None,
  through_centroids: ThroughCentroids | None = None,
) -> dict[str, Any]:
  """mAP / mP@k per protocol.

  Args:
    embed: photos (paths or PIL images) → (N, D) unit embeddings, e.g.
      `PhotoEmbedder(trained).embed`.
    root: the folder holding ``jpg/``.
    gnd: the ground-truth file, or one already loaded by `load_revisited_gnd`.
    distractors: a folder of extra database images (never positives nor junk).
    trust_pickle: allow a ``.pkl`` ground truth, which can run code when loaded
      (`load_revisited_gnd`).
    junk_pairs: a junk-pairs CSV, or (query, image) pairs, moved to junk first
      (`move_pairs_to_junk`); the result's ``junk_pairs`` says what moved.
    through_centroids: also rank through the recognizer (`ThroughCentroids`); the result's
      ``through_centroids`` holds those scores beside the standard ones.

  Returns:
    ``database_images``, ``queries``, ``distractors``, one entry per protocol with the
    standard (similarity) ranking's ``mAP``, ``mP@k`` and ``queries`` scored, and
    ``junk_pairs`` / ``through_centroids`` when asked for.
  """
  root = pathlib.Path(root)
  images = root / "jpg" if (root / "jpg").is_dir() else root
  if not isinstance(gnd, Mapping):
    gnd = load_revisited_gnd(gnd, trust_pickle=trust_pickle)
  generic = through_centroids.generic_prefixes if through_centroids else GENERIC_PREFIXES
  own_landmarks = query_landmarks(gnd, generic)  # before junk pairs take positives away
  moved = None
  if junk_pairs is not None:
    if isinstance(junk_pairs, (str, os.PathLike)):
      junk_pairs = read_junk_pairs(junk_pairs)
    gnd, moved = move_pairs_to_junk(gnd, junk_pairs)
  database = [str(_find_image(images, name)) for name in gnd["imlist"]]
  if distractors:
    database += sorted(
      str(p) for p in pathlib.Path(distractors).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
    )
  queries = [
    crop_query(open_image(str(_find_image(images, name))), entry["bbx"])
    for name, entry in zip(gnd["qimlist"], gnd["gnd"])
  ]
  query_embeddings, database_embeddings = embed(queries), embed(database)
  ranks = rank_database(query_embeddings, database_embeddings)
  result = {
    "database_images": len(database),
    "queries": len(queries),
    "distractors": len(database) - len(gnd["imlist"]),
    **_scores(ranks, gnd["gnd"], protocols, kappas),
  }
  if moved is not None:
    result["junk_pairs"] = moved
  if through_centroids is not None:
    result["through_centroids"] = _through_centroids(
      through_centroids,
      gnd["imlist"],
      gnd,
      query_embeddings,
      database_embeddings,
      own_landmarks,
      protocols,
      kappas,
    )
  return result


def evaluate_revisited_checkpoint(
  checkpoint: str | os.PathLike,
  root: str | os.PathLike,
  gnd: str | os.PathLike,
  *,
  trust_pickle: bool = False,
  distractors: str | os.PathLike | None = None,
  junk_pairs: str | os.PathLike | None = None,
  through_centroids: bool = False,
  eta: float | None = None,
  cleaning_overrides: Sequence[str] = (),
  generic_prefixes: Sequence[str] | None = None,
  batch_size: int = 16,
) -> dict[str, Any]:
  """`landmark-jax evaluate-revisited`: `evaluate_revisited` with a trained model's
  embeddings. An untrusted pickle and an unknown name in the junk pairs (a CSV) are
  refused before the model loads; `through_centroids` cleans the database with the
  checkpoint's ``cleaning`` settings (`cleaning_overrides`, key=value, change them) and
  answers at `eta` (None: every query gets its nearest landmark)."""
  refuse_untrusted_pickle(gnd, trust_pickle)
  truth = load_revisited_gnd(gnd, trust_pickle=trust_pickle)
  pairs = None
  if junk_pairs:
    pairs = read_junk_pairs(junk_pairs)
    move_pairs_to_junk(truth, pairs)  # names checked now, not after the embedding
  trained = load_trained(checkpoint)
  through = None
  if through_centroids:
    prefixes = {} if generic_prefixes is None else {"generic_prefixes": tuple(generic_prefixes)}
    cleaning = apply_overrides(trained.config.cleaning, cleaning_overrides)
    through = ThroughCentroids(eta, cleaning, trained.config.index, **prefixes)
  result = evaluate_revisited(
    PhotoEmbedder(trained, batch_size=batch_size).embed,
    root,
    truth,
    distractors=distractors,
    junk_pairs=pairs,
    through_centroids=through,
  )
  if junk_pairs:
    result["junk_pairs"] = {"file": str(junk_pairs), **result["junk_pairs"]}
  return result
