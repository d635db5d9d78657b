"""What a recipe run is asked to do, and the data section every `train` of it gets."""

from __future__ import annotations

import csv
import dataclasses
import pathlib

from landmark_jax.config import TrainConfig, load_config
from landmark_jax.data import photo_split
from landmark_jax.errors import ConfigError
from landmark_jax.recipe.layout import Layout

# The data keys the recipe sets from its flags; an override of one is refused, naming the
# flag, so that the train steps and the recipe's own checks read the same files.
DATA_FLAGS = {
  "kind": "--data",
  "root": "--data",
  "csv": "--data",
  "val_csv": "--data (its val.csv), else the recipe's split",
  "test_csv": "--data (its test.csv), else the recipe's split",
  "holdout_csv": "--data (its val.csv), else the recipe's split",
  "non_landmark_csv": "--non-landmark-csv",
  "regions_csv": "--landmarks-csv (a region column) or the regions step",
  "clean_csv": "the recipe (round 2 trains on round 1's cleaning)",
  "packed_dir": "--packed-dir",
}


@dataclasses.dataclass(frozen=True)
class RecipeOptions:
  data: pathlib.Path  # a GLDv2-layout folder, absolute
  workdir: pathlib.Path  # absolute; on storage every process sees
  config: str = "default"
  overrides: tuple[str, ...] = ()
  pretrained: str | None = None
  non_landmark_csv: pathlib.Path | None = None  # default: <data>/non_landmark.csv
  landmarks_csv: pathlib.Path | None = None  # default: <data>/landmarks.csv
  packed_dir: str = ""
  split_seed: int = 0
  held_out_max: int = 10_000
  target_recall: float = 0.99
  min_photos: int = 20
  export: bool = True
  embed_batch_size: int = 256
  num_workers: int = 8
  embed_shard_size: int = 8192
  heartbeat_timeout: int | None = None
  single_steps_platform: str | None = None

  @property
  def layout(self) -> Layout:
    return Layout(self.workdir)

  @property
  def own_split(self) -> bool:
    """The data brings its validation and test photos (``val.csv``, ``test.csv``)."""
    return photo_split.has_own_split(self.data)

  def non_landmark_list(self) -> pathlib.Path | None:
    if self.non_landmark_csv is not None:
      return self.non_landmark_csv
    found = self.data / "non_landmark.csv"
    return found if found.is_file() else None

  def landmarks_list(self) -> pathlib.Path | None:
    if self.landmarks_csv is not None:
      return self.landmarks_csv
    found = self.data / "landmarks.csv"
    return found if found.is_file() else None

  def landmark_columns(self) -> list[str]:
    path = self.landmarks_list()
    if path is None or not path.is_file():
      return []
    with open(path, newline="") as f:
      return [name.strip() for name in next(csv.reader(f), [])]

  def user_config(self) -> TrainConfig:
    """The named config with the user's overrides (the data section still the config's)."""
    given = [o.split("=", 1)[0].strip() for o in self.overrides]
    for key in given:
      if key.startswith("data.") and key[5:] in DATA_FLAGS:
        raise ConfigError(f"{key}: the recipe sets it from {DATA_FLAGS[key[5:]]}")
    return load_config(self.config, self.model_overrides())

  def model_overrides(self) -> list[str]:
    pretrained = [f"model.pretrained={self.pretrained}"] if self.pretrained is not None else []
    return [*self.overrides, *pretrained]

  def needs_regions_step(self, config: TrainConfig) -> bool:
    """The curriculum needs regions that the landmarks CSV does not have as a column."""
    return config.curriculum.enabled and "region" not in self.landmark_columns()

  def data_overrides(self, config: TrainConfig, clean_csv: str = "") -> list[str]:
    """The ``data.*`` overrides of a `train` step of `config` (the user's): those that
    differ from its data section (round 2 gives `clean_csv`)."""
    split = self.layout.split
    if self.own_split:
      csvs = {"csv": "train.csv", "val_csv": "val.csv", "test_csv": "test.csv"}
      non_landmarks = self.non_landmark_list()
    else:
      csvs = {
        name: str(split / photo_split.SPLIT_FILES[part])
        for name, part in (("csv", "train"), ("val_csv", "val"), ("test_csv", "test"))
      }
      non_landmarks = None  # in the split's CSVs, as rows without a landmark
    regions = ""
    if config.curriculum.enabled:
      regions = str(
        self.layout.regions if self.needs_regions_step(config) else self.landmarks_list()
      )
    categories = self.data / "train_label_to_category.csv"
    values = {
      "kind": "gldv2",
      "root": str(self.data),
      **csvs,
      "holdout_csv": csvs["val_csv"],
      "non_landmark_csv": str(non_landmarks) if non_landmarks else "",
      "regions_csv": regions,
      "categories_csv": categories.name if categories.is_file() else "",
      "clean_csv": clean_csv,
      "packed_dir": self.packed_dir,
    }
    return [
      f"data.{key}={value}" for key, value in values.items() if getattr(config.data, key) != value
    ]

  def run_config(self) -> TrainConfig:
    """Round 1's config, exactly as its `train` step builds it."""
    user = self.user_config()
    return load_config(self.config, [*self.model_overrides(), *self.data_overrides(user)])
