"""`landmark-jax fit`: a user's photos to a calibrated, evaluated recognizer in one command,
and the demo (`fit` on the embedded dataset: one code path).

photos → split each landmark's photos into training, validation and test photos (seeded,
written to ``<workdir>/split/``; a dataset that brings its own validation and test CSVs
keeps them) → `experiment.run_pipeline`: train, embed, clean, train again on the cleaned
photos, embed, clean into per-angle centroids, index, calibrate η on the validation photos,
evaluate on the test photos → the paper's table, and the `recognize` and `serve` lines for
the result. With ``train=False`` (``--no-train``) the model is the pretrained backbone's
whitened features (`stages.whiten`), in one round.

Every step is reused on a second run; a run with other settings or other photos in the same
workdir is refused, naming what changed and the way to start over.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import pathlib
import shlex
import shutil
import time
from typing import Callable, Mapping

from landmark_jax.config import TrainConfig, load_config
from landmark_jax.data import DataConfig, photo_split, source_for
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.data.labels import REGIONS
from landmark_jax.data.tables import open_csv
from landmark_jax.errors import ConfigError
from landmark_jax.eval.collection import photo_counts
from landmark_jax.eval.scoring import load_locations
from landmark_jax.experiment import ROUND1, PipelineResult, check_same_config, run_pipeline
from landmark_jax.geo import Location
from landmark_jax.index import CentroidIndex
from landmark_jax.stages import whiten
from landmark_jax.text import spreadsheet_row
from landmark_jax.train import loop, recipe

FIT_CONFIG = "tiny_cpu"  # trains in minutes on a CPU; `default` is the paper's, for accelerators
# Fewest landmark and non-landmark photos in each of the validation and test splits. The
# table shows every figure with its n and 95 % interval; below 5 one photo moves a figure
# by more than 20 points. `evaluate` asks 20 of a test set it is given (`MIN_PHOTOS`).
FIT_MIN_PHOTOS = 5
SPLIT_DIR = "split"
FIT_FILE = "fit.json"  # what the workdir's run was made from: photos, split, no-train


@dataclasses.dataclass
class FitResult(PipelineResult):
  workdir: pathlib.Path = pathlib.Path()
  not_evaluated: list = dataclasses.field(default_factory=list)  # too few photos to split


# Where the photos of a run come from: the data section and what the run records of it.
@dataclasses.dataclass(frozen=True)
class FitData:
  data: DataConfig
  landmarks_csv: pathlib.Path | None
  locations: Mapping[str, Location] | None
  not_evaluated: list
  record: dict  # written to fit.json
  summary: str  # said after the first step's headline
  geo: bool = False  # the geo table from the test photos' EXIF GPS (landmarks have coordinates)


def _landmarks_file(root: pathlib.Path, given) -> pathlib.Path | None:
  if given:
    return pathlib.Path(given).absolute()
  found = root / "landmarks.csv"
  return found.absolute() if found.is_file() else None


def _columns(landmarks_csv: pathlib.Path | None) -> list[str]:
  if landmarks_csv is None or not landmarks_csv.is_file():
    return []
  with open_csv(landmarks_csv) as reader:  # Excel's BOM is no part of the first column
    return [name.strip() for name in next(reader, [])]


def _regions_csv(landmarks_csv: pathlib.Path | None) -> str:
  """The landmarks CSV as the curriculum's regions, when it has a region column."""
  return str(landmarks_csv) if "region" in _columns(landmarks_csv) else ""


def _has_coordinates(landmarks_csv: pathlib.Path | None) -> bool:
  return {"latitude", "longitude"} <= set(_columns(landmarks_csv))


def _names_from_folders(photos: photo_split.PhotoList, folder: pathlib.Path) -> pathlib.Path:
  """``landmarks.csv`` naming each landmark by its folder: without a landmarks CSV the
  answers would carry the id alone (``"name": null``), while the folder's name is the one
  the user gave. Numeric ids (GLDv2's) get no name."""
  path = folder / "landmarks.csv"
  named = sorted({lid for lid in photos.landmark_ids if isinstance(lid, str)})
  folder.mkdir(parents=True, exist_ok=True)
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["landmark_id", "name"])
    writer.writerows(spreadsheet_row([lid, lid]) for lid in named)
  return path


