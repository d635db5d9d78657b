"""`landmark-jax ablation`: the paper's training variants on the same data, budget and seeds,
each through the whole pipeline (embed, clean, index, calibrate η, evaluate), as one table
and one plot.

The variants build up the paper's method one part at a time (Boiarov & Tyantov 2019, §3–4):
softmax over the n landmarks only; + the non-landmark class; + the modified center loss;
+ curriculum learning over the geographic parts (the full recipe); and ArcFace in place of
softmax + center loss for reference. Everything else — data, budget, cleaning, index,
calibration — is the config's, the same for every variant. Each (variant, seed) runs in its
own folder and is reused when finished, so a killed ablation resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import time
from typing import Any, Callable, Sequence

import numpy as np

from landmark_jax.config import load_config
from landmark_jax.data import source_for
from landmark_jax.data.catalog import has_split
from landmark_jax.data.labels import UnknownLandmarkError
from landmark_jax.errors import ConfigError, DataError
from landmark_jax.eval.collection import MIN_PHOTOS
from landmark_jax.eval.plots import plot_ablation
from landmark_jax.experiment import check_same_config, run_pipeline
from landmark_jax.folders import atomic_write_text


@dataclasses.dataclass(frozen=True)
class Variant:
  name: str  # the folder and the CLI's --variants name
  label: str  # the table's row
  overrides: tuple[str, ...]


# Every variant sets the same keys, so that no setting of the user's config leaks into one
# variant and not another.
VARIANTS = (
  Variant(
    "softmax_n",
    "softmax over n landmarks",
    ("loss.kind=softmax", "loss.non_landmark_class=False", "curriculum.enabled=False"),
  ),
  Variant(
    "non_landmark",
    "+ non-landmark class",
    ("loss.kind=softmax", "loss.non_landmark_class=True", "curriculum.enabled=False"),
  ),
  Variant(
    "center_loss",
    "+ center loss",
    ("loss.kind=softmax_center", "loss.non_landmark_class=True", "curriculum.enabled=False"),
  ),
  Variant(
    "curriculum",
    "+ curriculum (the paper's method)",
    ("loss.kind=softmax_center", "loss.non_landmark_class=True", "curriculum.enabled=True"),
  ),
  Variant(
    "arcface",
    "ArcFace instead of softmax + center loss (reference)",
    ("loss.kind=arcface", "loss.non_landmark_class=True", "curriculum.enabled=True"),
  ),
)
VARIED_KEYS = ("loss.kind", "loss.non_landmark_class", "curriculum.enabled", "seed")
METRICS = (
  ("sensitivity", "sensitivity"),
  ("specificity", "specificity"),
  ("top1_accuracy", "top-1"),
  ("gap", "GAP"),
)
DEFAULT_SEEDS = (0, 1, 2)


def variants_named(names: Sequence[str] | None) -> tuple[Variant, ...]:
  if not names:
    return VARIANTS
  known = {v.name: v for v in VARIANTS}
  unknown = [n for n in names if n not in known]
  if unknown:
    raise ConfigError(f"unknown variant {unknown[0]!r}: one of {', '.join(known)}")
  return tuple(known[n] for n in names)


def check_overrides(overrides: Sequence[str]) -> None:
  """The keys the ablation varies cannot be set for all variants at once."""
  for override in overrides:
    if override.strip().isdigit():  # `--seeds 0 1`: the second seed lands among the overrides
      raise ConfigError(
        f"override {override!r} is not key=value; several seeds are comma-separated: --seeds 0,1,2"
      )
    key = override.split("=", 1)[0].strip()
    if key in VARIED_KEYS:
      raise ConfigError(
        f"{key} is what the ablation varies (see --variants and --seeds); "
        "leave it out of the overrides"
      )


def check_splits(data) -> None:
  """Reads the splits' CSVs before any training: a validation or test photo of a landmark
  the training data lacks would otherwise stop the first run after it trained."""
  label_map = source_for(data, "train").label_map
  for split, name in (("val", "validation"), ("test", "test")):
    try:
      source_for(data, split, label_map)
    except UnknownLandmarkError as error:
      raise DataError(
        f"the {name} split has photos of a landmark the training photos do not have: {error}"
      ) from None


def run_config(config_name: str, overrides: Sequence[str], variant: Variant, seed: int):
  return load_config(config_name, (*overrides, *variant.overrides, f"seed={seed}"))


def run_ablation(
  config_name: str,
  workdir: str | os.PathLike,
  *,
  overrides: Sequence[str] = (),
  seeds: Sequence[int] = DEFAULT_SEEDS,
  variants: Sequence[Variant] = VARIANTS,
  fresh: bool = False,
  min_photos: int = MIN_PHOTOS,
  log: Callable[[str], None] = print,
) -> dict[str, Any]:
  """Runs every (variant, seed) not finished yet in `workdir` and writes ``ablation.json``,
  ``ablation.md`` and ``ablation.png`` there; returns what ablation.json holds."""
  check_overrides(overrides)
  if not seeds:
    raise ConfigError("give at least one seed")
  configs = {(v.name, s): run_config(config_name, overrides, v, s) for v in variants for s in seeds}
  data = next(iter(configs.values())).data
  missing = [split for split in ("val", "test") if not has_split(data, split)]
  if missing:
    raise ConfigError(
      f"the ablation calibrates η on a validation split and evaluates on a "
      f"test split; this config's data has no {' or '.join(missing)} split: "
      f"set {' and '.join(f'data.{split}_csv' for split in missing)}"
    )
  check_splits(data)
  workdir = pathlib.Path(workdir)
  if fresh and workdir.exists():
    shutil.rmtree(workdir)
  for (name, seed), config in configs.items():  # before any work: all or nothing
    check_same_config(workdir / name / f"seed-{seed}", config, "--fresh")
  workdir.mkdir(parents=True, exist_ok=True)
  runs = []
  for (name, seed), config in configs.items():
    run_dir = workdir / name / f"seed-{seed}"
    done = (run_dir / "result.json").is_file()
    log(f"{name}, seed {seed}" + (": done before, reused" if done else " …"))
    if not done:
      started = time.perf_counter()
      # One round: the variants differ in how they train, which a second round on the
      # cleaned photos would apply twice, at twice the (15-minute) cost.
      result = run_pipeline(
        config,
        run_dir,
        validation_photos="the config's validation split",
        second_round=False,
        title=f"{name}, seed {seed}",
        min_photos=min_photos,
        progress=False,
      )
      # The report's headline, the paper's offline test, and the η alone it applies.
      headline = result.evaluation["settings"][result.evaluation["headline"]]
      figures = {key: headline[key] for key, _ in METRICS}
      figures.update(eta=headline["eta"], seconds=time.perf_counter() - started)
      atomic_write_text(run_dir / "result.json", json.dumps(figures, indent=2))
    figures = json.loads((run_dir / "result.json").read_text())
    runs.append(
      {
        "variant": name,
        "seed": seed,
        "predictions": str((run_dir / "report" / "predictions.csv").relative_to(workdir)),
        **figures,
      }
    )
    log(
      f"   sensitivity {figures['sensitivity']:.3f} at specificity "
      f"{figures['specificity']:.3f}, top-1 {figures['top1_accuracy']:.3f}, "
      f"GAP {figures['gap']:.3f} ({figures['seconds']:.0f} s)"
    )
  summary = summarize(runs, variants)
  payload = {
    "config": config_name,
    "overrides": list(overrides),
    "seeds": list(seeds),
    "variants": [dataclasses.asdict(v) for v in variants],
    "runs": runs,
    "summary": summary,
  }
  (workdir / "ablation.json").write_text(json.dumps(payload, indent=2))
  (workdir / "ablation.md").write_text(ablation_markdown(payload))
  plot_ablation(summary, runs, METRICS, workdir / "ablation.png")
  return payload


def summarize(runs: Sequence[dict], variants: Sequence[Variant]) -> list[dict]:
  """Per variant, in order: each metric's mean, min and max over the seeds."""
  rows = []
  for variant in variants:
    mine = [r for r in runs if r["variant"] == variant.name]
    row = {"variant": variant.name, "label": variant.label, "seeds": len(mine)}
    for key, _ in METRICS:
      values = np.array([r[key] for r in mine], float)
      row[key] = {
        "mean": float(values.mean()),
        "min": float(values.min()),
        "max": float(values.max()),
      }
    rows.append(row)
  return rows


