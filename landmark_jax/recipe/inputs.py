"""What the recipe needs before its first step, checked before any accelerator hour is
spent: each lacking input named with the way to get it."""

from __future__ import annotations

import pathlib

from landmark_jax.config import TrainConfig
from landmark_jax.data import photo_split
from landmark_jax.data.labels import LabelMap, check_unassigned
from landmark_jax.data.sources import ImageSource
from landmark_jax.data.tables import parse_id, read_csv
from landmark_jax.errors import UserError
from landmark_jax.recipe.options import RecipeOptions
from landmark_jax.recipe.split import DataList, list_data, make_split
from landmark_jax.train.recipe import check_curriculum, check_pretrained

SETTINGS = "settings"  # the lack of a config that does not load: no step can be planned
BATCH_LACK = "batch:"  # a batch round 2 could not fill (the estimate refuses it too)


def lacking_inputs(options: RecipeOptions) -> tuple[list[str], DataList | None]:
  """The inputs `options` lacks, in words (empty: the recipe can run), and the data's list
  of photos when it could be read."""
  data, lacks = options.data, []
  prepare = f"`landmark-jax prepare gldv2 --out {data}` downloads GLDv2 there"
  train_csv = data / "train.csv"
  if not data.is_dir():  # a typo or a file: not a folder to download GLDv2 into
    what = "is a file" if data.exists() else "does not exist"
    lacks.append(f"--data {data} {what}: give the GLDv2-layout folder holding train.csv")
  elif not train_csv.is_file() and (data.parent / "train.csv").is_file():
    # One folder too deep (--data …/images): not a folder to download GLDv2 into either.
    lacks.append(f"{train_csv}: not there, but {data.parent} holds one: --data {data.parent}?")
  elif not train_csv.is_file():
    lacks.append(f"{train_csv}: the list of training photos ({prepare})")
  if (
    data.is_dir()
    and not (data.parent / "train.csv").is_file()
    and not options.packed_dir
    and not any((data / d).is_dir() for d in ("images", "train"))
  ):
    lacks.append(f"{data}/images/: the photos ({prepare}; or --packed-dir with --pack's shards)")
  non_landmarks = options.non_landmark_list()
  if non_landmarks is not None and not non_landmarks.is_file():
    lacks.append(f"{non_landmarks}: the non-landmark list (--non-landmark-csv) is not there")
    non_landmarks = None
  config = None
  try:
    config = options.run_config()
  except UserError as error:
    lacks.append(f"{SETTINGS}: {error}")
  if config is not None:
    try:
      check_pretrained(config)
    except UserError as error:
      lacks.append(f"weights (--pretrained): {error}")
  if config is not None and options.needs_regions_step(options.user_config()):
    columns = options.landmark_columns()
    if not ({"latitude", "longitude"} <= set(columns) or "country_code" in columns):
      lacks.append(
        "the curriculum's regions: --landmarks-csv with a region column, or with "
        "latitude,longitude or country_code for the regions step (or "
        "curriculum.enabled=False to train in one stage)"
      )
  listed = None
  if train_csv.is_file():
    try:
      listed = list_data(train_csv, non_landmarks)
    except UserError as error:
      lacks.append(f"{train_csv}: {error}")
  if listed is not None and not options.own_split:
    try:
      # GLDv2 has no photos without a landmark: the likeliest lack, said with its flag.
      add = "give --non-landmark-csv: id[,url] of such photos under --data's images/"
      photo_split.check_splittable(listed.photos, options.min_photos, add_non_landmarks=add)
    except UserError as error:
      lacks.append(f"photos: {error}")
  if config is not None and listed is not None:
    lacks += _curriculum_lacks(config, listed.photos)
    lacks += _batch_lacks(options, config, listed)
  return lacks, listed


def _batch_lacks(options: RecipeOptions, config: TrainConfig, listed: DataList) -> list[str]:
  """A batch of more than half round 1's training photos: cleaning drops some, and round 2
  would then not fill one batch, an hour into the run (`fit` lowers its batch for such data
  itself; a cluster run's batch is the user's to choose, so it is said here)."""
  batch = config.pipeline.batch_size
  # The cheap answer at scale: val and test hold at most `held_out_max` landmark and as many
  # non-landmark photos each, and the rest trains.
  if 2 * batch <= len(listed.photos) - 4 * options.held_out_max:
    return []
  photos = len(listed.photos)
  if not options.own_split:
    photos = len(make_split(listed, options.split_seed, options.held_out_max)["train"])
  if 2 * batch <= photos:
    return []
  fits = 1 << max(0, (photos // 2).bit_length() - 1)  # a power of two: any device count's multiple
  return [
    f"{BATCH_LACK} round 1 trains on {photos} photos, and round 2 on those cleaning keeps: a "
    f"batch of {batch} (pipeline.batch_size) would leave round 2 without one; give "
    "pipeline.batch_size="
    f"{fits} or less (at most half the training photos, a multiple of the devices)"
  ]


def labelled_source(
  config: TrainConfig, photos: photo_split.PhotoList
) -> tuple[ImageSource, str | None]:
  """`photos` as training reads them, labels and regions only (no file is opened), and a
  note when the curriculum's regions are not written yet (the regions step)."""
  regions, note = None, None
  if config.curriculum.enabled:
    csv = pathlib.Path(config.data.regions_csv)
    if csv.is_file():
      regions = {
        parse_id(r["landmark_id"]): r["region"].strip()
        for r in read_csv(csv, ["landmark_id", "region"])
        if r["region"].strip()
      }
    else:
      note = f"{csv} is not written yet (the regions step): one curriculum stage assumed"
  landmark_ids = photos.landmark_ids
  label_map = LabelMap.from_ids((lid for lid in landmark_ids if lid is not None), regions)
  return ImageSource(photos.ids, label_map.to_labels(landmark_ids), None, label_map), note


def _curriculum_lacks(config: TrainConfig, photos: photo_split.PhotoList) -> list[str]:
  """What `train` would refuse about the curriculum's regions, said before the run; only
  once the regions are known (the regions step writes them during the run)."""
  source, not_yet = labelled_source(config, photos)
  if not config.curriculum.enabled or not_yet:
    return []
  try:
    check_curriculum(config, source)
    check_unassigned(source.label_map, config.curriculum.unassigned)
  except UserError as error:
    return [f"regions: {error}"]
  return []