def _split_folder_data(
  root: pathlib.Path, landmarks: pathlib.Path | None, non_landmark_csv: str = ""
) -> DataConfig:
  """A GLDv2-layout folder with ``train.csv``, ``val.csv`` and ``test.csv``; the test
  photos are also the held-out set classified after training (as the demo's)."""
  return DataConfig(
    kind="gldv2",
    root=str(root.absolute()),
    val_csv="val.csv",
    test_csv="test.csv",
    holdout_csv="test.csv",
    non_landmark_csv=non_landmark_csv,
    regions_csv=_regions_csv(landmarks),
  )


def _embedded_data() -> FitData:
  root = demo_dataset()
  return FitData(
    DataConfig(kind="demo"),
    root / "landmarks.csv",
    load_locations(root / "locations.csv"),
    [],
    {"photos": "the embedded dataset"},
    str(root),
  )


def _own_split_data(root: pathlib.Path, landmarks_csv) -> FitData:
  landmarks = _landmarks_file(root, landmarks_csv)
  locations = root / "locations.csv"
  return FitData(
    _split_folder_data(
      root,
      landmarks,
      non_landmark_csv="non_landmark.csv" if (root / "non_landmark.csv").is_file() else "",
    ),
    landmarks,
    load_locations(locations) if locations.is_file() else None,
    [],
    {"photos": str(root.absolute()), "split": "the dataset's own val.csv and test.csv"},
    f"{root}: its own validation and test photos (val.csv, test.csv)",
    geo=not locations.is_file() and _has_coordinates(landmarks),
  )


def _digest(photos: photo_split.PhotoList) -> str:
  rows = sorted(zip(photos.ids, photos.paths, map(str, photos.landmark_ids)))
  return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def _split_data(
  photos, non_landmarks, landmarks_csv, workdir: pathlib.Path, seed: int, min_photos: int
) -> FitData:
  listed = photo_split.list_photos(photos, non_landmarks)
  photo_split.check_splittable(listed, min_photos)
  folder = workdir / SPLIT_DIR
  info_path = folder / photo_split.SPLIT_INFO
  record = {
    "photos": str(pathlib.Path(photos).absolute()),
    "non_landmarks": str(pathlib.Path(non_landmarks).absolute()) if non_landmarks else None,
    "split_seed": seed,
    "photos_listed": len(listed),
    "photo_list": _digest(listed),
  }
  not_evaluated = photo_split.unsplit_landmarks(listed)
  split = photo_split.split_photos(listed, seed)
  if not info_path.is_file():
    photo_split.write_split(
      split,
      folder,
      {
        **record,
        "fractions": photo_split.SPLIT_FRACTIONS,
        "counts": photo_split.split_counts(split),
        "not_evaluated": [str(lid) for lid in not_evaluated],
      },
    )
  root = pathlib.Path(photos)
  landmarks = _landmarks_file(root if root.is_dir() else root.parent, landmarks_csv)
  if landmarks is None and not photo_split.is_gldv2_folder(root):
    landmarks = _names_from_folders(listed, folder)
  return FitData(
    _split_folder_data(folder, landmarks),
    landmarks,
    None,  # the photos' own EXIF GPS, where they have it
    not_evaluated,
    record,
    f"{folder}: "
    + "; ".join(
      f"{name} {c['landmark_photos']} landmark + {c['non_landmark_photos']} non-landmark photos"
      for name, c in photo_split.split_counts(split).items()
    )
    + (
      f"; {len(not_evaluated)} landmark(s) with fewer than {photo_split.MIN_PHOTOS_TO_SPLIT} "
      "photos train only"
      if not_evaluated
      else ""
    ),
    geo=_has_coordinates(landmarks),
  )


def _check_same_photos(workdir: pathlib.Path, record: dict, fresh_flag: str) -> None:
  path = workdir / FIT_FILE
  if not path.is_file():
    return
  before = json.loads(path.read_text())
  changed = [key for key in sorted(set(before) | set(record)) if before.get(key) != record.get(key)]
  if changed:
    what = ", ".join(
      # A digest says nothing to a person: the photos changed, and how many there are.
      f"the photos themselves ({before.get('photos_listed', '?')} listed then, "
      f"{record.get('photos_listed')} now, or the same number changed)"
      if key == "photo_list"
      else f"{key} {before.get(key)!r} → {record.get(key)!r}"
      for key in changed
      if key != "photos_listed"
    )
    raise ConfigError(
      f"{workdir} holds a run made from other photos or settings ({what}): use "
      f"{fresh_flag} to start over, or another --workdir"
    )


