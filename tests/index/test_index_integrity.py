"""`CentroidIndex.load` refuses a damaged or inconsistent index, naming the file.

Damage (bytes changed after `save`) is what the manifest's checksums catch; inconsistency
(an index saved that way) is what the checks of its parts catch, so those cases are written
with valid checksums. Either way `load` must raise `IndexFormatError` in one line naming the
file, never return an index that fails every query later.
"""

import hashlib
import json
import math
import os
import shutil
import stat

import numpy as np
import pytest
import safetensors.numpy

from landmark_jax.data.labels import LabelMap
from landmark_jax.index import CentroidIndex, IndexConfig, IndexFormatError
from landmark_jax.index.integrity import sealed
from landmark_jax.index.landmarks import LandmarkInfo
from landmark_jax.index.local_features import FILES as LOCAL_FILES
from landmark_jax.index.local_features import LocalFeatureStore
from landmark_jax.index.validation import ValidationSet
from tests.helpers import clustered_vectors

N, DIM, LANDMARKS = 60, 8, 6


def parts(n=N, dim=DIM):
  """Centroids, labels (10 per landmark), cluster sizes and the label map of a small index."""
  vectors, _ = clustered_vectors(n, dim, clusters=LANDMARKS, seed=3)
  return vectors, np.arange(n) // 10, np.arange(n) % 4 + 1, LabelMap.from_ids(range(n // 10))


VERIFICATION = {"below": 0.1, "above": 0.05, "min_inliers": 8, "candidates": 2, "budget": 0.1}


def local_store(labels=(0, 3, 3, 5)):
  """Local features of four photos (4, 0, 3 and 5 features of 16 dimensions)."""
  rng = np.random.default_rng(6)
  counts = (4, 0, 3, 5)[: len(labels)]
  descriptors = [rng.standard_normal((n, 16)).astype(np.float32) for n in counts]
  return LocalFeatureStore.from_float(
    [rng.uniform(0, 500, (n, 2)).astype(np.float32) for n in counts],
    [d / np.linalg.norm(d, axis=1, keepdims=True) for d in descriptors],
    labels,
    [f"photo{i}" for i in range(len(labels))],
    {"pca/mean": np.zeros(16, np.float32), "attention/conv1/kernel": np.ones((1, 1, 8, 2))},
    {"max_features": 100, "scales": [0.5, 1.0]},
  )


def full_index(backend):
  """A small index with every file an index can have: label map, landmarks.csv, the stored
  validation photos, local features (and a verification band), scann/."""
  vectors, labels, sizes, label_map = parts()
  landmarks = {
    i: LandmarkInfo(name=f"landmark {i}", latitude=40.0 + i, longitude=2.0)
    for i in range(LANDMARKS)
  }
  photos, _ = clustered_vectors(6, DIM, clusters=3, seed=4)
  validation = ValidationSet([f"v{i}" for i in range(6)], [0, 1, None, None, "x", None], photos)
  return (
    CentroidIndex.build(
      vectors,
      labels,
      IndexConfig(backend=backend),
      cluster_sizes=sizes,
      label_map=label_map,
      landmarks=landmarks,
      metadata={"eta": 0.5},
    )
    .with_validation(validation)
    .with_local_features(local_store())
    .with_metadata(verification=VERIFICATION)
  )


def raw_index(
  centroids=None, labels=None, sizes=None, label_map=None, local_features=None, **metadata
):
  """An exact index from the given parts (the rest from `parts`), unchecked, as a buggy
  writer could make it: `save` records valid checksums of whatever it is given."""
  default = parts()
  return CentroidIndex(
    default[0] if centroids is None else centroids,
    default[1] if labels is None else labels,
    default[2] if sizes is None else sizes,
    IndexConfig(backend="exact"),
    label_map=default[3] if label_map is None else label_map,
    metadata=metadata,
    local_features=local_features,
  )


def edit_manifest(folder, **changes):
  """Changes manifest fields and seals it again, as a buggy writer would have saved it."""
  path = folder / "manifest.json"
  path.write_text(json.dumps(sealed({**json.loads(path.read_text()), **changes})))


def rewrite_with_checksum(folder, name, array):
  """Replaces `name` by `array` and records its new size and sha256 in the manifest."""
  np.save(folder / name, array)
  record_checksum(folder, name)


def record_checksum(folder, name):
  """Records `name`'s size and sha256 in the manifest as they are now (None: unlisted)."""
  files = json.loads((folder / "manifest.json").read_text())["files"]
  if (folder / name).is_file():
    data = (folder / name).read_bytes()
    files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
  else:
    del files[name]
  edit_manifest(folder, files=files)


