"""`data.clean_csv`: training on a cleaned dataset (GLDv2's train_clean.csv, or the one
`landmark-jax clean` writes) for every data kind that can name its photos, the non-landmark
photos kept, and a clean CSV from other data refused with one line."""

import csv
import dataclasses

import pytest
from PIL import Image

from landmark_jax.data import DataConfig, GLDv2Source, source_for
from landmark_jax.errors import ConfigError, DataError, MissingFileError, UserError

# A GLDv2-layout dataset: landmark 7 (3 photos), landmark 9 (2), a train.csv row without a
# landmark, and non_landmark.csv.
TRAIN = [
  ("aaa001", "7"),
  ("aab002", "7"),
  ("aac003", "7"),
  ("bba004", "9"),
  ("bbb005", "9"),
  ("ccc006", ""),
]
NON_LANDMARK = ["ddd007", "dde008"]


def write_csv(path, header, rows):
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(rows)
  return path


@pytest.fixture
def gldv2(tmp_path):
  root = tmp_path / "gldv2"
  for image_id in [i for i, _ in TRAIN] + NON_LANDMARK:
    path = root / "images" / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), "gray").save(path)
  write_csv(root / "train.csv", ("id", "url", "landmark_id"), [(i, "", l) for i, l in TRAIN])
  write_csv(root / "non_landmark.csv", ("id", "url"), [(i, "") for i in NON_LANDMARK])
  write_csv(
    root / "landmarks.csv",
    ("landmark_id", "name", "region"),
    [(7, "seven", "europe_russia"), (9, "nine", "europe_russia")],
  )
  return root


def test_gldv2_keeps_the_listed_landmark_photos_and_every_non_landmark_one(gldv2):
  write_csv(gldv2 / "train_clean.csv", ("landmark_id", "images"), [(7, "aaa001 aac003")])
  source = GLDv2Source(gldv2, clean_csv="train_clean.csv", non_landmark_csv="non_landmark.csv")
  assert dict(zip(source.ids, source.landmark_ids())) == {
    "aaa001": 7,
    "aac003": 7,
    "ccc006": None,
    "ddd007": None,
    "dde008": None,
  }
  # Labels are the cleaned data's: landmark 9 lost every photo, so the model has no class 9.
  assert source.label_map.landmark_ids == (7,)
  assert source.labels.tolist() == [0, 0, 1, 1, 1]


def landmark_photos(source):
  return sorted(i for i, l in zip(source.ids, source.landmark_ids()) if l is not None)


@pytest.mark.parametrize("kind", ["gldv2", "demo"])
def test_source_for_honours_clean_csv_in_root_by_absolute_path_or_from_the_cwd(
  gldv2, tmp_path, monkeypatch, kind
):
  clean = write_csv(
    tmp_path / "elsewhere.csv", ("landmark_id", "images"), [(7, "aab002"), (9, "bba004 bbb005")]
  )
  write_csv(gldv2 / "in_root.csv", ("landmark_id", "images"), [(9, "bbb005")])
  data = DataConfig(kind=kind, root=str(gldv2), non_landmark_csv="non_landmark.csv")
  assert len(source_for(data, "train")) == len(TRAIN) + len(NON_LANDMARK)  # no clean CSV
  absolute = source_for(dataclasses.replace(data, clean_csv=str(clean)), "train")
  assert landmark_photos(absolute) == ["aab002", "bba004", "bbb005"]
  assert sum(l is None for l in absolute.landmark_ids()) == 1 + len(NON_LANDMARK)
  in_root = source_for(dataclasses.replace(data, clean_csv="in_root.csv"), "train")
  assert landmark_photos(in_root) == ["bbb005"]
  monkeypatch.chdir(tmp_path)
  from_cwd = source_for(dataclasses.replace(data, clean_csv="elsewhere.csv"), "train")
  assert landmark_photos(from_cwd) == ["aab002", "bba004", "bbb005"]


def test_folder_kind_honours_clean_csv(tmp_path):
  for folder, names in (("eiffel", "abc"), ("42", "de"), ("non_landmark", "fg")):
    for name in names:
      (tmp_path / "photos" / folder).mkdir(parents=True, exist_ok=True)
      Image.new("RGB", (8, 8), "gray").save(tmp_path / "photos" / folder / f"{name}.jpg")
  clean = write_csv(
    tmp_path / "clean.csv",
    ("landmark_id", "images"),
    [("eiffel", "eiffel/a eiffel/c"), (42, "42/e")],
  )
  source = source_for(
    DataConfig(kind="folder", root=str(tmp_path / "photos"), clean_csv=str(clean)), "train"
  )
  assert dict(zip(source.ids, source.landmark_ids())) == {
    "42/e": 42,
    "eiffel/a": "eiffel",
    "eiffel/c": "eiffel",
    "non_landmark/f": None,
    "non_landmark/g": None,
  }


@pytest.mark.parametrize(
  "rows, needle",
  [
    ([(7, "aaa001 zzz999")], "names 1 photo(s) that"),  # a photo the data does not have
    ([(9, "aaa001")], "another landmark"),  # aaa001 is landmark 7's
    ([(7, "aaa001"), (9, "aaa001")], "under two landmarks"),
  ],
)
def test_a_clean_csv_from_other_data_is_one_line_error(gldv2, rows, needle):
  write_csv(gldv2 / "train_clean.csv", ("landmark_id", "images"), rows)
  with pytest.raises(DataError) as error:
    GLDv2Source(gldv2, clean_csv="train_clean.csv")
  assert needle in str(error.value) and "\n" not in str(error.value)
  assert "train_clean.csv" in str(error.value)


def test_a_missing_clean_csv_names_where_it_was_looked_for(gldv2):
  with pytest.raises(MissingFileError, match="no_such_clean.csv") as error:
    source_for(DataConfig(kind="gldv2", root=str(gldv2), clean_csv="no_such_clean.csv"))
  assert isinstance(error.value, UserError) and str(gldv2) in str(error.value)


def test_tfds_refuses_clean_csv():
  with pytest.raises(ConfigError, match="data.clean_csv"):
    source_for(DataConfig(kind="tfds", tfds_name="anything", clean_csv="train_clean.csv"))


def test_a_file_found_from_the_working_directory_is_saved_by_its_absolute_path(
  tmp_path, monkeypatch
):
  from landmark_jax.data.catalog import with_found_files
  from landmark_jax.data.config import DataConfig

  root = tmp_path / "dataset"
  root.mkdir()
  (root / "train_clean.csv").write_text("landmark_id,images\n")
  here = tmp_path / "here"
  here.mkdir()
  (here / "regions.csv").write_text("landmark_id,region\n")
  monkeypatch.chdir(here)
  data = with_found_files(
    DataConfig(
      kind="gldv2",
      root=str(root),
      clean_csv="train_clean.csv",
      regions_csv="regions.csv",
      non_landmark_csv="absent.csv",
    )
  )
  assert data.clean_csv == "train_clean.csv"  # the dataset's own file: stays relative to it
  assert data.regions_csv == str(here / "regions.csv")
  assert data.non_landmark_csv == "absent.csv"  # not found: left for the source to name
