"""`landmark-jax recipe --estimate-only`: each training round's wall time and chip-hours,
from one chip's figures (`landmark-jax benchmark device --json`) and the data's size.

Per round r, with P processes, C chips and the config's global batch B:

    steps_r  = Σ over curriculum stages of epochs × ⌊(photos_s / P) / (B / P)⌋  (`plan_stages`)
    R        = min(C × r_chip × scaling, P × the host pipeline's best images/s)
    train_r  = steps_r × B / R + stages_r × STAGE_START_SECONDS + held-out photos / (C × r_inf)
    embed_r  = photos_r / (C × r_inf)
    chip-h_r = (train_r + embed_r) × C / 3600

r_chip is the check's softmax + center loss step at the config's crop size, r_inf its
inference images/s, both per chip. Round 2 trains on the photos round 1's cleaning kept:
counted from ``round1/clean/report.json`` once it exists, else assumed to be the share that
GLDv2-clean keeps of GLDv2 (`CLEAN_SHARE`); its steps scale with its photos. Every
assumption is printed beside the figures (docs/recipe.md, "What it will cost").
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

from landmark_jax.data.tables import read_csv
from landmark_jax.errors import ConfigError, MissingFileError
from landmark_jax.recipe import split
from landmark_jax.recipe.inputs import BATCH_LACK, labelled_source, lacking_inputs
from landmark_jax.recipe.options import RecipeOptions
from landmark_jax.recipe.steps import read_json
from landmark_jax.train.curriculum import plan_stages

# GLDv2-clean's 1,580,470 photos of GLDv2's 4,132,914 (docs/benchmarks.md): the share of
# landmark photos a first round's cleaning is assumed to keep until it has run.
CLEAN_SHARE = 1_580_470 / 4_132_914
STAGE_START_SECONDS = 120.0  # compiling the step and filling the pipeline, per stage (assumed)


@dataclasses.dataclass(frozen=True)
class Rates:
  """One chip's figures from a device check, and the host pipeline's best."""

  device: str
  backbone: str  # the network the check timed
  chips_per_host: int
  train: float  # images/s of the train step at the config's crop size
  inference: float  # images/s
  measured_batch: int  # per chip
  pipeline: float | None  # images/s one host's input pipeline delivers
  notes: tuple[str, ...]


def read_rates(path: str | pathlib.Path, crop_size: int) -> Rates:
  """The figures a recipe of crop `crop_size` needs from the device check at `path`."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise MissingFileError(f"device check not found: {path}")
  try:
    payload = json.loads(path.read_text())
    rows = [r for r in payload["train"] if r["loss"] == "softmax_center"]
    inference = float(payload["inference"]["images/s"])
    machine, settings = payload["machine"], payload["settings"]
  except (ValueError, KeyError, TypeError) as error:
    raise ConfigError(
      f"{path} is not `landmark-jax benchmark device --json`'s output ({error!r} missing)"
    ) from None
  if not rows:
    raise ConfigError(f"{path} has no softmax_center train row")
  row = min(rows, key=lambda r: abs(r["image"] - crop_size))
  notes = []
  train = float(row["images/s"])
  if row["image"] != crop_size:
    # A convolution's work grows with the pixels: scale by the area.
    train *= (row["image"] / crop_size) ** 2
    notes.append(
      f"the check timed {row['image']} px, not {crop_size}: its images/s scaled by "
      f"({row['image']}/{crop_size})²"
    )
  pipeline = payload.get("pipeline")
  best = (
    max((r["images/s"] for r in pipeline), default=None) if isinstance(pipeline, list) else None
  )
  return Rates(
    machine["device"],
    str(settings.get("backbone", "")),
    int(machine["devices"]),
    train,
    inference,
    int(settings["batch_size"]),
    best,
    tuple(notes),
  )


@dataclasses.dataclass(frozen=True)
class RoundEstimate:
  round: int
  photos: int
  steps: int
  batch: int
  rate: float  # images/s of all chips
  train_seconds: float
  embed_seconds: float
  chip_hours: float