def load_error(folder, **options) -> str:
  with pytest.raises(IndexFormatError) as caught:
    CentroidIndex.load(folder, **options)
  message = str(caught.value)
  assert "\n" not in message, message
  return message


# Damage: each file of a saved index, each applicable way ---------------------------------


def truncate(path):
  path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip_middle(path):
  data = bytearray(path.read_bytes())
  middle = len(data) // 2
  data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
  path.write_bytes(bytes(data))


def non_utf8(path):
  # The same length, so only the content can tell: 0xFF never occurs in UTF-8.
  data = bytearray(path.read_bytes())
  middle = len(data) // 2
  data[middle : middle + 2] = b"\xff\xfe"
  path.write_bytes(bytes(data))


def wrong_shape(path):
  array = np.load(path)
  np.save(path, np.resize(array, (len(array) - 1, *array.shape[1:])))


def nan_values(path):
  array = np.load(path)
  np.save(path, np.full(array.shape, np.nan, np.float32 if array.dtype == np.float32 else float))


def bad_json(path):
  path.write_text('{"format_version": 2, "files": {')


def flip_text(path):
  # A change that keeps the manifest valid JSON: a digit of its `created` time.
  text = path.read_text()
  at = text.index('"created": "') + len('"created": "') + 3
  path.write_text(text[:at] + str((int(text[at]) + 1) % 10) + text[at + 1 :])


def edited_by_hand(path):
  path.write_text(json.dumps({**json.loads(path.read_text()), "eta": 0.25}, indent=2))


CORRUPTIONS = {
  "flip text": flip_text,
  "edited by hand": edited_by_hand,
  "truncate": truncate,
  "flip bytes": flip_middle,
  "delete": lambda p: p.unlink(),
  "wrong shape": wrong_shape,
  "NaN values": nan_values,
  "bad JSON": bad_json,
  "non-UTF-8": non_utf8,
}


def applicable(name: str) -> list[str]:
  """The corruptions that make sense for a file."""
  every = ["truncate", "delete"]
  if name.endswith(".npy"):
    return every + ["flip bytes", "wrong shape", "NaN values"]
  if name == "manifest.json":
    return every + ["flip text", "edited by hand", "bad JSON", "non-UTF-8"]
  if name.endswith(".json"):
    return every + ["flip bytes", "bad JSON", "non-UTF-8"]
  if name.endswith((".csv", ".pbtxt")):
    return every + ["flip bytes", "non-UTF-8"]
  return every + ["flip bytes"]


@pytest.mark.parametrize("backend", ["exact", "scann"])
def test_every_damaged_file_is_refused_naming_it(tmp_path, backend):
  pristine = full_index(backend).save(tmp_path / "pristine")
  assert len(CentroidIndex.load(pristine)) == N
  names = sorted(p.relative_to(pristine).as_posix() for p in pristine.rglob("*") if p.is_file())
  expected = {
    "manifest.json",
    "centroids.npy",
    "labels.npy",
    "cluster_sizes.npy",
    "label_map.json",
    "landmarks.csv",
    "validation_embeddings.npy",
    "validation.json",
    *LOCAL_FILES,
  }
  assert expected <= set(names) and (backend == "exact") == (set(names) == expected)
  loaded = []
  for name in names:
    for corruption in applicable(name):
      case = tmp_path / f"{name.replace('/', '_')}-{corruption.replace(' ', '_')}"
      shutil.copytree(pristine, case)
      CORRUPTIONS[corruption](case / name)
      try:
        CentroidIndex.load(case)
        loaded.append(f"{name}: {corruption} loaded")
      except IndexFormatError as e:
        if str(case / name) not in str(e) or "\n" in str(e):
          loaded.append(f"{name}: {corruption} raised without naming it in one line: {e}")
  assert not loaded, loaded


def test_a_stray_index_file_is_refused(tmp_path):
  # landmarks.csv from elsewhere, in an index saved without one, would be read as its own.
  folder = raw_index().save(tmp_path / "i")
  (folder / "landmarks.csv").write_text("landmark_id,name\n0,Elsewhere\n")
  assert f"{folder / 'landmarks.csv'}: not listed in" in load_error(folder)