def fit_config(
  config: str, overrides=(), *, pretrained: str | None = None, data: DataConfig
) -> TrainConfig:
  """The named config with `overrides`, trained on `data` (from `pretrained`, if given)."""
  given_data = [o.split("=", 1)[0].strip() for o in overrides if o.strip().startswith("data.")]
  if given_data:
    raise ConfigError(
      f"{given_data[0]}: the data section comes from the photos, not from overrides: "
      "`landmark-jax fit PHOTOS --workdir W` takes yours (a folder of <landmark>/*.jpg, a "
      "GLDv2-layout folder or a CSV); the demo's are the embedded dataset's"
      + (
        "; `fit` reads the curriculum's regions from a region column of --landmarks-csv"
        if given_data[0] == "data.regions_csv"
        else ""
      )
    )
  loaded = load_config(config, overrides)
  model = loaded.model
  if pretrained is not None:
    model = dataclasses.replace(model, pretrained=pretrained)
  return dataclasses.replace(loaded, data=data, model=model)


def _silent(*_args) -> None:
  pass


def fit(
  photos: str | pathlib.Path | None,
  workdir: str | pathlib.Path,
  *,
  config: str = FIT_CONFIG,
  overrides: tuple[str, ...] = (),
  non_landmarks: str | pathlib.Path | None = None,
  landmarks_csv: str | pathlib.Path | None = None,
  pretrained: str | None = None,
  train: bool = True,
  second_round: bool = True,
  split_seed: int = 0,
  min_photos: int = FIT_MIN_PHOTOS,
  fresh: bool = False,
  fresh_flag: str = "--fresh",
  validation_photos: str | None = None,
  title: str = "Evaluation",
  progress: bool = True,
  announce: Callable[[str, bool], None] = _silent,
  say: Callable[[str], None] = _silent,
  check_index: Callable[[CentroidIndex], None] = _silent,
) -> FitResult:
  """Runs (or finishes) the whole recipe on `photos` in `workdir` (see the module).

  Args:
    photos: a folder of ``<landmark>/*.jpg`` (``non_landmark/`` for photos of none), a
      GLDv2-layout folder, a ``path,landmark_id`` CSV, or None: the embedded demo dataset.
    non_landmarks: a folder of further photos that show no landmark.
    landmarks_csv: ``landmark_id,name,region,latitude,longitude`` for the index (default:
      ``landmarks.csv`` beside the photos, if there is one).
    pretrained: the backbone's starting weights (``model.pretrained``: ``torchvision``,
      ``timm:NAME``, a weights file, a training workdir, or ``none``).
    train: False makes the model without training (`stages.whiten`), in one round.
    second_round: train again on the photos the first cleaning kept (the paper's recipe).
    min_photos: fewest landmark and non-landmark photos in each of the validation and test
      splits (0: no check).

  Raises:
    DataError: no non-landmark photos, or too few to calibrate and test on (before any
      training), naming how many would be enough.
    ConfigError: the workdir holds a run of other photos or settings.
  """
  workdir = pathlib.Path(workdir)
  # A mistake in an override, or a fine-tuning config without weights, costs nothing.
  checked = fit_config(config, overrides, pretrained=pretrained, data=DataConfig())
  if train:
    recipe.check_pretrained(checked)
  if photos is not None and workdir.absolute().is_relative_to(pathlib.Path(photos).absolute()):
    raise ConfigError(
      f"--workdir {workdir} is inside the photos {photos}: its files would be taken for "
      "photos; put it beside them"
    )
  if fresh and workdir.exists():
    shutil.rmtree(workdir)
  started = time.perf_counter()
  if photos is None:
    source = _embedded_data()
  elif photo_split.has_own_split(pathlib.Path(photos)):
    source = _own_split_data(pathlib.Path(photos), landmarks_csv)
  else:
    source = _split_data(photos, non_landmarks, landmarks_csv, workdir, split_seed, min_photos)
  say(source.summary)
  dataset_seconds = time.perf_counter() - started
  run_config = fit_config(config, overrides, pretrained=pretrained, data=source.data)
  if not any(o.strip().startswith("pipeline.batch_size=") for o in overrides):
    run_config = _batch_for_few_photos(run_config, say)
  second_round = second_round and train
  record = {**source.record, "train": train}
  _check_same_photos(workdir, record, fresh_flag)
  check_same_config(workdir, run_config, fresh_flag, second_round=second_round)
  if photos is not None and min_photos:
    _check_held_out(run_config, min_photos)
  if train:
    _check_regions(run_config, source.landmarks_csv, workdir / SPLIT_DIR)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / FIT_FILE).write_text(json.dumps(record, indent=2))

  result = run_pipeline(
    run_config,
    workdir,
    validation_photos=validation_photos or f"the validation split of {source.record['photos']}",
    second_round=second_round,
    landmarks_csv=source.landmarks_csv,
    locations=source.locations,
    geo=source.geo,
    title=title,
    min_photos=min_photos,
    progress=progress,
    announce=announce,
    say=say,
    check_index=check_index,
    trainer=loop if train else whiten,
  )
  if source.not_evaluated:
    _note_not_evaluated(workdir / "report" / "report.md", source.not_evaluated)
  timings = {"dataset": dataset_seconds, **result.timings}
  return FitResult(result.evaluation, timings, result.index, workdir, list(source.not_evaluated))


