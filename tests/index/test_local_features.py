"""Stored local features: int8 descriptors within a derived bound of the float ones, each
landmark's photos in their given order, edits through the real editing functions keeping
the store in step with the index, and a round trip through a saved index."""

import json
import math

import numpy as np
import pytest

from landmark_jax.data import LabelMap
from landmark_jax.errors import DataError
from landmark_jax.index import CentroidIndex, IndexConfig
from landmark_jax.index.editing import add_centroids, edit_index, remove_landmarks
from landmark_jax.index.local_features import FILES, LocalFeatureStore

DIM = 12  # descriptor width
COUNTS = (4, 0, 3, 6, 2)  # features per photo; photo 1 has none
LABELS = (2, 0, 2, 1, 2)  # landmark 2's photos are 0, 2, 4, in that order


def unit(x):
  x = np.asarray(x, np.float64)
  return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def float_parts(counts=COUNTS, seed=0):
  """Per photo: (n, 2) keypoints in pixels and (n, DIM) unit descriptors."""
  rng = np.random.default_rng(seed)
  keypoints = [rng.uniform(0, 1000, (n, 2)).astype(np.float32) for n in counts]
  descriptors = [unit(rng.standard_normal((n, DIM))) for n in counts]
  return keypoints, descriptors


EXTRACTOR = {
  "pca/mean": np.linspace(-1, 1, 16, dtype=np.float32),
  "pca/components": np.eye(DIM, 16, dtype=np.float32),
  "attention/conv1/kernel": np.ones((1, 1, 16, 4), np.float32),
}
SETTINGS = {"max_features": 100, "scales": [0.5, 1.0], "residual_threshold": 15.0}


def make_store(counts=COUNTS, labels=LABELS, ids=None, seed=0, settings=SETTINGS):
  keypoints, descriptors = float_parts(counts, seed)
  ids = ids or [f"p{seed}_{i}" for i in range(len(counts))]
  return LocalFeatureStore.from_float(keypoints, descriptors, labels, ids, EXTRACTOR, settings)


def assert_same_store(a, b):
  for name in ("descriptors", "keypoints", "offsets", "photo_labels"):
    x, y = getattr(a, name), getattr(b, name)
    assert x.dtype == y.dtype, name
    np.testing.assert_array_equal(x, y, err_msg=name)
  assert a.photo_ids == b.photo_ids and a.settings == b.settings
  assert a.extractor.keys() == b.extractor.keys()
  for name, value in a.extractor.items():
    assert b.extractor[name].dtype == np.float32
    np.testing.assert_array_equal(value, b.extractor[name], err_msg=name)


# Quantisation ----------------------------------------------------------------------------


def test_quantised_descriptors_match_numpy_within_the_derived_bound():
  keypoints, descriptors = float_parts()
  store = make_store()
  x = np.concatenate(descriptors).astype(np.float64)
  q = store.descriptors
  assert q.dtype == np.int8 and q.shape == (sum(COUNTS), DIM)
  np.testing.assert_array_equal(q, np.rint(127 * x).astype(np.int8))
  np.testing.assert_array_equal(store.offsets, [0, 4, 4, 7, 13, 15])
  assert store.keypoints.dtype == np.float16
  np.testing.assert_array_equal(store.keypoints, np.concatenate(keypoints).astype(np.float16))
  # |x_i| ≤ 1, so 127·x_i never needs clipping and rounds to within 0.5: each element of
  # q/127 is within 0.5/127 of x_i, and the error vector e within ε = 0.5·√d/127 in norm.
  e = q / 127 - x
  assert np.abs(e).max() <= 0.5 / 127 + 1e-9
  eps = 0.5 * math.sqrt(DIM) / 127
  # (x_a + e_a)·(x_b + e_b) − x_a·x_b = x_a·e_b + e_a·x_b + e_a·e_b: by Cauchy–Schwarz each
  # term is at most ε, ε and ε² for unit x.
  raw = (q / 127) @ (q / 127).T - x @ x.T
  assert np.abs(raw).max() <= 2 * eps + eps**2
  # `features` divides by ‖x + e‖ ∈ [1 − ε, 1 + ε]: the unit row u is within
  # |1 − ‖x + e‖| + ‖e‖ ≤ 2ε of x, and |u_a·u_b − x_a·x_b| ≤ ‖u_a − x_a‖ + ‖u_b − x_b‖ ≤ 4ε.
  restored = np.concatenate([store.features(p)[1] for p in range(len(store))]).astype(np.float64)
  np.testing.assert_allclose(np.linalg.norm(restored, axis=1), 1, atol=1e-6)
  assert np.abs(restored - x).max() <= 2 * eps
  assert np.abs(restored @ restored.T - x @ x.T).max() <= 4 * eps