def test_a_stray_local_features_file_is_refused(tmp_path):
  # One file of another index's local features, in an index saved without any.
  folder = raw_index().save(tmp_path / "i")
  shutil.copy(full_index("exact").save(tmp_path / "f") / "local_descriptors.npy", folder)
  assert f"{folder / 'local_descriptors.npy'}: not listed in" in load_error(folder)


def test_a_partial_set_of_local_features_files_is_refused_naming_the_missing_one(tmp_path):
  # A writer that stopped half-way, and sealed the manifest for what it had written.
  folder = raw_index(local_features=local_store(), **{"verification": VERIFICATION}).save(
    tmp_path / "i"
  )
  (folder / "local_keypoints.npy").unlink()
  record_checksum(folder, "local_keypoints.npy")
  assert f"index file missing: {folder / 'local_keypoints.npy'}" in load_error(folder)
  # In a version-1 index, which lists no files, too.
  as_version_1(folder)
  missing = f"index file missing: {folder / 'local_keypoints.npy'}"
  assert missing in load_error(folder, allow_unchecked=True)


def test_an_exact_index_with_scann_files_is_refused(tmp_path):
  folder = raw_index().save(tmp_path / "i")
  shutil.copytree(full_index("scann").save(tmp_path / "s") / "scann", folder / "scann")
  assert "scann/" in load_error(folder)


# Inconsistency: written with valid checksums ----------------------------------------------


def labels_shorter(folder):
  return raw_index(labels=parts()[1][:-1]).save(folder), "labels.npy"


def all_nan_centroids(folder):
  return raw_index(centroids=np.full((N, DIM), np.nan, np.float32)).save(folder), "centroids.npy"


def one_infinite_centroid(folder):
  centroids = parts()[0].copy()
  centroids[N - 1, 0] = np.inf
  return raw_index(centroids=centroids).save(folder), "centroids.npy"


def label_beyond_label_map(folder):
  labels = parts()[1].copy()
  labels[-1] = LANDMARKS  # the map has labels 0..5
  return raw_index(labels=labels).save(folder), "label_map.json"


def negative_label(folder):
  labels = parts()[1].copy()
  labels[0] = -1
  return raw_index(labels=labels).save(folder), "labels.npy"


def empty_cluster(folder):
  sizes = parts()[2].copy()
  sizes[3] = 0
  return raw_index(sizes=sizes).save(folder), "cluster_sizes.npy"


def float_labels(folder):
  folder = raw_index().save(folder)
  rewrite_with_checksum(folder, "labels.npy", parts()[1].astype(np.float64))
  return folder, "labels.npy"


def float64_centroids(folder):
  folder = raw_index().save(folder)
  rewrite_with_checksum(folder, "centroids.npy", parts()[0].astype(np.float64))
  return folder, "centroids.npy"


def manifest_change(**changes):
  def case(folder):
    folder = raw_index(eta=0.5).save(folder)
    edit_manifest(folder, **changes)
    return folder, "manifest.json"

  return case


def eta(value):
  def case(folder):
    return raw_index(eta=value).save(folder), "manifest.json"

  return case


def with_store(folder):
  return raw_index(local_features=local_store()).save(folder)


def local_rewrite(name, array):
  def case(folder):
    folder = with_store(folder)
    rewrite_with_checksum(folder, name, array)
    return folder, name

  return case


def local_file(name, write):
  """The store's `name` rewritten by `write(path)`, its checksum recorded."""

  def case(folder):
    folder = with_store(folder)
    write(folder / name)
    record_checksum(folder, name)
    return folder, name

  return case


def nan_keypoint(folder):
  folder = with_store(folder)
  keypoints = np.load(folder / "local_keypoints.npy")
  keypoints[5, 1] = np.nan
  rewrite_with_checksum(folder, "local_keypoints.npy", keypoints)
  return folder, "local_keypoints.npy"


def zero_descriptor(folder):
  folder = with_store(folder)
  descriptors = np.load(folder / "local_descriptors.npy")
  descriptors[2] = 0
  rewrite_with_checksum(folder, "local_descriptors.npy", descriptors)
  return folder, "local_descriptors.npy"


def float64_extractor(folder):
  def write(path):
    safetensors.numpy.save_file({"pca/mean": np.zeros(16)}, str(path))

  return local_file("local_extractor.safetensors", write)(folder)


def local_summary(**changes):
  def case(folder):
    folder = with_store(folder)
    record = json.loads((folder / "manifest.json").read_text())["local_features"]
    edit_manifest(folder, local_features={**record, **changes})
    return folder, "manifest.json"

  return case