def _batch_for_few_photos(config: TrainConfig, say) -> TrainConfig:
  """`config` with a batch of at most half its training photos (a multiple of the
  devices): a few dozen photos would otherwise not fill one batch once cleaning has dropped
  some, and the second round could not start."""
  import jax

  photos = len(source_for(config.data, "train"))
  devices = jax.device_count()
  batch = max(devices, photos // 2 // devices * devices)
  if batch >= config.pipeline.batch_size:
    return config
  say(
    f"batch size {batch}, not {config.pipeline.batch_size}: {photos} training photos "
    "(pipeline.batch_size=… to choose)"
  )
  return dataclasses.replace(
    config, pipeline=dataclasses.replace(config.pipeline, batch_size=batch)
  )


def _check_held_out(config: TrainConfig, min_photos: int) -> None:
  """A dataset's own validation and test CSVs hold at least `min_photos` of each kind."""
  from landmark_jax.eval.collection import check_enough_photos

  train_source = source_for(config.data, "train")
  for split in ("val", "test"):
    check_enough_photos(
      *photo_counts(source_for(config.data, split, train_source.label_map)), min_photos
    )


def _check_regions(
  config: TrainConfig, landmarks_csv: pathlib.Path | None, made_here: pathlib.Path
) -> None:
  """Refuses, before any training, a config with the paper's curriculum (`default`) whose
  landmarks are not all placed in two or more regions. Training refuses the same in `data.*`
  words (`recipe.check_curriculum`, `labels.check_unassigned`), which `fit` does not take:
  its regions are the region column of the landmarks CSV (``--landmarks-csv``, or
  ``landmarks.csv`` beside the photos), and the refusal says so (docs/train-on-your-photos.md,
  "The paper's recipe")."""
  if not config.curriculum.enabled:
    return
  label_map = source_for(config.data, "train").label_map
  decline = "or curriculum.enabled=False to train in one stage"
  how = (
    "give --landmarks-csv CSV with a region column placing the landmarks in two or more of "
    f"{', '.join(REGIONS)} (`landmark-jax regions` assigns them from latitude,longitude or "
    f"country codes), {decline}"
  )
  if label_map.unassigned and config.curriculum.unassigned == "refuse":
    missing = label_map.unassigned
    raise ConfigError(
      f"{len(missing)} of {label_map.num_classes} landmarks have no region in "
      f"{config.data.regions_csv} ({photo_split.describe(list(missing))}), so the "
      "curriculum cannot place them: add their rows, or curriculum.unassigned=last to train "
      f"them in the last stage, {decline}"
    )
  if label_map.num_stages > 1:
    return
  if config.data.regions_csv:
    why = f"the training landmarks are all in one region of {config.data.regions_csv}"
  elif landmarks_csv is None or landmarks_csv.absolute().is_relative_to(made_here.absolute()):
    why = "the photos come without regions"
  else:
    why = f"{landmarks_csv} has no region column"
  raise ConfigError(
    f"this config trains with the paper's curriculum over geographic regions "
    f"(curriculum.enabled=True), but {why}: {how}"
  )


def _note_not_evaluated(report: pathlib.Path, landmarks: list) -> None:
  if report.is_file() and "Not evaluated" not in report.read_text():
    with open(report, "a") as f:
      f.write(
        f"\n## Not evaluated\n\n{len(landmarks)} landmark(s) had fewer than "
        f"{photo_split.MIN_PHOTOS_TO_SPLIT} photos to split: trained on and indexed, but in "
        f"neither the validation nor the test photos: {photo_split.describe(landmarks)}\n"
      )


# What the demo and `fit` print as they go: numbered steps, each with its outcome.
_SECOND_ROUND_STEPS = {
  "round1/train": "train the {model} on every training photo",
  "round1/embed": "embed the training photos",
  "round1/clean": "clean: per-landmark clustering into shooting angles; photos outside a "
  "valid cluster are dropped",
  "train": "train again {start} on the photos cleaning kept (+ the non-landmark ones)",
  "embed": "embed those photos with the new model",
  "clean": "clean them again into per-angle centroids",
}
_SINGLE_ROUND_STEPS = {
  "train": "train the {model}",
  "embed": "embed the training photos",
  "clean": "clean: per-landmark clustering into shooting angles",
}
_NO_TRAIN_STEPS = {
  "train": "whiten the pretrained backbone's features of the training photos (no training)",
  "embed": "embed the training photos",
  "clean": "clean: per-landmark clustering into shooting angles",
}
_LAST_STEPS = {
  "index": "build the centroid index",
  "calibrate": "calibrate η for {target:.0%} specificity on the validation split",
  "evaluate": "recognise the test photos: held-out views of the landmarks and non-landmark photos",
}


def step_headlines(
  first: str,
  *,
  train: bool,
  second_round: bool,
  target: float,
  model: str = "model",
  pretrained: bool = False,
) -> dict[str, str]:
  """Step name → its numbered headline ("2/10 train …"); step 1 (``dataset``) is `first`;
  `pretrained`: the second round starts again from the backbone's pretrained weights."""
  if not train:
    steps = _NO_TRAIN_STEPS
  else:
    steps = _SECOND_ROUND_STEPS if second_round else _SINGLE_ROUND_STEPS
  steps = {**steps, **_LAST_STEPS}
  start = "from the pretrained weights" if pretrained else "from scratch"
  total = len(steps) + 1
  return {
    "dataset": f"1/{total} {first}",
    **{
      name: f"{i}/{total} {text.format(target=target, model=model, start=start)}"
      for i, (name, text) in enumerate(steps.items(), start=2)
    },
  }


def announce_step(name: str, done: bool) -> None:
  print(f"\n== {name}" + (" (done before: reused)" if done else ""), flush=True)


def say_line(text: str) -> None:
  print(f"   {text}", flush=True)


def print_outcome(result: FitResult, started: float, second_round: bool) -> dict:
  """The table, where the report and plots are, the timings (also ``timings.json``)."""
  workdir = result.workdir
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
  timings = {**result.timings, "total": time.perf_counter() - started}
  print(
    f"Took {timings['total']:.0f} s ("
    + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items() if k != "total")
    + ")"
  )
  (workdir / "timings.json").write_text(json.dumps(timings, indent=2))
  return timings


