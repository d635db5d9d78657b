import itertools

import jax
import numpy as np
import pytest

from landmark_jax import sharding
from landmark_jax.data import (
  DeviceIterator,
  GLDv2Source,
  ImageConfig,
  ImageFolderSource,
  PipelineConfig,
  eval_dataset,
  train_dataset,
)
from landmark_jax.data.pipeline import SkippedImages
from tests.helpers import write_bad_folder

SMALL = ImageConfig(resize_size=40, crop_size=32)


@pytest.fixture(scope="module")
def mini_source(landmarks_mini):
  return GLDv2Source(
    landmarks_mini, non_landmark_csv="non_landmark.csv", regions_csv="landmarks.csv"
  )


def take(dataset_or_iterator, n):
  return list(itertools.islice(iter(dataset_or_iterator), n))


def assert_same_batches(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["image"], y["image"])
    np.testing.assert_array_equal(x["label"], y["label"])
    np.testing.assert_array_equal(x["id"], y["id"])


@pytest.mark.slow
def test_same_seed_same_batches_whatever_the_worker_count(mini_source):
  config = PipelineConfig(batch_size=8, num_workers=2, seed=3, image=SMALL)
  first = take(train_dataset(mini_source, config, num_epochs=2)[0], 8)
  second = take(train_dataset(mini_source, config, num_epochs=2)[0], 8)
  in_process = take(
    train_dataset(
      mini_source, PipelineConfig(batch_size=8, num_workers=0, seed=3, image=SMALL), num_epochs=2
    )[0],
    8,
  )
  assert_same_batches(first, second)
  assert_same_batches(first, in_process)
  other = take(
    train_dataset(
      mini_source, PipelineConfig(batch_size=8, num_workers=0, seed=4, image=SMALL), num_epochs=2
    )[0],
    8,
  )
  assert not all(np.array_equal(a["id"], b["id"]) for a, b in zip(first, other))


def test_each_epoch_is_a_new_permutation_of_every_image(mini_source):
  config = PipelineConfig(batch_size=1, num_workers=0, image=SMALL)
  ids = [str(b["id"][0]) for b in train_dataset(mini_source, config, num_epochs=2)[0]]
  n = len(mini_source)
  assert sorted(ids[:n]) == sorted(ids[n:]) == sorted(mini_source.ids)
  assert ids[:n] != ids[n:]


@pytest.mark.slow
def test_resume_mid_epoch_gives_the_uninterrupted_batches(mini_source):
  config = PipelineConfig(batch_size=4, num_workers=2, image=SMALL)
  dataset, _ = train_dataset(mini_source, config, num_epochs=2)
  uninterrupted = take(dataset, 10)

  iterator = iter(train_dataset(mini_source, config, num_epochs=2)[0])
  take(iterator, 4)  # 16 of 55 images: mid-epoch
  state = iterator.get_state()
  del iterator  # the killed run

  resumed = iter(train_dataset(mini_source, config, num_epochs=2)[0])
  resumed.set_state(state)
  assert_same_batches(take(resumed, 6), uninterrupted[4:])


def test_two_process_shards_are_disjoint_and_cover_the_whole_batches(mini_source):
  config = PipelineConfig(batch_size=2, num_workers=0, image=SMALL)  # 1 image per process
  shards = []
  for index in range(2):
    dataset, _ = train_dataset(mini_source, config, num_epochs=1, shard_index=index, shard_count=2)
    shards.append([str(b["id"][0]) for b in dataset])
  assert not set(shards[0]) & set(shards[1])
  # 55 photos make 27 global batches of 2: the odd one out is dropped, as on one process.
  assert len(shards[0]) == len(shards[1]) == 27
  assert set(shards[0] + shards[1]) < set(mini_source.ids)