def files_without_summary(folder):
  folder = with_store(folder)
  manifest = json.loads((folder / "manifest.json").read_text())
  del manifest["local_features"]
  (folder / "manifest.json").write_text(json.dumps(sealed(manifest)))
  return folder, "manifest.json"


def verification(value=None, *, store=True, **changes):
  def case(folder):
    band = {**VERIFICATION, **changes} if value is None else value
    folder = raw_index(local_features=local_store() if store else None).save(folder)
    edit_manifest(folder, verification=band)
    return folder, "manifest.json"

  return case


STORE_OFFSETS = [0, 4, 4, 7, 12]  # `local_store`'s, 12 features

INCONSISTENT = {
  "labels shorter than centroids": labels_shorter,
  "all-NaN centroids": all_nan_centroids,
  "an infinite centroid": one_infinite_centroid,
  "label beyond the label map": label_beyond_label_map,
  "negative label": negative_label,
  "empty cluster": empty_cluster,
  "float labels": float_labels,
  "float64 centroids": float64_centroids,
  "eta NaN": eta(math.nan),
  "eta Infinity": eta(math.inf),
  "eta 1.5": eta(1.5),
  "eta a string": eta("0.5"),
  "num_centroids wrong": manifest_change(num_centroids=N - 1),
  "embedding_dim wrong": manifest_change(embedding_dim=DIM + 1),
  "num_landmarks wrong": manifest_change(num_landmarks=LANDMARKS + 1),
  "format_version true": manifest_change(format_version=True),
  "no checksums in a v2 manifest": manifest_change(files=None),
  "a checksum outside the folder": manifest_change(
    files={"../outside.npy": {"bytes": 1, "sha256": "0" * 64}}
  ),
  "float local descriptors": local_rewrite("local_descriptors.npy", np.zeros((12, 16))),
  "a zero local descriptor": zero_descriptor,
  "local descriptors beyond 127": local_rewrite(
    "local_descriptors.npy", np.full((12, 16), -128, np.int8)
  ),
  "three-column keypoints": local_rewrite("local_keypoints.npy", np.zeros((12, 3), np.float16)),
  "keypoints for fewer features": local_rewrite(
    "local_keypoints.npy", np.zeros((11, 2), np.float16)
  ),
  "a NaN keypoint": nan_keypoint,
  "offsets not from 0": local_rewrite("local_offsets.npy", np.array([1, 4, 4, 7, 12])),
  "offsets short of M": local_rewrite("local_offsets.npy", np.array([0, 4, 4, 7, 11])),
  "decreasing offsets": local_rewrite("local_offsets.npy", np.array([0, 4, 3, 7, 12])),
  "float offsets": local_rewrite("local_offsets.npy", np.array(STORE_OFFSETS, float)),
  "a photo label without centroid": local_rewrite(
    "local_photo_labels.npy", np.array([0, 3, 3, LANDMARKS])
  ),
  "photo labels for fewer photos": local_rewrite("local_photo_labels.npy", np.array([0, 3, 3])),
  "photo ids for fewer photos": local_file(
    "local_photos.json", lambda p: p.write_text(json.dumps({"ids": ["a", "b", "c"]}))
  ),
  "photo ids not strings": local_file(
    "local_photos.json", lambda p: p.write_text(json.dumps({"ids": [1, 2, 3, 4]}))
  ),
  "a float64 extractor array": float64_extractor,
  "local_features counts too few photos": local_summary(photos=3),
  "local_features counts too many features": local_summary(features=13),
  "local_features of another width": local_summary(descriptor_dim=8),
  "local_features a negative count": local_summary(photos=-1),
  "local_features settings NaN": local_summary(settings={"x": math.nan}),
  "local_features without its files": manifest_change(
    local_features={"photos": 0, "features": 0, "descriptor_dim": 1, "settings": {}}
  ),
  "local features files without local_features": files_without_summary,
  "verification below NaN": verification(below=math.nan),
  "verification below negative": verification(below=-0.1),
  "verification above beyond 2": verification(above=2.5),
  "verification budget beyond 1": verification(budget=1.5),
  "verification min_inliers a float": verification(min_inliers=8.0),
  "verification candidates 0": verification(candidates=0),
  "verification without budget": verification(
    {k: v for k, v in VERIFICATION.items() if k != "budget"}
  ),
  "verification a list": verification([0.1, 0.05]),
  "verification without local features": verification(store=False),
}