def test_features_of_a_photo_are_its_rows():
  keypoints, descriptors = float_parts()
  store = make_store()
  for photo in range(len(COUNTS)):
    points, unit_rows = store.features(photo)
    assert points.dtype == unit_rows.dtype == np.float32
    assert points.shape == (COUNTS[photo], 2) and unit_rows.shape == (COUNTS[photo], DIM)
    np.testing.assert_allclose(points, keypoints[photo], rtol=2**-11)  # float16's rounding
    if COUNTS[photo]:
      q = np.rint(127 * descriptors[photo].astype(np.float64))
      np.testing.assert_allclose(unit_rows, unit(q), atol=1e-6)


def test_photos_of_keep_the_given_order_and_covers():
  store = make_store()
  np.testing.assert_array_equal(store.photos_of(2), [0, 2, 4])
  np.testing.assert_array_equal(store.photos_of(0), [1])
  np.testing.assert_array_equal(store.photos_of(1), [3])
  assert len(store.photos_of(7)) == 0
  np.testing.assert_array_equal(store.covers([0, 1, 2, 3]), [True, True, True, False])
  # Given in another order, they keep that one.
  reordered = make_store(labels=(2, 2, 0, 1, 2))
  np.testing.assert_array_equal(reordered.photos_of(2), [0, 1, 4])


def test_nbytes_counts_the_features_and_the_extractor_apart():
  store = make_store()
  m, p = sum(COUNTS), len(COUNTS)
  assert store.nbytes == m * DIM * 1 + m * 2 * 2 + (p + 1) * 8 + p * 8
  assert store.extractor_nbytes == (16 + DIM * 16 + 16 * 4) * 4


def test_a_store_that_is_not_one_is_refused():
  keypoints, descriptors = float_parts()
  zero = [d.copy() for d in descriptors]
  zero[3][2] = 0
  with pytest.raises(ValueError, match=r"local_descriptors\.npy: row 9 has norm 0\.000"):
    LocalFeatureStore.from_float(keypoints, zero, LABELS, list("abcde"), EXTRACTOR, SETTINGS)
  store = make_store()
  with pytest.raises(ValueError, match=r"local_offsets\.npy: runs 0 … 14"):
    LocalFeatureStore(
      store.descriptors, store.keypoints, [0, 4, 4, 7, 13, 14], LABELS, list("abcde"), {}, {}
    )
  with pytest.raises(ValueError, match=r"local_photos\.json: 4 ids"):
    make_store(ids=list("abcd"))
  with pytest.raises(ValueError, match=r"local_extractor\.safetensors: pca/mean holds NaN"):
    LocalFeatureStore.from_float(
      keypoints, descriptors, LABELS, list("abcde"), {"pca/mean": [np.nan]}, {}
    )
  with pytest.raises(ValueError, match="not JSON values"):
    make_store(settings={"x": math.nan})


# Edits of the store ------------------------------------------------------------------------


def rows_of(store, photos):
  return np.concatenate([np.arange(store.offsets[p], store.offsets[p + 1]) for p in photos])