def _cell(figure: dict) -> str:
  if figure["min"] == figure["max"]:
    return f"{100 * figure['mean']:.1f}"
  return f"{100 * figure['mean']:.1f} ({100 * figure['min']:.1f}–{100 * figure['max']:.1f})"


def ablation_markdown(payload: dict) -> str:
  seeds = payload["seeds"]
  lines = [
    "# Ablation",
    "",
    f"Config `{payload['config']}`"
    + (f" with {' '.join(payload['overrides'])}" if payload["overrides"] else "")
    + f"; seeds {', '.join(map(str, seeds))}. Each variant trained on the same data with "
    "the same budget, then embedded, cleaned, indexed, calibrated on the validation split "
    "and evaluated on the test split. The rows build up the paper's method, each adding "
    "its part to all the rows above it (softmax over the landmarks only; + the "
    "non-landmark class; + the center loss; + the curriculum); ArcFace is the whole "
    "recipe with ArcFace instead of softmax + center loss. Figures in %: the mean over "
    "the seeds, (min–max) when they differ. Sensitivity and specificity are the paper's "
    "offline test: at the η calibrated for each run, alone (no class references, no "
    "geo-information).",
    "",
    "| variant | " + " | ".join(label for _, label in METRICS) + " |",
    "|---|" + "---|" * len(METRICS),
  ]
  for row in payload["summary"]:
    lines.append(f"| {row['label']} | " + " | ".join(_cell(row[key]) for key, _ in METRICS) + " |")
  lines += [
    "",
    "Per run (each run's photos, one row each: `<variant>/seed-<seed>/report/predictions.csv`):",
    "",
    "| variant | seed | " + " | ".join(label for _, label in METRICS) + " | η |",
    "|---|---|" + "---|" * (len(METRICS) + 1),
  ]
  for run in payload["runs"]:
    lines.append(
      f"| {run['variant']} | {run['seed']} | "
      + " | ".join(f"{100 * run[key]:.1f}" for key, _ in METRICS)
      + f" | {run['eta']:.4f} |"
    )
  lines += ["", "![ablation](ablation.png)", ""]
  return "\n".join(lines)
