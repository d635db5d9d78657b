"""A landmarks CSV is checked before it is used: a misnamed column, a landmark with two rows
and a row for no landmark are one-line errors in `build-index`, `add-landmarks` and
`update-landmarks` (all through `refuse_unmatched_rows`), unless --ignore-unmatched lets the
unmatched rows pass with one warning."""

import logging

import numpy as np
import pytest

from landmark_jax.cli import main
from landmark_jax.data import LabelMap
from landmark_jax.embedding import EmbeddedPhotos
from landmark_jax.errors import DataError
from landmark_jax.index import CentroidIndex
from landmark_jax.index.landmarks import LandmarkInfo, load_landmarks_csv
from landmark_jax.stages.new_landmarks import add_landmarks
from tests.helpers import clustered_vectors
from tests.index.test_landmark_names import DEMO, demo_index


def write(path, text):
  path.write_text(text)
  return path


@pytest.mark.parametrize(
  "header, message",
  [
    (
      "landmark_id,name,lat,lon",
      "column(s) 'lat', 'lon' would be ignored: name them latitude, longitude",
    ),
    ("landmark_id,Name,latitude,longitude", "column(s) 'Name' would be ignored: name them name"),
    ("landmark_id,name,latitude", "has a latitude column but no longitude"),
    (
      "id,name,latitude,longitude",
      "has no landmark_id column (its header: id,name,latitude,longitude)",
    ),
  ],
)
def test_a_header_read_wrong_is_refused_with_the_expected_one(tmp_path, header, message):
  path = write(tmp_path / "landmarks.csv", f"{header}\n0,astronaut,48.0\n")
  with pytest.raises(DataError) as error:
    load_landmarks_csv(path)
  assert message in str(error.value)
  assert "expected a header like landmark_id,name,latitude,longitude,category" in str(error.value)
  assert "landmark_id is required" in str(error.value)


def test_other_columns_are_ignored_and_the_documented_header_reads(tmp_path):
  path = write(
    tmp_path / "landmarks.csv",
    "landmark_id,name,region,latitude,longitude\n2,sacre_coeur_paris,europe,48.88671,2.34305\n",
  )
  assert load_landmarks_csv(path) == {2: LandmarkInfo("sacre_coeur_paris", 48.88671, 2.34305)}


def test_a_landmark_with_several_rows_is_refused_naming_them(tmp_path):
  rows = [f"{i},landmark {i}" for i in range(8)] + [f"{i},again" for i in range(7)] + ["07,again"]
  path = write(tmp_path / "landmarks.csv", "landmark_id,name\n" + "\n".join(rows) + "\n")
  with pytest.raises(DataError) as error:
    load_landmarks_csv(path)
  # 0–6 twice, 7 as "7" and "07": eight ids, five named with the lines of their rows.
  assert "8 landmark_id(s) have several rows" in str(error.value)
  assert "0 (lines 2, 10), 1 (lines 3, 11)" in str(error.value)
  assert "and 3 more; give each landmark one row" in str(error.value)


def clean_folder(path, landmark_ids=(0, 1, 2, 3)):
  """What `clean` leaves for `build-index`: two centroids per landmark, a label map."""
  path.mkdir()
  vectors, _ = clustered_vectors(2 * len(landmark_ids), dim=16, clusters=len(landmark_ids))
  np.save(path / "centroids.npy", vectors)
  np.save(path / "centroid_labels.npy", np.arange(len(vectors)) // 2)
  np.save(path / "cluster_sizes.npy", np.full(len(vectors), 3))
  LabelMap.from_ids(landmark_ids).save(path / "label_map.json")
  return path


def test_build_index_refuses_rows_of_no_landmark_unless_told(tmp_path, capsys, caplog):
  clean = clean_folder(tmp_path / "clean")
  csv = write(
    tmp_path / "landmarks.csv",
    "landmark_id,name,latitude,longitude\n0,astronaut,48.0,2.0\n17,elsewhere,1.0,1.0\n",
  )
  argv = ["build-index", "--clean", str(clean), "--out", str(tmp_path / "index")]
  argv += ["--landmarks-csv", str(csv), "backend=exact"]
  assert main(argv) == 2
  err = capsys.readouterr().err.strip()
  assert "\n" not in err and "1 row(s) match no landmark of the cleaning's label map" in err
  assert "landmark_id 17; correct their landmark_id, or pass --ignore-unmatched" in err
  assert not (tmp_path / "index").exists()

  with caplog.at_level(logging.WARNING):
    assert main([*argv, "--ignore-unmatched"]) == 0
  assert "landmark_id 17; skipped (--ignore-unmatched)" in caplog.text
  assert CentroidIndex.load(tmp_path / "index").landmarks == {
    0: LandmarkInfo("astronaut", 48.0, 2.0)
  }


def test_build_index_refuses_lat_lon_columns(tmp_path, capsys):
  clean = clean_folder(tmp_path / "clean")
  csv = write(tmp_path / "landmarks.csv", "landmark_id,name,lat,lon\n0,astronaut,48.0,2.0\n")
  argv = ["build-index", "--clean", str(clean), "--out", str(tmp_path / "index")]
  assert main([*argv, "--landmarks-csv", str(csv), "--ignore-unmatched", "backend=exact"]) == 2
  assert "'lat', 'lon' would be ignored" in capsys.readouterr().err


class NewPhotos:
  """The photos of new landmarks, as `add_landmarks` reads a source: their landmark ids."""

  def __init__(self, landmark_ids):
    self.ids = list(landmark_ids)

  def landmark_ids(self):
    return self.ids


def embedded(source):
  label_map = LabelMap.from_ids(dict.fromkeys(source.ids))
  vectors, _ = clustered_vectors(len(source.ids), dim=16, clusters=1, noise=0.05, seed=5)
  labels = np.array([label_map.to_label(lid) for lid in source.ids])
  ids = np.array([f"{lid}/{i}" for i, lid in enumerate(source.ids)])
  return EmbeddedPhotos(ids, labels, vectors, label_map, [])


def not_embedded(source):
  raise AssertionError("the CSV should have been refused before any photo was embedded")


def test_add_landmarks_refuses_a_row_of_no_landmark_before_embedding(caplog):
  source = NewPhotos(["sacre_coeur_paris"] * 4)
  # Row 2 names the new landmark by its folder's name (docs/your-own-landmarks.md: matched,
  # landmark 2 untouched); row 99 describes nothing.
  table = {2: LandmarkInfo("sacre_coeur_paris", 48.88671, 2.34305), 99: LandmarkInfo("nowhere")}
  with pytest.raises(DataError, match=r"my.csv: 1 row\(s\) match no landmark .*landmark_id 99"):
    add_landmarks(demo_index(), not_embedded, source, landmarks=table, csv_name="my.csv")
  with caplog.at_level(logging.WARNING):
    added = add_landmarks(
      demo_index(), embedded, source, landmarks=table, ignore_unmatched=True, csv_name="my.csv"
    )
  assert "my.csv: 1 row(s) match no landmark" in caplog.text
  assert added.index.landmarks["sacre_coeur_paris"] == table[2]
  assert added.index.landmarks[2] == DEMO[2] and 99 not in added.index.landmarks
  # Matched by name alone, nothing to ignore: no error.
  add_landmarks(demo_index(), embedded, source, landmarks={2: table[2]})