def test_without_labels_and_joined_against_hand_built_arrays():
  store = make_store()
  kept = store.without_labels([2])  # photos 1 (no features) and 3
  np.testing.assert_array_equal(kept.offsets, [0, 0, 6])
  np.testing.assert_array_equal(kept.photo_labels, [0, 1])
  np.testing.assert_array_equal(kept.descriptors, store.descriptors[7:13])
  np.testing.assert_array_equal(kept.keypoints, store.keypoints[7:13])
  assert kept.photo_ids == ("p0_1", "p0_3")

  other = make_store(counts=(2, 5), labels=(4, 0), seed=1)
  joined = store.without_labels([0, 1]).joined(other)  # photos 0, 2, 4, then other's 0, 1
  np.testing.assert_array_equal(joined.offsets, [0, 4, 7, 9, 11, 16])
  np.testing.assert_array_equal(joined.photo_labels, [2, 2, 2, 4, 0])
  np.testing.assert_array_equal(
    joined.descriptors,
    np.concatenate([store.descriptors[rows_of(store, [0, 2, 4])], other.descriptors]),
  )
  np.testing.assert_array_equal(
    joined.keypoints, np.concatenate([store.keypoints[rows_of(store, [0, 2, 4])], other.keypoints])
  )
  assert joined.photo_ids == ("p0_0", "p0_2", "p0_4", "p1_0", "p1_1")
  np.testing.assert_array_equal(joined.photos_of(2), [0, 1, 2])

  with pytest.raises(ValueError, match="settings scales differ"):
    store.joined(make_store(settings={**SETTINGS, "scales": [1.0]}))
  changed = LocalFeatureStore.from_float(
    *float_parts(), LABELS, list("abcde"), {**EXTRACTOR, "pca/mean": np.zeros(16)}, SETTINGS
  )
  with pytest.raises(ValueError, match="extractor arrays pca/mean differ"):
    store.joined(changed)


# Through a saved index -------------------------------------------------------------------


def saved_index(folder, store=None, **metadata):
  """Landmarks arch, dome, tower (labels 0, 1, 2; two centroids each), saved."""
  centroids = unit(np.random.default_rng(5).standard_normal((6, 8)))
  index = CentroidIndex.build(
    centroids,
    [0, 0, 1, 1, 2, 2],
    IndexConfig(backend="exact"),
    label_map=LabelMap(("arch", "dome", "tower")),
    metadata=metadata,
  )
  if store is not None:
    index = index.with_local_features(store)
  return index.save(folder)


def test_a_store_round_trips_through_a_saved_index(tmp_path):
  store = make_store()
  folder = saved_index(tmp_path / "index", store)
  assert set(FILES) <= {p.name for p in folder.iterdir()}
  manifest = json.loads((folder / "manifest.json").read_text())
  assert manifest["local_features"] == {
    "photos": 5,
    "features": 15,
    "descriptor_dim": DIM,
    "settings": SETTINGS,
  }
  loaded = CentroidIndex.load(folder)
  assert_same_store(loaded.local_features, store)
  assert "local_features" not in loaded.metadata
  # Saved again, the same files.
  again = loaded.save(tmp_path / "again")
  for name in FILES:
    assert (again / name).read_bytes() == (folder / name).read_bytes(), name


def test_with_local_features_refuses_labels_without_centroids_and_none_drops_verification(tmp_path):
  index = CentroidIndex.load(saved_index(tmp_path / "index"))
  with pytest.raises(ValueError, match=r"label\(s\) \[5\]"):
    index.with_local_features(make_store(labels=(2, 0, 5, 1, 2)))
  band = {"below": 0.1, "above": 0.05, "min_inliers": 8, "candidates": 2, "budget": 0.1}
  calibrated = index.with_local_features(make_store()).with_metadata(verification=band)
  calibrated.save(tmp_path / "c")
  assert CentroidIndex.load(tmp_path / "c").metadata["verification"] == band
  # Without the store, the band it was calibrated for would be refused at load: it leaves.
  dropped = calibrated.with_local_features(None)
  assert "verification" not in dropped.metadata
  assert CentroidIndex.load(dropped.save(tmp_path / "d")).local_features is None


def new_centroids(n, seed=9):
  return unit(np.random.default_rng(seed).standard_normal((n, 8)))


