"""One run of the whole pipeline on a config's data: train → embed the training photos →
clean them into per-angle centroids → build the index → calibrate η on the validation split
→ recognise the test split and write the report.

With `second_round`, cleaning feeds training as the paper means it: a first round trains on
every photo, embeds and cleans (``round1/``), then the model is trained again from scratch
on the photos that cleaning kept plus every non-landmark photo, and that model's embeddings
are cleaned into the centroids the index holds. The workdir's ``train/``, ``embeddings/``
and ``clean/`` always belong to the model behind ``index/``.

The demo runs it once (with the second round); `landmark-jax ablation` runs it per training
variant and seed (without). Every step writes into one workdir and is skipped on a second
run when its output is there, so a killed run resumes at the step it was in (training itself
resumes from its checkpoint).
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import time
from typing import Any, Callable, Mapping

from landmark_jax.config import TrainConfig
from landmark_jax.data import ImageSource, source_for
from landmark_jax.errors import ConfigError
from landmark_jax.eval.calibration import calibrated_index, embed_validation, is_calibrated
from landmark_jax.eval.collection import MIN_PHOTOS
from landmark_jax.eval.report import evaluate_source
from landmark_jax.geo import Location
from landmark_jax.index import CentroidIndex
from landmark_jax.recognize.decision import Decision
from landmark_jax.recognize.embedder import PhotoEmbedder
from landmark_jax.stages import build_index, clean, embed
from landmark_jax.train import loop
from landmark_jax.train.checkpoints import CHECKPOINTS_DIR, CONFIG_FILE, TrainedModel, load_trained

# What a run says as it goes: a step starting (and whether its output was reused), then
# lines about it. The demo prints; the ablation stays quiet.
Announce = Callable[[str, bool], None]
Say = Callable[[str], None]


def _silent(*_args) -> None:
  pass


@dataclasses.dataclass
class PipelineResult:
  evaluation: dict[str, Any]  # the report's figures (`evaluate_recognizer`)
  timings: dict[str, float]  # seconds per step
  index: CentroidIndex  # the calibrated index


# Where the first of two rounds writes its train/, embeddings/ and clean/ (`second_round`).
ROUND1 = "round1"


def retrain_config(config: TrainConfig, workdir: str | os.PathLike) -> TrainConfig:
  """The second round's config: `config` trained on the photos the first round's cleaning
  kept (``round1/clean/train_clean.csv``, an absolute path) and every non-landmark photo."""
  clean_csv = pathlib.Path(workdir).resolve() / ROUND1 / "clean" / "train_clean.csv"
  return dataclasses.replace(
    config, data=dataclasses.replace(config.data, clean_csv=str(clean_csv))
  )


def check_same_config(
  workdir: str | os.PathLike, config: TrainConfig, fresh_flag: str, *, second_round: bool = False
) -> None:
  """Refuses a workdir whose run was made with another config, or with(out) the second
  round: its steps would be reused and the figures reported under settings they were not
  made with. The error names the differing keys and `fresh_flag`, the way to start over."""
  workdir = pathlib.Path(workdir)
  made_in_two = (workdir / ROUND1).is_dir()
  if made_in_two != second_round and (made_in_two or (workdir / "train").is_dir()):
    raise ConfigError(
      f"{workdir} holds a run {'with' if made_in_two else 'without'} the "
      f"second round (training again on the cleaned photos): use {fresh_flag} "
      "to start over, or another --workdir"
    )
  runs = (
    [(workdir / ROUND1, config), (workdir, retrain_config(config, workdir))]
    if second_round
    else [(workdir, config)]
  )
  for run_dir, run_config in runs:
    path = run_dir / "train" / CONFIG_FILE
    # A run stopped before its first checkpoint (weights it could not read, say) made
    # nothing that other settings could contradict: it does not hold the workdir.
    checkpoints = run_dir / "train" / CHECKPOINTS_DIR
    trained = checkpoints.is_dir() and any(checkpoints.iterdir())
    changed = loop.changed_settings(path, run_config) if path.is_file() and trained else ""
    if changed:
      raise ConfigError(
        f"{workdir} holds a run made with other settings ({changed}): use "
        f"{fresh_flag} to start over, or another --workdir"
      )


def run_pipeline(
  config: TrainConfig,
  workdir: str | os.PathLike,
  *,
  validation_photos: str,
  second_round: bool = False,
  landmarks_csv: str | os.PathLike | None = None,
  locations: Mapping[str, Location] | None = None,
  geo: bool = False,
  title: str = "Evaluation",
  rare_threshold: int = 10,
  min_photos: int = MIN_PHOTOS,
  progress: bool = True,
  announce: Announce = _silent,
  say: Say = _silent,
  check_index: Callable[[CentroidIndex], None] = _silent,
  trainer: Any = loop,
) -> PipelineResult:
  """Runs (or finishes) the pipeline in `workdir`: ``train/``, ``embeddings/``, ``clean/``,
  ``index/`` and ``report/`` (and first ``round1/{train,embeddings,clean}/`` with
  `second_round`). Steps are announced by the folder they write: ``round1/train`` …
  ``train``, ``embed``, ``clean``, ``index``, ``calibrate``, ``evaluate``; `timings` has the
  same keys.

  Args:
    validation_photos: how the index records the photos η was calibrated on.
    second_round: train again, from scratch with the same config, on the photos the first
      round's cleaning kept (plus every non-landmark photo), and index that model.
    landmarks_csv: names and coordinates of the landmarks, for the index.
    locations: photo id → where it was taken, for the report's geo table.
    geo: the geo table from the test photos' own EXIF GPS, where `locations` is not given.
    check_index: called with the index before calibration (the demo notes edits in it).
    trainer: what makes the model in ``train/``: a module with `is_done(workdir)` and
      `train(config, workdir, progress=…)`, `train.loop` (training) or `stages.whiten`
      (`fit --no-train`'s whitened pretrained backbone).
  """
  workdir = pathlib.Path(workdir)
  timings = {}

  if second_round:
    _, all_photos, report = _train_embed_clean(
      config, workdir / ROUND1, f"{ROUND1}/", progress, announce, say, timings, trainer
    )
    if report["landmarks_dropped"]:
      # The retrained model would not know them, yet the validation and test photos name them.
      raise ConfigError(
        f"the first round's cleaning dropped every photo of {len(report['landmarks_dropped'])}"
        f" landmark(s) ({', '.join(report['landmarks_dropped'][:3])}): a model retrained "
        "without them cannot be evaluated on their photos; keep them "
        "(cleaning.keep_landmarks_without_cluster=True) or run a single round"
      )
    say(
      f"the second round trains on these {report['images_after']} and the "
      f"{report['non_landmark_images']} non-landmark photos"
    )
    config = retrain_config(config, workdir)
  trained, training_photos, _ = _train_embed_clean(
    config, workdir, "", progress, announce, say, timings, trainer
  )
  if second_round:
    # Rare and frequent landmarks by the dataset's photo counts, not the cleaned ones: the
    # report's breakdown is then the same with and without the second round.
    training_photos = all_photos

  index_dir = workdir / "index"
  index_done = build_index.is_done(index_dir)
  t = _timed(announce, "index", index_done)
  if not index_done:
    build_index.build_centroid_index(
      workdir / "clean", config.index, landmarks_csv=landmarks_csv
    ).save(index_dir)
  index = CentroidIndex.load(index_dir)
  say(f"{len(index)} centroids, {index.backend} backend")
  check_index(index)
  timings["index"] = time.perf_counter() - t

  # One embedder for the validation and the test photos: the model goes to the devices once.
  embedder = PhotoEmbedder(trained)
  calibrated = is_calibrated(index)
  t = _timed(announce, "calibrate", calibrated)
  if not calibrated:
    # Kept with the index (as embeddings), so that `add-landmarks --recalibrate` and
    # `calibrate` without photos can choose η again after an edit.
    validation = embed_validation(embedder, source_for(config.data, "val", trained.label_map))
    index, _ = calibrated_index(
      index,
      validation,
      config.calibration.target_specificity,
      validation_photos,
      label_map=trained.label_map,
    )
    index.save(index_dir)
  rho = index.metadata.get("reference_threshold")
  alone = index.metadata.get("eta_without_references")
  say(
    f"η = {index.metadata['eta']:.4f}"
    + (f" with ρ = {rho:.4f}" if rho is not None else "")
    # The evaluation's headline, the paper's offline test, applies η alone.
    + (f" (η alone: {alone:.4f}, the paper's offline test)" if alone is not None else "")
  )
  timings["calibrate"] = time.perf_counter() - t

  t = _timed(announce, "evaluate", False)
  evaluation = evaluate_source(
    embedder,
    Decision(index, label_map=index.label_map or trained.label_map),
    source_for(config.data, "test", trained.label_map),
    workdir / "report",
    training_source=training_photos,
    rare_threshold=rare_threshold,
    locations=locations,
    geo=geo,
    title=title,
    min_photos=min_photos,
  )
  timings["evaluate"] = time.perf_counter() - t
  return PipelineResult(evaluation, timings, index)


def _train_embed_clean(
  config: TrainConfig,
  workdir: pathlib.Path,
  prefix: str,
  progress: bool,
  announce: Announce,
  say: Say,
  timings: dict[str, float],
  trainer: Any,
) -> tuple[TrainedModel, ImageSource, dict]:
  """Trains `config` in ``workdir/train``, embeds its training photos into
  ``workdir/embeddings`` and cleans them into ``workdir/clean``, each step reused when
  done; the steps are named `prefix` + train, embed, clean. Returns the model, its training
  photos and the cleaning report."""
  train_dir = workdir / "train"
  t = _timed(announce, f"{prefix}train", trainer.is_done(train_dir))
  result = trainer.train(config, train_dir, progress=progress)
  if result.holdout:
    say(
      f"{result.steps} steps; held-out classification: "
      f"landmarks {result.holdout['landmark_accuracy']:.1%}, "
      f"non-landmarks {result.holdout['non_landmark_accuracy']:.1%} "
      f"(chance {result.holdout['chance']:.1%})"
    )
  timings[f"{prefix}train"] = time.perf_counter() - t
  trained = load_trained(train_dir)
  training_photos = source_for(config.data, "train", trained.label_map)

  embed_dir = workdir / "embeddings"
  t = _timed(announce, f"{prefix}embed", embed.is_done(embed_dir))
  embeddings = embed.embed_to_folder(trained, training_photos, embed_dir, progress=progress)
  timings[f"{prefix}embed"] = time.perf_counter() - t

  clean_dir = workdir / "clean"
  clean_done = clean.is_done(clean_dir)
  t = _timed(announce, f"{prefix}clean", clean_done)
  if not clean_done:
    # The embeddings folder is recorded: `build-index --target-recall` samples its photos.
    clean.write_cleaning(
      clean.clean_embeddings(embeddings, config.cleaning),
      embeddings.label_map,
      clean_dir,
      embeddings.checkpoint,
      embed_dir,
    )
  report = clean.load_report(clean_dir)
  say(
    f"{report['images_before']} → {report['images_after']} landmark photos, "
    f"{report['centroids']} centroids for {report['landmarks_after']} landmarks"
  )
  timings[f"{prefix}clean"] = time.perf_counter() - t
  return trained, training_photos, report


def _timed(announce: Announce, step: str, done: bool) -> float:
  announce(step, done)
  return time.perf_counter()
