"""`landmark-jax demo`: the whole pipeline on the embedded dataset, on a CPU, in minutes.

generate the dataset → train the tiny config (one stage: see `tiny_cpu`) on every training
photo → embed them → clean them (per-landmark clustering; photos outside valid clusters are
dropped) → train again from scratch on the photos cleaning kept plus every non-landmark photo
→ embed those with the new model → clean them into per-angle centroids → build the index →
calibrate η on the validation split → recognise the held-out views and unseen non-landmark
photos → the paper's table, a report and plots.

The first round lives in ``round1/`` (``train``, ``embeddings``, ``clean``); ``train/``,
``embeddings/``, ``clean/``, ``index/`` and ``report/`` are the second round's, so
``train/`` is the model behind ``index/``. `second_round=False` (``--single-round``) trains
once, as `landmark-jax ablation` does. Every step writes into one workdir and is skipped on
a second run when its output is there (`fresh=True` starts over).
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time

from landmark_jax.config import load_config
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.eval.scoring import load_locations
from landmark_jax.experiment import ROUND1, check_same_config, run_pipeline
from landmark_jax.index import CentroidIndex

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


# The demo's headline for each of the pipeline's steps (`experiment.run_pipeline`'s names),
# in order, after "embedded dataset"; the second round's first.
_SECOND_ROUND_STEPS = {
  "round1/train": "train the tiny model on every training photo",
  "round1/embed": "embed the training photos",
  "round1/clean": "clean: per-landmark clustering into shooting angles; photos outside a "
  "valid cluster are dropped",
  "train": "train again from scratch on the photos cleaning kept (+ the non-landmark ones)",
  "embed": "embed those photos with the new model",
  "clean": "clean them again into per-angle centroids",
}
_SINGLE_ROUND_STEPS = {
  "train": "train the tiny model",
  "embed": "embed the training photos",
  "clean": "clean: per-landmark clustering into shooting angles",
}
_LAST_STEPS = {
  "index": "build the centroid index",
  "calibrate": "calibrate η for {target:.0%} specificity on the validation split",
  "evaluate": "recognise held-out views and unseen non-landmark photos",
}


def demo_steps(second_round: bool, target: float) -> dict[str, str]:
  """Step name → its numbered headline ("2/10 train …"); step 1 is the dataset."""
  steps = {**(_SECOND_ROUND_STEPS if second_round else _SINGLE_ROUND_STEPS), **_LAST_STEPS}
  total = len(steps) + 1
  return {
    "dataset": f"1/{total} embedded dataset",
    **{
      name: f"{i}/{total} {text.format(target=target)}"
      for i, (name, text) in enumerate(steps.items(), start=2)
    },
  }


def _announce(name: str, done: bool) -> None:
  print(f"\n== {name}" + (" (done before: reused)" if done else ""), flush=True)


def _say(text: str) -> None:
  print(f"   {text}", flush=True)


def _note_changes(index: CentroidIndex) -> None:
  changed = _changed_since_built(index)
  if changed:
    _say(
      f"note: {changed}; the figures below include that (`landmark-jax demo --fresh` starts over)"
    )


def run_demo(
  workdir: str | pathlib.Path = "workdir/demo",
  *,
  fresh: bool = False,
  overrides: tuple[str, ...] = (),
  second_round: bool = True,
) -> dict:
  workdir = pathlib.Path(workdir)
  config = load_config(DEMO_CONFIG, overrides)  # a mistake in an override costs nothing
  if fresh and workdir.exists():
    shutil.rmtree(workdir)
  check_same_config(workdir, config, "`landmark-jax demo --fresh`", second_round=second_round)
  workdir.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  steps = demo_steps(second_round, config.calibration.target_specificity)

  _announce(steps["dataset"], False)
  root = demo_dataset()
  _say(str(root))
  dataset_seconds = time.perf_counter() - start

  result = run_pipeline(
    config,
    workdir,
    validation_photos=DEMO_VALIDATION,
    second_round=second_round,
    landmarks_csv=root / "landmarks.csv",
    locations=load_locations(root / "locations.csv"),
    title="Demo",
    rare_threshold=10,
    announce=lambda step, done: _announce(steps[step], done),
    say=_say,
    check_index=_note_changes,
  )
  timings = {"dataset": dataset_seconds, **result.timings, "total": time.perf_counter() - start}

  report = workdir / "report"
  print("\n" + (report / "report.md").read_text().split("![")[0].rstrip())
  print(f"\nReport: {report / 'report.md'}")
  print(
    "Plots:  "
    + ", ".join(
      str(report / name)
      for name in ("threshold_sweep.png", "sensitivity_specificity.png", "score_distributions.png")
    )
  )
  rounds = (workdir / ROUND1, workdir) if second_round else (workdir,)
  print("Cleaning: " + ", ".join(str(folder / "clean" / "report.md") for folder in rounds))
  print(
    f"Took {timings['total']:.0f} s ("
    + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items() if k != "total")
    + ")"
  )
  (workdir / "timings.json").write_text(json.dumps(timings, indent=2))
  return {"evaluation": result.evaluation, "timings": timings}