@pytest.mark.parametrize("epochs", [1, 2])
def test_processes_together_deliver_the_one_process_batches(mini_source, epochs):
  # Global batch 6 over 3 processes: each step's batch, process 0's 2 records then process
  # 1's then process 2's, is the one-process batch, ids and augmented pixels alike.
  config = PipelineConfig(batch_size=6, num_workers=0, image=SMALL)
  whole = list(train_dataset(mini_source, config, num_epochs=epochs)[0])
  parts = [
    list(train_dataset(mini_source, config, num_epochs=epochs, shard_index=index, shard_count=3)[0])
    for index in range(3)
  ]
  assert len(whole) == (epochs * len(mini_source)) // 6
  assert [len(part) for part in parts] == [len(whole)] * 3
  for step, batch in enumerate(whole):
    joined = {key: np.concatenate([part[step][key] for part in parts]) for key in batch}
    np.testing.assert_array_equal(joined["id"], batch["id"])
    np.testing.assert_array_equal(joined["image"], batch["image"])
    np.testing.assert_array_equal(joined["label"], batch["label"])


@pytest.mark.slow
def test_corrupt_files_are_skipped_and_counted(tmp_path, caplog):
  write_bad_folder(tmp_path)
  source = ImageFolderSource(tmp_path)
  assert len(source) == 11
  config = PipelineConfig(batch_size=2, num_workers=2, image=SMALL)
  dataset, skipped = train_dataset(source, config, num_epochs=1)
  batches = list(dataset)
  delivered = sorted(str(i) for b in batches for i in b["id"])
  assert delivered == [f"7/good{i}" for i in range(6)]
  assert skipped.total == 5 and skipped.by_epoch[0] == 5
  reasons = dict(skipped.examples)
  assert "truncated" in reasons["7/truncated"] and "empty" in reasons["7/empty"]
  assert "not an image" in reasons["7/text"] and "decompression bomb" in reasons["7/bomb"]
  assert "DDS images are not accepted" in reasons["7/odd"]  # not in image.formats
  assert "skipping image 7/bomb" in caplog.text


def test_eval_batches_are_padded_and_masked_in_order(tmp_path):
  write_bad_folder(tmp_path)
  source = ImageFolderSource(tmp_path)
  config = PipelineConfig(batch_size=4, num_workers=0, image=SMALL)
  batches = list(eval_dataset(source, config))
  assert [b["image"].shape for b in batches] == [(4, 32, 32, 3)] * 3
  ids = [str(i) for b in batches for i in b["id"]]
  mask = np.concatenate([b["mask"] for b in batches])
  assert ids[:11] == list(source.ids)  # in source order, then a padding row
  assert mask.tolist() == [i.startswith("7/good") for i in ids[:11]] + [False]


def test_device_iterator_shards_the_batch_over_the_mesh(mini_source):
  mesh = sharding.make_data_mesh()
  config = PipelineConfig(batch_size=16, num_workers=0, image=SMALL)
  iterator = DeviceIterator(train_dataset(mini_source, config, num_epochs=1)[0], mesh)
  batch = next(iterator)
  assert isinstance(batch["image"], jax.Array) and batch["image"].shape == (16, 32, 32, 3)
  assert batch["image"].sharding.spec == jax.sharding.PartitionSpec("data")
  assert {s.data.shape for s in batch["image"].addressable_shards} == {(2, 32, 32, 3)}
  assert isinstance(batch["id"], np.ndarray)  # ids stay on the host
  state = iterator.get_state()
  following = next(iterator)
  iterator.set_state(state)
  np.testing.assert_array_equal(next(iterator)["id"], following["id"])


def test_an_epoch_is_logged_only_when_it_skipped_photos(caplog):
  skipped = SkippedImages()
  records = [
    {"epoch": 0, "valid": True, "id": "a"},
    {"epoch": 1, "valid": False, "id": "b", "error": "truncated"},
    {"epoch": 2, "valid": True, "id": "c"},
    {"epoch": 3, "valid": True, "id": "d"},
  ]
  with caplog.at_level("INFO", logger="landmark_jax.data.pipeline"):
    kept = [skipped(record) for record in records]
  assert kept == [True, False, True, True]
  said = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
  assert said == ["epoch 1: 1 unreadable images skipped"]  # not epochs 0 and 2
  assert skipped.total == 1