def estimate(
  options: RecipeOptions, rates: Rates, *, processes: int, chips: int | None, scaling: float
) -> tuple[list[RoundEstimate], list[str], dict]:
  """The two rounds' estimates, the assumptions made, and the held-out counts."""
  lacks, listed = lacking_inputs(options)
  if listed is None:
    raise MissingFileError("; ".join(lacks) or f"{options.data}: no photos listed")
  too_big = [lack for lack in lacks if lack.startswith(BATCH_LACK)]
  if too_big:  # training could not plan its steps: said as the dry run says it
    raise ConfigError(too_big[0])
  config = options.run_config()
  chips = chips or rates.chips_per_host * processes
  notes = list(rates.notes)
  if rates.backbone != config.model.backbone:
    # Another network's images/s say nothing of this one's (WRN-50-2 trains ~20× slower than
    # resnet_tiny on the same CPU): said first, since every figure below rests on it.
    notes.insert(
      0,
      f"WARNING: the check timed {rates.backbone or 'an unnamed backbone'}, this run trains "
      f"{config.model.backbone}: these figures do not apply; run `landmark-jax benchmark "
      f"device --backbone {config.model.backbone} --json FILE` on the accelerator",
    )
  if options.own_split:
    train = listed.photos
    held = {name: len(read_csv(options.data / f"{name}.csv", ["id"])) for name in ("val", "test")}
  else:
    made = split.make_split(listed, options.split_seed, options.held_out_max)
    train, held = made["train"], {name: len(made[name]) for name in ("val", "test")}
  source, note = labelled_source(config, train)
  if note:
    notes.append(note)
  plan = plan_stages(config, source, processes=processes)
  batch = config.pipeline.batch_size
  rate = chips * rates.train * scaling
  notes.append(
    f"{chips} chip{'s' * (chips != 1)} reach{'es' * (chips == 1)} {scaling:g} × {chips} × one "
    "chip's images/s (--scaling)"
  )
  if rates.pipeline is not None and processes * rates.pipeline < rate:
    rate = processes * rates.pipeline
    notes.append(
      f"the input pipeline limits: {processes} host(s) × {rates.pipeline:.0f} images/s "
      "(the check's host; yours may differ)"
    )
  if batch / chips < rates.measured_batch:
    notes.append(
      f"the check measured {rates.measured_batch} photos per chip; this run gives each chip "
      f"{batch / chips:g}: rerun `landmark-jax benchmark device --batch-size "
      f"{max(1, batch // chips)}` for its figure"
    )
  notes.append(f"{STAGE_START_SECONDS:.0f} s per curriculum stage to compile and start")

  report = read_json(options.layout.round_dir(1) / "clean" / "report.json")
  landmark_1 = sum(lid is not None for lid in train.landmark_ids)
  non_landmark = len(train) - landmark_1
  if report:
    photos_2 = report["images_after"] + report["non_landmark_images"]
  else:
    photos_2 = round(CLEAN_SHARE * landmark_1) + non_landmark
    notes.append(
      f"round 2: cleaning keeps {CLEAN_SHARE:.1%} of the landmark photos (GLDv2-clean's "
      "share of GLDv2) until round 1's cleaning has run; its steps scale with its photos"
    )
  rounds = []
  for number, photos, steps in (
    (1, len(train), sum(plan.steps)),
    (2, photos_2, round(sum(plan.steps) * photos_2 / len(train))),
  ):
    train_s = (
      steps * batch / rate
      + len(plan.steps) * STAGE_START_SECONDS
      + held["val"] / (chips * rates.inference)
    )
    embed_s = photos / (chips * rates.inference)
    rounds.append(
      RoundEstimate(
        number, photos, steps, batch, rate, train_s, embed_s, (train_s + embed_s) * chips / 3600
      )
    )
  return rounds, notes, {**held, "chips": chips}


def format_estimate(rounds: list[RoundEstimate], notes: list[str], held: dict, rates) -> str:
  hours = 1 / 3600
  lines = [
    f"Estimate on {held['chips']} × {rates.device}:",
    "",
    "| round | photos | steps × batch | images/s (all chips) | train h | embed h | wall h "
    "| chip-h |",
    "|---|---|---|---|---|---|---|---|",
  ]
  for r in rounds:
    lines.append(
      f"| {r.round} | {r.photos} | {r.steps} × {r.batch} | {r.rate:.0f} | "
      f"{r.train_seconds * hours:.2f} | {r.embed_seconds * hours:.2f} | "
      f"{(r.train_seconds + r.embed_seconds) * hours:.2f} | {r.chip_hours:.2f} |"
    )
  wall = sum(r.train_seconds + r.embed_seconds for r in rounds) * hours
  lines.append(f"| total | | | | | | {wall:.2f} | {sum(r.chip_hours for r in rounds):.2f} |")
  evaluated = held["val"] + held["test"]
  lines += [
    "",
    f"calibrate + evaluate: {evaluated} photos on one chip, "
    f"{evaluated / rates.inference * hours:.2f} h; cleaning and the index run on CPU "
    "(not estimated: docs/benchmarks.md, the GLDv2 dry run)",
    "Assumptions and notes:",
    *(f"- {note}" for note in notes),
  ]
  return "\n".join(lines)


def print_estimate(
  options: RecipeOptions, device_check, *, processes: int, chips: int | None, scaling: float
) -> None:
  if not device_check:
    raise ConfigError(
      "give --device-check FILE: `landmark-jax benchmark device --json FILE` (or "
      "scripts/device_check.sh) measures one chip"
    )
  config = options.run_config()
  rates = read_rates(device_check, config.pipeline.image.crop_size)
  rounds, notes, held = estimate(options, rates, processes=processes, chips=chips, scaling=scaling)
  print(format_estimate(rounds, notes, held, rates), flush=True)
