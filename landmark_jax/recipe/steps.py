"""The recipe's steps: who runs each, its command line, and when its output is complete."""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shlex
from typing import Callable

from landmark_jax.data import photo_split
from landmark_jax.experiment import retrain_config
from landmark_jax.index.integrity import MANIFEST, read_manifest
from landmark_jax.recipe.options import RecipeOptions
from landmark_jax.stages import build_index, clean, embed
from landmark_jax.train import loop

SPLIT_STEP = "split"


@dataclasses.dataclass(frozen=True)
class Step:
  number: int  # 1, 2, …: also where its coordinator's port lies (`run.child_environment`)
  name: str  # the folder it writes, relative to the workdir ("round1/train", "index")
  every_process: bool  # train and embed: all processes, joined; the rest: process 0 alone
  args: tuple[str, ...]  # `landmark-jax` arguments; () for the split, done by the recipe
  is_done: Callable[[], bool]
  what: str  # in words, for the dry run

  def command_line(self, extra: tuple[str, ...] = ()) -> str:
    if not self.args:
      return f"(the recipe itself) {self.what}"
    return shlex.join(("landmark-jax", *self.args, *extra))


def _calibrated(index_dir: pathlib.Path) -> bool:
  path = index_dir / MANIFEST
  return path.is_file() and "eta" in read_manifest(path)


def _newer_than(path: pathlib.Path, reference: pathlib.Path) -> bool:
  """`path` exists and was written after `reference` (a later calibration makes an
  evaluation or a bundle stale)."""
  return (
    path.is_file() and reference.is_file() and path.stat().st_mtime >= reference.stat().st_mtime
  )


def _split_done(folder: pathlib.Path) -> bool:
  return (folder / photo_split.SPLIT_INFO).is_file()  # written last


def plan_steps(options: RecipeOptions) -> list[Step]:
  """Every step of the recipe for `options`, in order (see docs/recipe.md's table)."""
  layout = options.layout
  user = options.user_config()
  config = options.run_config()
  train_args = ("--config", options.config, *options.model_overrides())
  heartbeat = (
    ("--heartbeat-timeout", str(options.heartbeat_timeout)) if options.heartbeat_timeout else ()
  )
  steps: list[tuple] = []

  if options.needs_regions_step(user) and options.landmarks_list() is not None:
    steps.append(
      (
        "regions",
        False,
        ("regions", "--landmarks-csv", str(options.landmarks_list()), "--out", str(layout.regions)),
        lambda: layout.regions.is_file(),
        "the curriculum's regions from the landmarks' coordinates or countries",
      )
    )
  if not options.own_split:
    steps.append(
      (
        SPLIT_STEP,
        False,
        (),
        lambda: _split_done(layout.split),
        f"split {options.data}/train.csv and the non-landmark list into {layout.split}/"
        f"{{train,val,test}}.csv (seed {options.split_seed}, at most {options.held_out_max} "
        "landmark and non-landmark photos held out each)",
      )
    )
  round_data = {
    1: options.data_overrides(user),
    2: options.data_overrides(
      user, clean_csv=retrain_config(config, layout.workdir).data.clean_csv
    ),
  }
  for round_ in (1, 2):
    folder = layout.round_dir(round_)
    prefix = "round1/" if round_ == 1 else ""
    steps += [
      (
        f"{prefix}train",
        True,
        ("train", "--workdir", str(folder / "train"), *train_args, *round_data[round_], *heartbeat),
        lambda f=folder: loop.is_done(f / "train"),
        "train" if round_ == 1 else "train again on the photos round 1's cleaning kept",
      ),
      (
        f"{prefix}embed",
        True,
        (
          "embed",
          "--checkpoint",
          str(folder / "train"),
          "--out",
          str(folder / "embeddings"),
          "--batch-size",
          str(options.embed_batch_size),
          "--num-workers",
          str(options.num_workers),
          "--shard-size",
          str(options.embed_shard_size),
          *heartbeat,
        ),
        lambda f=folder: embed.is_done(f / "embeddings"),
        "embed the training photos",
      ),
      (
        f"{prefix}clean",
        False,
        ("clean", "--embeddings", str(folder / "embeddings"), "--out", str(folder / "clean")),
        lambda f=folder: clean.is_done(f / "clean"),
        "clean: per-landmark clusters into per-angle centroids",
      ),
    ]
  landmarks = options.landmarks_list()
  index_overrides = [o.strip()[6:] for o in options.overrides if o.strip().startswith("index.")]
  model = ("--checkpoint", str(layout.workdir / "train"), "--index", str(layout.index))
  manifest = layout.index / MANIFEST
  steps += [
    (
      "index",
      False,
      (
        "build-index",
        "--clean",
        str(layout.workdir / "clean"),
        "--out",
        str(layout.index),
        "--target-recall",
        str(options.target_recall),
        "--config",
        options.config,
        *(("--landmarks-csv", str(landmarks), "--ignore-unmatched") if landmarks else ()),
        *index_overrides,
      ),
      lambda: build_index.is_done(layout.index),
      "the centroid index, its search tuned for the target recall",
    ),
    (
      "calibrate",
      False,
      ("calibrate", *model),
      lambda: _calibrated(layout.index),
      "η on the validation photos",
    ),
    (
      "evaluate",
      False,
      ("evaluate", *model, "--out", str(layout.report), "--min-photos", str(options.min_photos)),
      lambda: _newer_than(layout.report / "report.md", manifest),
      "recognise the test photos: the report",
    ),
  ]
  if options.export:
    steps.append(
      (
        "export",
        False,
        (
          "export",
          *model,
          "--out",
          str(layout.bundle),
          # A bundle of an earlier calibration is replaced.
          *(("--force",) if layout.bundle.exists() else ()),
        ),
        lambda: _newer_than(layout.bundle / "bundle.json", manifest),
        "the inference bundle",
      )
    )
  return [Step(number, *fields) for number, fields in enumerate(steps, start=1)]


def last_joint_step(steps: list[Step]) -> int:
  """The number of the last step every process takes part in: the others stop after it."""
  return max((step.number for step in steps if step.every_process), default=0)


def read_json(path: pathlib.Path) -> dict | None:
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None