def test_edits_keep_the_store_in_step(tmp_path):
  # Landmark arch (0): photos 0 and 2; dome (1): photo 1; tower (2): photos 3 and 4.
  store = make_store(labels=(0, 1, 0, 2, 2))
  folder = saved_index(tmp_path / "index", store)
  edit_index(folder, lambda index: remove_landmarks(index, ["arch"]))
  removed = CentroidIndex.load(folder).local_features
  assert removed.photo_ids == ("p0_1", "p0_3", "p0_4")
  np.testing.assert_array_equal(removed.photo_labels, [1, 2, 2])
  np.testing.assert_array_equal(removed.descriptors, store.descriptors[rows_of(store, [1, 3, 4])])
  np.testing.assert_array_equal(removed.offsets, [0, 0, 6, 8])

  # New landmark gate (label 3 once the label map grows): two photos, and one more of tower,
  # labelled by landmark id as the new centroids are.
  new = make_store(counts=(3, 1, 2), labels=(0, 0, 0), seed=2)
  edit_index(
    folder,
    lambda index: add_centroids(
      index,
      new_centroids(2),
      ["gate", "gate"],
      np.array([3, 4]),
      None,
      {},
      local_features=new,
      local_feature_landmarks=["gate", "tower", "gate"],
    ),
  )
  added = CentroidIndex.load(folder)
  stored = added.local_features
  assert added.label_map.landmark_ids == ("arch", "dome", "tower", "gate")
  np.testing.assert_array_equal(stored.photo_labels, [1, 2, 2, 3, 2, 3])
  np.testing.assert_array_equal(stored.offsets, [0, 0, 6, 8, 11, 12, 14])
  np.testing.assert_array_equal(
    stored.descriptors, np.concatenate([removed.descriptors, new.descriptors])
  )
  np.testing.assert_array_equal(stored.photos_of(2), [1, 2, 4])  # tower's first stays first
  np.testing.assert_array_equal(stored.photos_of(3), [3, 5])
  assert stored.photo_ids[3:] == new.photo_ids

  # New landmarks without local features: allowed, they have no stored photos.
  edit_index(
    folder,
    lambda index: add_centroids(index, new_centroids(1, 3), ["bridge"], np.array([2]), None, {}),
  )
  last = CentroidIndex.load(folder)
  assert_same_store(last.local_features, stored)
  np.testing.assert_array_equal(last.local_features.covers([3, 4]), [True, False])


def test_adding_local_features_that_do_not_fit_is_refused(tmp_path):
  index = CentroidIndex.load(saved_index(tmp_path / "index", make_store(labels=(0, 1, 0, 2, 2))))

  def add(store, photo_landmarks):
    return add_centroids(
      index,
      new_centroids(1),
      ["gate"],
      np.array([1]),
      None,
      {},
      local_features=store,
      local_feature_landmarks=photo_landmarks,
    )

  one = make_store(counts=(2,), labels=(0,), seed=3)
  with pytest.raises(ValueError, match="2 landmark ids for 1 photos"):
    add(one, ["gate", "gate"])
  removed = remove_landmarks(index, ["dome"])  # its label stays in the map, without centroids
  with pytest.raises(DataError, match="landmark\\(s\\) dome, which have no centroids"):
    add_centroids(
      removed,
      new_centroids(1),
      ["gate"],
      np.array([1]),
      None,
      {},
      local_features=one,
      local_feature_landmarks=["dome"],
    )
  other = make_store(counts=(2,), labels=(0,), seed=3, settings={**SETTINGS, "max_features": 5})
  with pytest.raises(DataError, match="settings max_features differ"):
    add(other, ["gate"])


def test_an_index_without_a_store_takes_the_new_landmarks_one(tmp_path):
  index = CentroidIndex.load(saved_index(tmp_path / "index"))
  one = make_store(counts=(2,), labels=(0,), seed=3)
  added = add_centroids(
    index,
    new_centroids(1),
    ["gate"],
    np.array([1]),
    None,
    {},
    local_features=one,
    local_feature_landmarks=["gate"],
  )
  np.testing.assert_array_equal(added.local_features.photo_labels, [3])
  np.testing.assert_array_equal(added.local_features.covers([0, 3]), [False, True])
