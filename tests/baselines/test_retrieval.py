"""The DELF-style recognizer on the embedded dataset, with the demo model's backbone."""

import dataclasses

import numpy as np
import pytest

from landmark_jax.baselines.delf import build_delf, min_inliers_for_specificity
from landmark_jax.config import load_config
from landmark_jax.data import GLDv2Source, source_for
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.eval.metrics import sensitivity_specificity
from tests.helpers import write_bad_folder

# The demo's DELF settings (tiny_cpu's `delf` section), with exact search, so the vote test
# has an exact reference; 10 candidates keep the suite quick.
CONFIG = dataclasses.replace(
  load_config("tiny_cpu").delf, attention="feature_norm", index_backend="exact", num_candidates=10
)


def training_source(trained):
  return source_for(trained.config.data, "train", trained.label_map)


@pytest.fixture(scope="module")
def delf(trained):
  return build_delf(trained, training_source(trained), CONFIG, progress=False)


@pytest.fixture(scope="module")
def splits(trained, demo_cache):
  root = demo_dataset()
  return {
    name: GLDv2Source(root, csv=f"{name}.csv", label_map=trained.label_map)
    for name in ("val", "test")
  }


def test_database_holds_every_landmark_photo_and_counts_its_bytes(delf, trained):
  source = training_source(trained)
  landmark = source.labels != source.label_map.non_landmark_label
  database = delf.database
  assert len(database) == landmark.sum()
  assert sorted(database.image_ids) == sorted(str(i) for i in source.ids[landmark])
  assert database.descriptors.shape[1] == CONFIG.pca_dim
  assert database.offsets[-1] == len(database.descriptors) == len(database.keypoints)
  assert database.nbytes == (
    database.descriptors.nbytes
    + database.keypoints.nbytes
    + database.index.labels.nbytes
    + database.offsets.nbytes
  )


def test_shortlist_votes_equal_a_brute_force_count(delf, splits):
  (query,) = delf.extractor.extract([splits["test"].paths[0]])
  photos, votes = delf.database.shortlist(query, CONFIG)
  # Reference: exact neighbours by a full similarity sort, one vote per (descriptor, photo).
  similarity = query.descriptors @ delf.database.descriptors.T
  nearest = np.argsort(-similarity, axis=1, kind="stable")[:, : CONFIG.neighbors]
  owner = (
    np.searchsorted(delf.database.offsets, np.arange(len(delf.database.descriptors)), side="right")
    - 1
  )
  close = np.take_along_axis(similarity, nearest, 1) >= 1 - CONFIG.max_descriptor_distance**2 / 2
  expected = {}
  for row in range(len(query)):
    for photo in set(owner[nearest[row][close[row]]].tolist()):
      expected[photo] = expected.get(photo, 0) + 1
  ranked = sorted(expected.items(), key=lambda item: (-item[1], item[0]))[: CONFIG.num_candidates]
  assert list(zip(photos.tolist(), votes.tolist())) == ranked


def test_a_database_photo_finds_itself(delf, trained):
  source = training_source(trained)
  landmark = np.flatnonzero(source.labels != source.label_map.non_landmark_label)
  for position in landmark[::25]:
    (prediction,) = delf.recognize([source.paths[position]])
    assert prediction.image_id == str(source.ids[position])
    assert prediction.inliers >= 0.5 * CONFIG.max_features / 3  # most keypoints re-found


def test_calibrated_baseline_recognises_held_out_views(delf, splits):
  _, truth, predictions = delf.predict_source(splits["val"])
  calibration = min_inliers_for_specificity(truth, predictions, 0.95)
  # Recomputed by hand: the share of non-landmark photos below the threshold, and the
  # smallest threshold that reaches the target (one inlier fewer would not).
  inliers = np.array([p.inliers for p, t in zip(predictions, truth) if t is None])
  threshold = calibration["min_inliers"]
  assert calibration["specificity"] == pytest.approx(np.mean(inliers < threshold))
  assert np.mean(inliers < threshold) >= 0.95 > np.mean(inliers < np.ceil(threshold) - 1)
  calibrated = delf.with_min_inliers(threshold)
  _, truth, predictions = calibrated.predict_source(splits["test"])
  quality = sensitivity_specificity([p.landmark_id for p in predictions], truth)
  assert quality["specificity"] >= 0.85  # unseen kinds of non-landmark photos
  assert quality["sensitivity"] >= 0.5  # 8 landmarks: chance is 1/8


def test_trained_attention_builds_a_working_recognizer(trained, splits):
  config = dataclasses.replace(CONFIG, attention="trained", attention_steps=30)
  source = training_source(trained)
  delf = build_delf(trained, source.subset(np.arange(0, len(source), 2)), config, progress=False)
  assert delf.extractor.attention_params is not None
  _, truth, predictions = delf.predict_source(splits["test"].subset(np.arange(40)))
  landmark = [(p.nearest, t) for p, t in zip(predictions, truth) if t is not None]
  assert np.mean([p == t for p, t in landmark]) >= 0.5


@pytest.mark.slow
def test_unreadable_database_photos_are_skipped_and_named(tmp_path):
  import jax

  from landmark_jax.baselines.delf import LocalFeatureExtractor
  from landmark_jax.data import ImageFolderSource
  from landmark_jax.models import get_backbone

  write_bad_folder(tmp_path)  # 6 good photos, a truncated, an empty, a text, a bomb, a DDS
  backbone = get_backbone("resnet_tiny")
  variables = jax.jit(backbone.init)(jax.random.key(0), np.zeros((1, 64, 64, 3), np.float32))
  config = dataclasses.replace(CONFIG, image_size=64, scales=(1.0,))
  delf = build_delf(
    LocalFeatureExtractor(backbone, variables, config),
    ImageFolderSource(tmp_path),
    config,
    progress=False,
  )
  assert sorted(delf.database.image_ids) == [f"7/good{i}" for i in range(6)]
  assert sorted(delf.database.skipped) == ["7/bomb", "7/empty", "7/odd", "7/text", "7/truncated"]
  with pytest.raises(ValueError, match="no landmark photos"):
    build_delf(delf.extractor, ImageFolderSource(tmp_path).subset([]), config)
