"""`landmark-jax demo`: the whole pipeline on the embedded dataset, on a CPU, in minutes.

generate the dataset → train the tiny config (two curriculum stages) → embed the training
photos → clean them into per-angle centroids → build the index → calibrate η on the
validation split → recognise the held-out views and unseen non-landmark photos → the paper's
table, a report and plots. Every step writes into one workdir and is skipped on a second run
when its output is there (`fresh=True` starts over).
"""

from __future__ import annotations

import json
import math
import logging
import pathlib
import shutil
import time

from landmark_jax.config import load_config
from landmark_jax.data import source_for
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.eval.calibration import calibrated_index, embed_validation
from landmark_jax.eval.report import evaluate_recognizer, load_locations
from landmark_jax.index import CentroidIndex
from landmark_jax.recognize import Recognizer
from landmark_jax.stages.centroids import build_centroid_index, clean_embeddings, write_cleaning
from landmark_jax.stages.embed import embed_source
from landmark_jax.train.checkpoints import load_trained
from landmark_jax.train.loop import train

logger = logging.getLogger(__name__)

DEMO_CONFIG = "tiny_cpu"  # its cleaning, index and calibration sections are the demo's too


# How the demo describes its own calibration photos (recorded with η in the index).
DEMO_VALIDATION = "the validation split of the demo's data"


def _changed_since_built(index: CentroidIndex) -> str:
  """Why a reused index is not the one the demo made (its users edit it: the walkthrough
  of docs/your-own-landmarks.md did, before it worked on a copy), or ""."""
  edits = index.metadata.get("edits", [])
  if edits:
    ops = ", ".join(f"{e.get('op')} {' '.join(e.get('landmarks', []))}".strip() for e in edits)
    return f"this index was edited after the demo built it ({ops})"
  photos = index.metadata.get("calibration", {}).get("validation_photos")
  if photos is not None and photos != DEMO_VALIDATION:  # None: calibrated by an older demo
    return f"η was calibrated on {photos}, not on the demo's validation split"
  return ""


def _step(name: str, done: bool):
  print(f"\n== {name}" + (" (done before: reused)" if done else ""), flush=True)
  return time.perf_counter()


def run_demo(workdir: str | pathlib.Path = "workdir/demo", *, fresh: bool = False,
             overrides: tuple[str, ...] = ()) -> dict:
  workdir = pathlib.Path(workdir)
  if fresh and workdir.exists():
    shutil.rmtree(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  timings = {}
  start = time.perf_counter()

  t = _step("1/7 embedded dataset", False)
  root = demo_dataset()
  print(f"   {root}")
  timings["dataset"] = time.perf_counter() - t

  config = load_config(DEMO_CONFIG, overrides)
  train_dir = workdir / "train"
  finished = (train_dir / "holdout.json").is_file()
  t = _step("2/7 train the tiny model (2 curriculum stages)", finished)
  result = train(config, train_dir)
  print(f"   {result.steps} steps; held-out classification: "
        f"landmarks {result.holdout['landmark_accuracy']:.1%}, "
        f"non-landmarks {result.holdout['non_landmark_accuracy']:.1%} "
        f"(chance {result.holdout['chance']:.1%})")
  timings["train"] = time.perf_counter() - t
  trained = load_trained(train_dir)

  t = _step("3/7 embed the training photos", (workdir / "embeddings" / "embeddings.json").is_file())
  embeddings = embed_source(trained, source_for(config.data, "train", trained.label_map),
                            workdir / "embeddings")
  timings["embed"] = time.perf_counter() - t

  clean_done = (workdir / "clean" / "report.json").is_file()
  t = _step("4/7 clean: per-landmark clustering into shooting angles", clean_done)
  if not clean_done:
    write_cleaning(clean_embeddings(embeddings, config.cleaning), embeddings.label_map,
                   workdir / "clean", embeddings.checkpoint)
  report = json.loads((workdir / "clean" / "report.json").read_text())
  print(f"   {report['images_before']} → {report['images_after']} landmark photos, "
        f"{report['centroids']} centroids for {report['landmarks_after']} landmarks")
  timings["clean"] = time.perf_counter() - t

  index_dir = workdir / "index"
  index_done = (index_dir / "manifest.json").is_file()
  t = _step("5/7 build the centroid index", index_done)
  if not index_done:
    build_centroid_index(workdir / "clean", config.index,
                         landmarks_csv=root / "landmarks.csv").save(index_dir)
  index = CentroidIndex.load(index_dir)
  print(f"   {len(index)} centroids, {index.backend} backend")
  changed = _changed_since_built(index)
  if changed:
    print(f"   note: {changed}; the figures below include that "
          "(`landmark-jax demo --fresh` starts over)")
  timings["index"] = time.perf_counter() - t

  calibrated = "eta" in index.metadata
  target = config.calibration.target_specificity
  t = _step(f"6/7 calibrate η for {target:.0%} specificity on the validation split", calibrated)
  if not calibrated:
    # Kept with the index (as embeddings), so that `add-landmarks --recalibrate` and
    # `calibrate` without photos can choose η again after an edit.
    validation = embed_validation(Recognizer(trained, index, eta=-math.inf),
                                  source_for(config.data, "val", trained.label_map))
    index, _ = calibrated_index(trained, index, validation, target, DEMO_VALIDATION)
    index.save(index_dir)
  print(f"   η = {index.metadata['eta']:.4f}")
  timings["calibrate"] = time.perf_counter() - t

  t = _step("7/7 recognise held-out views and unseen non-landmark photos", False)
  evaluation = evaluate_recognizer(
      Recognizer(trained, index), source_for(config.data, "test", trained.label_map),
      workdir / "report", training_source=source_for(config.data, "train", trained.label_map),
      rare_threshold=10, locations=load_locations(root / "locations.csv"), title="Demo")
  timings["evaluate"] = time.perf_counter() - t
  timings["total"] = time.perf_counter() - start

  print("\n" + (workdir / "report" / "report.md").read_text().split("![")[0].rstrip())
  print(f"\nReport: {workdir / 'report' / 'report.md'}")
  print(f"Plots:  {workdir / 'report' / 'threshold_sweep.png'}, "
        f"{workdir / 'report' / 'sensitivity_specificity.png'}")
  print(f"Took {timings['total']:.0f} s (" + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()
                                                       if k != "total") + ")")
  (workdir / "timings.json").write_text(json.dumps(timings, indent=2))
  return {"evaluation": evaluation, "timings": timings}
