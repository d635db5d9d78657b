"""The recipe's split: fit's 60/20/20 per landmark, each held-out split capped, the rest
returned to training; written as id,landmark_id lists that the GLDv2 source reads by id."""

from landmark_jax.data import GLDv2Source
from landmark_jax.recipe import split
from tests.recipe.helpers import listed_folder


def test_held_out_photos_are_capped_and_the_rest_train(tmp_path):
  data = listed_folder(tmp_path / "data")  # 4 landmarks × 10 photos, 40 non-landmark photos
  listed = split.list_data(data / "train.csv", data / "non_landmark.csv")
  made = split.make_split(listed, seed=0, held_out_max=5)
  counts = split.photo_split.split_counts(made)
  # Uncapped: 2 of each landmark's 10 photos (8 in all) and 8 of the 40 non-landmark photos
  # per held-out split; capped at 5 each, 3 + 3 of each go back to training.
  assert counts["val"] == counts["test"] == {"landmark_photos": 5, "non_landmark_photos": 5}
  assert counts["train"] == {"landmark_photos": 24 + 6, "non_landmark_photos": 24 + 6}
  every = [i for part in made.values() for i in part.ids]
  assert sorted(every) == sorted(listed.photos.ids)  # each photo once
  assert split.make_split(listed, seed=0, held_out_max=5) == made  # seeded
  assert split.make_split(listed, seed=1, held_out_max=5)["val"] != made["val"]


def test_the_written_split_is_read_by_id_under_the_data_folder(tmp_path):
  data = listed_folder(tmp_path / "data")
  listed = split.list_data(data / "train.csv", data / "non_landmark.csv")
  folder = tmp_path / "w" / "split"
  made = split.make_split(listed, seed=0, held_out_max=100)
  split.write_split(made, folder, {"seed": 0})
  source = GLDv2Source(data, csv=str(folder / "train.csv"), check_files=False)
  assert sorted(source.ids) == sorted(made["train"].ids)
  # GLDv2's layout under the data folder: images/<a>/<b>/<c>/<id>.jpg.
  first = source.ids[0]
  assert source.paths[0] == str(data / "images" / first[0] / first[1] / first[2] / f"{first}.jpg")
  assert int(source.images_per_class()[-1]) == 24  # the non-landmark rows (blank ids)