@pytest.mark.parametrize("make", INCONSISTENT.values(), ids=INCONSISTENT.keys())
def test_an_inconsistent_index_is_refused_naming_the_file(tmp_path, make):
  folder, name = make(tmp_path / "i")
  assert str(folder / name) in load_error(folder)


def test_the_manifest_must_be_a_json_object(tmp_path):
  folder = raw_index().save(tmp_path / "i")
  (folder / "manifest.json").write_text("[2]")
  assert f"{folder / 'manifest.json'}: holds a JSON list" in load_error(folder)


def test_an_uncalibrated_index_and_one_calibrated_at_the_edge_load(tmp_path):
  assert "eta" not in CentroidIndex.load(raw_index().save(tmp_path / "a")).metadata
  assert CentroidIndex.load(raw_index(eta=None).save(tmp_path / "b")).metadata["eta"] is None
  # Calibration puts η one float32 step above the highest score it must exceed.
  edge = float(np.nextafter(np.float32(1), np.float32(2)))
  assert CentroidIndex.load(raw_index(eta=edge).save(tmp_path / "c")).metadata["eta"] == edge


# Format version 1 ------------------------------------------------------------------------


def as_version_1(folder):
  """`folder`'s index as this library wrote it before checksums."""
  manifest = json.loads((folder / "manifest.json").read_text())
  del manifest["files"]
  (folder / "manifest.json").write_text(json.dumps({**manifest, "format_version": 1}))


@pytest.mark.parametrize("backend", ["exact", "scann"])
def test_a_version_1_index_still_loads_when_allowed(tmp_path, backend):
  index = full_index(backend)
  as_version_1(index.save(tmp_path / "i"))
  # Only when asked for (--allow-unchecked-index): its files have no checksums.
  assert "format 1 has no checksums" in load_error(tmp_path / "i")
  loaded = CentroidIndex.load(tmp_path / "i", allow_unchecked=True)
  assert loaded.backend == backend and loaded.metadata["eta"] == 0.5
  for x, y in zip(index.search(index.centroids[:4], 3), loaded.search(index.centroids[:4], 3)):
    np.testing.assert_array_equal(x, y)


def test_a_version_1_index_is_still_checked_for_consistency(tmp_path):
  folder = raw_index().save(tmp_path / "i")
  as_version_1(folder)
  np.save(folder / "centroids.npy", np.full((N, DIM), np.nan, np.float32))
  assert f"{folder / 'centroids.npy'}: holds NaN" in load_error(folder, allow_unchecked=True)
  (folder / "labels.npy").write_bytes(b"\x93NUMPY garbage")
  assert str(folder / "labels.npy") in load_error(folder, allow_unchecked=True)


def test_stored_validation_photos_round_trip_and_are_checked_when_read(tmp_path):
  folder = full_index("exact").save(tmp_path / "index")
  stored = CentroidIndex.load(folder).validation
  assert stored.ids == tuple(f"v{i}" for i in range(6))
  assert stored.landmark_ids == (0, 1, None, None, "x", None)  # ids keep their type
  assert stored.counts() == (3, 3)
  np.testing.assert_array_equal(stored.embeddings, full_index("exact").validation.embeddings)
  # Sealed with valid checksums but the wrong width (a buggy writer): refused when read.
  rewrite_with_checksum(folder, "validation_embeddings.npy", np.zeros((6, DIM + 1), np.float32))
  loaded = CentroidIndex.load(folder)  # serving never reads them
  with pytest.raises(IndexFormatError, match=r"validation_embeddings\.npy.*expected float32"):
    _ = loaded.validation
  # Replaced after the index was loaded (another save swapped the folder): refused too.
  full_index("exact").save(tmp_path / "other")
  loaded = CentroidIndex.load(tmp_path / "other")
  np.save(tmp_path / "other" / "validation_embeddings.npy", np.zeros((6, DIM), np.float32))
  with pytest.raises(IndexFormatError, match="validation_embeddings.npy: damaged"):
    _ = loaded.validation


def test_a_saved_index_is_readable_by_others_as_the_umask_allows(tmp_path):
  # A service often runs as another user than the one who built the index.
  previous = os.umask(0o022)
  try:
    folder = full_index("scann").save(tmp_path / "index")
  finally:
    os.umask(previous)
  for path in [folder, *folder.rglob("*")]:
    mode = stat.S_IMODE(path.stat().st_mode)
    assert mode & 0o044 == 0o044, f"{path}: {oct(mode)}"  # group and others may read
    if path.is_dir():
      assert mode & 0o011 == 0o011, f"{path}: {oct(mode)}"  # and enter
