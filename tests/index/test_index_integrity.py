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

from landmark_jax.data.labels import LabelMap
from landmark_jax.index import CentroidIndex, IndexConfig, IndexFormatError
from landmark_jax.index.integrity import sealed
from landmark_jax.index.landmarks import LandmarkInfo
from landmark_jax.index.validation import ValidationSet
from tests.helpers import clustered_vectors

N, DIM, LANDMARKS = 60, 8, 6


def parts(n=N, dim=DIM):
  """Centroids, labels (10 per landmark), cluster sizes and the label map of a small index."""
  vectors, _ = clustered_vectors(n, dim, clusters=LANDMARKS, seed=3)
  return vectors, np.arange(n) // 10, np.arange(n) % 4 + 1, LabelMap.from_ids(range(n // 10))


def full_index(backend):
  """A small index with every file an index can have: label map, landmarks.csv, the stored
  validation photos, scann/."""
  vectors, labels, sizes, label_map = parts()
  landmarks = {
    i: LandmarkInfo(name=f"landmark {i}", latitude=40.0 + i, longitude=2.0)
    for i in range(LANDMARKS)
  }
  photos, _ = clustered_vectors(6, DIM, clusters=3, seed=4)
  validation = ValidationSet([f"v{i}" for i in range(6)], [0, 1, None, None, "x", None], photos)
  return CentroidIndex.build(
    vectors,
    labels,
    IndexConfig(backend=backend),
    cluster_sizes=sizes,
    label_map=label_map,
    landmarks=landmarks,
    metadata={"eta": 0.5},
  ).with_validation(validation)


def raw_index(centroids=None, labels=None, sizes=None, label_map=None, **metadata):
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
  )


def edit_manifest(folder, **changes):
  """Changes manifest fields and seals it again, as a buggy writer would have saved it."""
  path = folder / "manifest.json"
  path.write_text(json.dumps(sealed({**json.loads(path.read_text()), **changes})))


def rewrite_with_checksum(folder, name, array):
  """Replaces `name` by `array` and records its new size and sha256 in the manifest."""
  np.save(folder / name, array)
  data = (folder / name).read_bytes()
  files = json.loads((folder / "manifest.json").read_text())["files"]
  files[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
  edit_manifest(folder, files=files)


def load_error(folder) -> str:
  with pytest.raises(IndexFormatError) as caught:
    CentroidIndex.load(folder)
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
def test_a_version_1_index_still_loads(tmp_path, backend):
  index = full_index(backend)
  as_version_1(index.save(tmp_path / "i"))
  loaded = CentroidIndex.load(tmp_path / "i")
  assert loaded.backend == backend and loaded.metadata["eta"] == 0.5
  for x, y in zip(index.search(index.centroids[:4], 3), loaded.search(index.centroids[:4], 3)):
    np.testing.assert_array_equal(x, y)


def test_a_version_1_index_is_still_checked_for_consistency(tmp_path):
  folder = raw_index().save(tmp_path / "i")
  as_version_1(folder)
  np.save(folder / "centroids.npy", np.full((N, DIM), np.nan, np.float32))
  assert f"{folder / 'centroids.npy'}: holds NaN" in load_error(folder)
  (folder / "labels.npy").write_bytes(b"\x93NUMPY garbage")
  assert str(folder / "labels.npy") in load_error(folder)


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
