"""Verified answers (issue 32): off is today's recognizer bitwise; on, every answer follows
the rule recomputed here by hand — the band from the manifest's offsets in float32, the
inliers from matching the stored photos one by one, the first candidate reaching k."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from landmark_jax.baselines.delf.features import LocalFeatures
from landmark_jax.baselines.delf.verification import verify_with
from landmark_jax.data import source_for
from landmark_jax.data.transforms import record_data
from landmark_jax.embedding import EmbeddedPhotos
from landmark_jax.errors import UsageError
from landmark_jax.index import CentroidIndex
from landmark_jax.index.references import References
from landmark_jax.recognize.recognizer import Recognizer
from landmark_jax.stages.local_features import reference_photos


@pytest.fixture(scope="module")
def test_photos(trained):
  source = source_for(trained.config.data, "test", trained.label_map)
  return [record_data(source[i]) for i in range(len(source))]


def test_verification_off_answers_exactly_as_an_index_without_local_features(
  trained, verifying_index_dir, index_dir, test_photos
):
  with_store = CentroidIndex.load(verifying_index_dir)
  assert with_store.local_features is not None and "verification" in with_store.metadata
  # The same index, η and all, without the store (dropping it drops the band too).
  without = with_store.with_local_features(None)
  off = Recognizer(trained, with_store, verify=False)
  plain = Recognizer(trained, without)  # verify=None on an index that cannot verify
  assert off.verifier is None and plain.verifier is None
  answers_off = [off.recognize(photo) for photo in test_photos]
  answers_plain = [plain.recognize(photo) for photo in test_photos]
  assert [a.to_dict() for a in answers_off] == [a.to_dict() for a in answers_plain]
  assert all(not a.verified and a.inliers is None for a in answers_off)
  # and the scores bit for bit, not only as JSON floats
  assert [np.float32(a.score).tobytes() for a in answers_off] == [
    np.float32(a.score).tobytes() for a in answers_plain
  ]


def _stored(store, photo):
  keypoints, descriptors = store.features(photo)
  return LocalFeatures(keypoints, descriptors, np.zeros(len(keypoints)), np.zeros(len(keypoints)))


def test_every_answer_follows_the_rule_recomputed_by_hand(
  trained, verifying_index_dir, test_photos
):
  index = CentroidIndex.load(verifying_index_dir)
  stored = index.metadata["verification"]
  on = Recognizer(trained, index)  # the index verifies: on by default
  off = Recognizer(trained, index, verify=False)
  assert on.verifier is not None
  store, config = index.local_features, on.verifier.config
  eta = np.float32(on.eta)
  lo = np.float32(float(on.eta) - stored["below"])
  hi = np.float32(float(on.eta) + stored["above"])
  k = stored["min_inliers"]
  label_of = {
    str(index.label_map.to_landmark_id(int(label))): int(label) for label in np.unique(index.labels)
  }
  verified = 0
  for photo in test_photos:
    answer, today = on.recognize(photo), off.recognize(photo)
    assert answer.score == today.score and answer.candidates == today.candidates
    in_band = lo <= np.float32(today.score) < hi
    verified_candidates = [
      c
      for c in today.candidates[: stored["candidates"]]
      if np.any(store.photo_labels == label_of[c.landmark_id])
    ]
    if not (in_band and verified_candidates):
      assert answer == dataclasses.replace(today), "outside the band, today's answer"
      continue
    verified += 1
    query = on.verifier.describe(photo)
    expected, counts = None, []
    for candidate in today.candidates[: stored["candidates"]]:
      photos = np.flatnonzero(store.photo_labels == label_of[candidate.landmark_id])
      for p in photos:
        inliers = verify_with(query, _stored(store, p), config).inliers
        counts.append(inliers)
        if expected is None and inliers >= k:
          expected = (candidate.landmark_id, inliers)
    assert answer.verified
    if expected is None:
      assert answer.landmark_id is None and answer.reason == "too_few_inliers"
      assert answer.inliers == max(counts) and answer.inliers < k
    else:
      assert (answer.landmark_id, answer.inliers) == expected
  assert verified, "the band holds some of the test photos"
  assert eta == np.float32(index.metadata["eta"])


def test_verify_true_on_an_index_without_local_features_names_the_step(trained, index_dir):
  index = CentroidIndex.load(index_dir / "index")
  with pytest.raises(UsageError, match="landmark-jax local-features"):
    Recognizer(trained, index, verify=True)


def test_reference_photos_are_the_medoids_then_one_per_centroid_then_the_nearest():
  # Landmark 0: photos along a circle; its one reference is photo 3's embedding, its two
  # centroids (sizes 1 and 5) point at photos 0 and 5. Landmark 1: one photo.
  angles = np.radians([0, 10, 30, 45, 70, 90])
  photos = np.stack([np.cos(angles), np.sin(angles), np.zeros(6)], 1).astype(np.float32)
  photos = np.concatenate([photos, [[0, 0, 1]]]).astype(np.float32)
  centroids = np.array([photos[0], photos[5], [0, 0, 1]], np.float32)
  index = CentroidIndex.build(
    centroids,
    np.array([0, 0, 1]),
    references=References(photos[[3]], np.array([0])),
    cluster_sizes=np.array([1, 5, 1]),
  )
  embedded = EmbeddedPhotos(
    ids=np.array([f"p{i}" for i in range(7)]),
    labels=np.array([0] * 6 + [1]),
    embeddings=photos,
    label_map=None,
    skipped=[],
  )
  labels = np.array([0] * 6 + [1])
  chosen = reference_photos(index, embedded, labels, per_landmark=4)
  # the reference's photo (3), the bigger centroid's (5), the other's (0), then the photo
  # nearest either centroid of those left: 1 (10° from photo 0; 4 is 20° from photo 5).
  assert chosen == [(3, 0), (5, 0), (0, 0), (1, 0), (6, 1)]


def test_add_landmarks_stores_the_new_landmarks_reference_photos_medoid_first(
  trained, verifying_index_dir, tmp_path
):
  from landmark_jax.index.editing import remove_landmarks
  from landmark_jax.recognize.embedder import PhotoEmbedder
  from landmark_jax.stages.new_landmarks import add_to_index

  index = CentroidIndex.load(verifying_index_dir)
  store = index.local_features
  label = int(store.photo_labels[0])
  landmark = index.label_map.to_landmark_id(label)
  other = next(int(l) for l in store.photo_labels if int(l) != label)
  remove_landmarks(index, [landmark]).save(tmp_path / "index")
  assert not len(CentroidIndex.load(tmp_path / "index").local_features.photos_of(label))

  train = source_for(trained.config.data, "train", trained.label_map)
  rows = [i for i, l in enumerate(train.landmark_ids()) if l == landmark]
  photos = train.subset(rows)
  add_to_index(tmp_path / "index", trained, photos, trained.config.cleaning)

  after = CentroidIndex.load(tmp_path / "index")
  stored = after.local_features
  new_label = int(after.label_map.to_label(landmark))
  added = stored.photos_of(new_label)
  # as many as the index keeps for any landmark (2 here), of the landmark's own photos
  assert 1 <= len(added) <= 2
  ids = [stored.photo_ids[int(p)] for p in added]
  assert set(ids) <= {str(i) for i in photos.ids}
  # the first is the photo of the landmark's first class reference (the cleaning's medoid)
  embedded = PhotoEmbedder(trained).embed_source(photos, read_exif=False)
  medoid = after.references.vectors[after.references.labels == new_label][0]
  assert ids[0] == str(embedded.ids[int(np.argmax(embedded.embeddings @ medoid))])
  # described by the stored extractor: the photo matches its own stored features far better
  # than another landmark's
  verifier = Recognizer(trained, after).verifier
  first = photos[[str(i) for i in photos.ids].index(ids[0])]
  query = verifier.describe(record_data(first))
  config = verifier.config

  def inliers(photo):
    return verify_with(query, _stored(stored, photo), config).inliers

  assert inliers(int(added[0])) > 2 * max(inliers(int(p)) for p in stored.photos_of(other))
