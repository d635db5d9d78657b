import csv
import os

import numpy as np
import pytest
from PIL import Image

from landmark_jax.data import GLDv2Source, ImageFolderSource, TfdsSource, open_image
from landmark_jax.errors import DataError


def read_rows(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def test_landmarks_mini_through_gldv2_source(landmarks_mini):
  source = GLDv2Source(
    landmarks_mini, non_landmark_csv="non_landmark.csv", regions_csv="landmarks.csv"
  )
  train = read_rows(landmarks_mini / "train.csv")
  non_landmark = read_rows(landmarks_mini / "non_landmark.csv")
  landmarks = read_rows(landmarks_mini / "landmarks.csv")
  assert len(source) == len(train) + len(non_landmark) and source.missing == 0

  # Labels map back to the CSV's landmark ids; the non-landmark list to class n.
  expected = {row["id"]: int(row["landmark_id"]) for row in train}
  expected.update({row["id"]: None for row in non_landmark})
  assert dict(zip(source.ids, source.landmark_ids())) == expected
  n = len({row["landmark_id"] for row in train})
  assert source.label_map.num_classes == n
  assert (source.labels[len(train) :] == n).all()

  # Regions (and names) come from landmarks.csv; labels are grouped by curriculum part.
  regions = {int(r["landmark_id"]): r["region"] for r in landmarks}
  stage = {"europe_russia": 0, "north_america_oceania": 1}
  for label, landmark_id in enumerate(source.label_map.landmark_ids):
    assert source.label_map.stage_of_label(label) == stage[regions[landmark_id]]
  assert source.names[2] == "sacre_coeur_paris"

  # Every image decodes to RGB.
  for i in range(len(source)):
    image = open_image(source[i]["path"], draft_size=256)
    assert image.mode == "RGB" and min(image.size) >= 256


def test_missing_files_are_counted_up_front(landmarks_mini, tmp_path, caplog):
  rows = read_rows(landmarks_mini / "train.csv")
  with open(tmp_path / "train.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, ["id", "url", "landmark_id"])
    writer.writeheader()
    writer.writerows(rows)
    writer.writerow({"id": "ffffffffffff0001", "url": "", "landmark_id": "1"})
    writer.writerow({"id": "ffffffffffff0002", "url": "", "landmark_id": "99"})
  os.symlink(landmarks_mini / "images", tmp_path / "images")
  source = GLDv2Source(tmp_path)
  assert source.missing == 2 and len(source) == len(rows)
  assert "2 of 28 images named in train.csv are missing" in caplog.text
  assert 99 not in source.label_map.landmark_ids  # a landmark with no image left has no class


def test_clean_csv_keeps_only_listed_images(landmarks_mini, tmp_path):
  rows = read_rows(landmarks_mini / "train.csv")
  kept = [r["id"] for r in rows[:5]]
  with open(tmp_path / "train_clean.csv", "w") as f:  # each photo under its own landmark
    f.write("landmark_id,images\n")
    for landmark in dict.fromkeys(r["landmark_id"] for r in rows[:5]):
      f.write(f"{landmark},{' '.join(r['id'] for r in rows[:5] if r['landmark_id'] == landmark)}\n")
  os.symlink(landmarks_mini / "images", tmp_path / "images")
  os.symlink(landmarks_mini / "train.csv", tmp_path / "train.csv")
  source = GLDv2Source(tmp_path, clean_csv="train_clean.csv")
  assert sorted(source.ids) == sorted(kept)


def write_image(path, color, size=(40, 30)):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.new("RGB", size, color).save(path)


def test_image_folder_source(tmp_path):
  write_image(tmp_path / "eiffel" / "a.jpg", "red")
  write_image(tmp_path / "eiffel" / "b.PNG", "red")
  write_image(tmp_path / "42" / "c.webp", "blue")
  write_image(tmp_path / "non_landmark" / "d.jpeg", "green")
  (tmp_path / "42" / "notes.txt").write_text("not an image")
  source = ImageFolderSource(tmp_path)
  assert source.label_map.landmark_ids == (42, "eiffel")
  assert dict(zip(source.ids, source.landmark_ids())) == {
    "42/c": 42,
    "eiffel/a": "eiffel",
    "eiffel/b": "eiffel",
    "non_landmark/d": None,
  }
  np.testing.assert_allclose(
    np.asarray(open_image(source[0]["path"]))[0, 0], [0, 0, 255], atol=4
  )  # lossy WebP


def test_tfds_source_reads_a_prepared_dataset_without_tensorflow(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (250, 250, 250)]
  paths = []
  for i, color in enumerate(colors):
    write_image(tmp_path / "raw" / f"{i}.png", color)
    paths.append(str(tmp_path / "raw" / f"{i}.png"))

  class TinyLandmarks(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict(
          {
            "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
            "label": tfds.features.ClassLabel(num_classes=3),
          }
        ),
      )

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples()}

    def _generate_examples(self):
      for i, path in enumerate(paths):  # label 2 (the last photo) means "no landmark"
        yield i, {"image": path, "label": [0, 1, 0, 2][i]}

  TinyLandmarks(data_dir=str(tmp_path / "tfds"), file_format="array_record").download_and_prepare()
  source = TfdsSource("tiny_landmarks", data_dir=str(tmp_path / "tfds"), non_landmark_value=2)
  assert source.label_map.landmark_ids == (0, 1)
  assert sorted(source.labels.tolist()) == [0, 0, 1, 2]
  for i in range(len(source)):
    record = source[i]
    pixel = np.asarray(open_image(record["encoded"]))[0, 0]
    expected_label = {colors[0]: 0, colors[2]: 0, colors[1]: 1, colors[3]: 2}[tuple(pixel)]
    assert record["label"] == expected_label
  subset = source.subset([1])
  assert len(subset) == 1 and subset[0]["label"] == source[1]["label"]


def test_gldv2_ids_with_an_image_extension_name_their_file(tmp_path):
  # GLDv2's bare hashes get ".jpg"; an id that already ends in an image extension (any
  # case) is the file's own name, e.g. a PNG listed as "abc1.png".
  write_image(tmp_path / "train" / "a" / "b" / "c" / "abc1.png", "red")
  write_image(tmp_path / "train" / "a" / "b" / "d" / "abd2.JPEG", "green")
  write_image(tmp_path / "train" / "f" / "f" / "0" / "ff01.jpg", "blue")
  (tmp_path / "train.csv").write_text(
    "id,url,landmark_id\nabc1.png,,7\nabd2.JPEG,,7\nff01,,8\nfff9.png,,8\n"
  )
  source = GLDv2Source(tmp_path)
  assert source.missing == 1  # fff9.png: listed, not on disk
  by_id = {source[i]["id"]: source[i]["path"] for i in range(len(source))}
  assert by_id == {
    "abc1.png": str(tmp_path / "train/a/b/c/abc1.png"),
    "abd2.JPEG": str(tmp_path / "train/a/b/d/abd2.JPEG"),
    "ff01": str(tmp_path / "train/f/f/0/ff01.jpg"),
  }
  assert dict(zip(source.ids, source.landmark_ids())) == {"abc1.png": 7, "abd2.JPEG": 7, "ff01": 8}
  # The PNG is really read as the red image it is.
  np.testing.assert_array_equal(np.asarray(open_image(by_id["abc1.png"]))[0, 0], [255, 0, 0])


def test_gldv2_id_too_short_for_the_layout_is_named(tmp_path):
  (tmp_path / "train.csv").write_text("id,url,landmark_id\nab,,1\n")
  with pytest.raises(DataError, match="'ab' is too short"):
    GLDv2Source(tmp_path)