def next_commands(workdir: pathlib.Path) -> list[str]:
  """The commands that use the result: recognise a photo, serve the recognizer."""
  checkpoint = shlex.quote(str(workdir / "train"))
  index = shlex.quote(str(workdir / "index"))
  return [
    f"landmark-jax recognize --checkpoint {checkpoint} --index {index} PHOTO.jpg",
    f"landmark-jax serve --checkpoint {checkpoint} --index {index}",
  ]


def run_fit(
  photos,
  workdir,
  *,
  train: bool = True,
  second_round: bool = True,
  first_step: str = "split the photos into training, validation and test photos",
  model: str = "model",
  **options,
) -> dict:
  """`fit`, printing its steps, the table, and the commands that use the result. The demo
  is this on the embedded dataset (``photos=None``)."""
  workdir = pathlib.Path(workdir)
  started = time.perf_counter()
  config = load_config(options.get("config", FIT_CONFIG), options.get("overrides", ()))
  headlines = step_headlines(
    first_step,
    train=train,
    second_round=second_round and train,
    target=config.calibration.target_specificity,
    model=model,
    pretrained=(options.get("pretrained") or config.model.pretrained) not in (None, "", "none"),
  )
  announce_step(headlines["dataset"], False)
  result = fit(
    photos,
    workdir,
    train=train,
    second_round=second_round,
    announce=lambda step, done: announce_step(headlines[step], done),
    say=say_line,
    **options,
  )
  timings = print_outcome(result, started, second_round and train)
  if result.not_evaluated:
    print(
      f"Not evaluated (fewer than {photo_split.MIN_PHOTOS_TO_SPLIT} photos): "
      + photo_split.describe(result.not_evaluated)
    )
  print("\nRecognise a photo, or serve the recognizer:")
  for line in next_commands(workdir):
    print(f"  {line}")
  return {"evaluation": result.evaluation, "timings": timings}
