"""Careless (or hostile) index files that the checksums alone do not catch: a manifest made
format 1, files rewritten and the manifest re-sealed, a huge manifest, the backup an
interrupted save left, a landmarks table of another index, a full disk.

Issue 33, findings 8 and 9 (its index items). At 6008fac and at 44ece44 each of these
loaded (or, for the full disk, ended in a traceback); here each is refused naming the file.
"""

import errno
import json
import os
import shutil

import numpy as np
import pytest

from landmark_jax import folders
from landmark_jax.data.labels import LabelMap
from landmark_jax.errors import UserError
from landmark_jax.index import (
  CentroidIndex,
  IndexConfig,
  IndexFormatError,
  centroid_index,
  integrity,
  scann_backend,
)
from landmark_jax.index.editing import edit_index
from landmark_jax.index.landmarks import LandmarkInfo
from landmark_jax.serve import reload
from tests.helpers import clustered_vectors, run_in_process, small_index


def resealed(folder, **changes):
  """`folder`'s manifest with `changes`, its files' checksums recorded again and sealed, as
  someone who knows the format (or another tool) would write it."""
  manifest = json.loads((folder / "manifest.json").read_text())
  manifest = {**manifest, **changes, "files": integrity.file_records(folder)}
  manifest.pop(integrity.MANIFEST_DIGEST)
  (folder / "manifest.json").write_text(json.dumps(integrity.sealed(manifest)))
  return folder


def refusal(folder, **options) -> str:
  with pytest.raises(IndexFormatError) as caught:
    CentroidIndex.load(folder, **options)
  assert "\n" not in str(caught.value)
  return str(caught.value)


# Format 1 ------------------------------------------------------------------------------


def as_format_1(folder, **changes):
  manifest = json.loads((folder / "manifest.json").read_text())
  del manifest["files"], manifest[integrity.MANIFEST_DIGEST]
  (folder / "manifest.json").write_text(json.dumps({**manifest, **changes, "format_version": 1}))
  return folder


def test_a_manifest_made_format_1_loads_only_when_allowed(tmp_path, capsys):
  folder = as_format_1(small_index("exact", n=40, dim=8).save(tmp_path / "i"), eta=-1.0)
  message = refusal(folder)
  assert str(folder / "manifest.json") in message and "--allow-unchecked-index" in message
  assert CentroidIndex.load(folder, allow_unchecked=True).metadata["eta"] == -1.0
  with integrity.allowing_unchecked():  # as the command line's flag sets it
    assert CentroidIndex.load(folder).metadata["eta"] == -1.0
  # The command line: refused in one line, then an edit with the flag saves format 2.
  status, _, err = run_in_process(["remove-landmarks", "--index", folder, "3"], capsys)
  assert status == 2 and len(err) == 1 and "--allow-unchecked-index" in err[0]
  argv = ["remove-landmarks", "--index", folder, "3", "--allow-unchecked-index"]
  assert run_in_process(argv, capsys)[0] == 0
  assert json.loads((folder / "manifest.json").read_text())["format_version"] == 2
  assert 3 not in CentroidIndex.load(folder).labels  # the edit landed


# Arrays against each other -------------------------------------------------------------


@pytest.fixture
def scann_index(tmp_path):
  """A small ScaNN tree (every asset ScaNN saves: its dataset, partition, codes)."""
  if not scann_backend.scann_available():
    pytest.skip("ScaNN is not installed")
  vectors, _ = clustered_vectors(300, 8, clusters=10, seed=2)
  config = IndexConfig(backend="scann", brute_force_below=100)
  index = CentroidIndex.build(vectors, np.arange(300) // 10, config)
  assert index.scann_info["mode"] == "tree_ah"
  return index.save(tmp_path / "scann")


def test_scann_keeps_the_centroids_as_given(scann_index):
  # What the cross-check relies on, verified on a fresh build: ScaNN's dataset.npy holds the
  # centroids unchanged, and each one's partition is one of the tree's.
  dataset = np.load(scann_index / "scann" / "dataset.npy")
  np.testing.assert_array_equal(dataset, np.load(scann_index / "centroids.npy"))
  tokens = np.load(scann_index / "scann" / "datapoint_to_token.npy")
  leaves = json.loads((scann_index / "manifest.json").read_text())["scann"]["num_leaves"]
  assert tokens.shape == (300,) and 0 <= tokens.min() and tokens.max() < leaves


def scann_reads(monkeypatch) -> list:
  """The folders ScaNN is given from now on, which it is not allowed to read (a header
  claiming more rows than its file has is read past the end by its C++)."""
  given = []
  monkeypatch.setattr(scann_backend, "load_scann", given.append)
  return given


def test_a_scann_dataset_whose_header_claims_more_rows_is_refused_unread(scann_index, monkeypatch):
  # A 2 KB file whose header claims 200,000 rows: ScaNN's C++ trusts the header.
  path = scann_index / "scann" / "dataset.npy"
  data = path.read_bytes()
  header = np.lib.format.header_data_from_array_1_0(np.load(path))
  header["shape"] = (200_000, 8)
  with open(path, "wb") as f:
    np.lib.format.write_array_header_1_0(f, header)
    f.write(data[-300 * 8 * 4 :])
  given = scann_reads(monkeypatch)
  message = refusal(resealed(scann_index))
  assert str(path) in message and "200000" in message and given == []


@pytest.mark.parametrize(
  "change",
  [
    lambda dataset, tokens: (dataset[:3], tokens),  # 3 rows: silently wrong neighbours
    lambda dataset, tokens: (dataset[::-1].copy(), tokens),  # the right shape, other rows
    lambda dataset, tokens: (dataset, tokens + 1000),  # partitions the tree does not have
  ],
  ids=["3 rows", "other rows", "partitions out of range"],
)
def test_scann_assets_that_disagree_with_the_centroids_are_refused(
  scann_index, monkeypatch, change
):
  folder = scann_index / "scann"
  dataset, tokens = change(
    np.load(folder / "dataset.npy"), np.load(folder / "datapoint_to_token.npy")
  )
  np.save(folder / "dataset.npy", dataset)
  np.save(folder / "datapoint_to_token.npy", tokens)
  given = scann_reads(monkeypatch)
  assert str(folder) in refusal(resealed(scann_index)) and given == []


def test_centroids_that_are_not_unit_vectors_are_refused(tmp_path):
  folder = small_index("exact", n=40, dim=8).save(tmp_path / "i")
  np.save(folder / "centroids.npy", np.load(folder / "centroids.npy") * np.float32(1e30))
  assert f"{folder / 'centroids.npy'}: row 0 has norm" in refusal(resealed(folder))
  # Refused where such an index would be made, too.
  vectors = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
  with pytest.raises(ValueError, match="not unit length"):
    CentroidIndex.build(vectors, np.arange(4), IndexConfig(backend="exact"))


# The manifest's size -------------------------------------------------------------------


def test_a_huge_manifest_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
  folder = small_index("exact", n=40, dim=8).save(tmp_path / "i")
  text = (folder / "manifest.json").read_text()
  # 2 MiB of whitespace: the same JSON, so its digest still matches.
  (folder / "manifest.json").write_text(text[:-1] + " " * 2**21 + text[-1])
  monkeypatch.setattr(integrity, "MAX_MANIFEST_BYTES", 2**20, raising=False)
  parsed = []
  loads = json.loads
  monkeypatch.setattr(json, "loads", lambda data, **kw: parsed.append(len(data)) or loads(data))
  assert "manifest.json: 2" in refusal(folder)
  with pytest.raises(IndexFormatError, match="more than a manifest ever needs"):
    reload.read_version(folder)  # the service's poll reads it too
  assert all(size <= 2**20 for size in parsed)


# The backup an interrupted save left ----------------------------------------------------


def test_the_backup_of_an_interrupted_save_is_never_read_in_place_of_the_index(tmp_path):
  folder = small_index("exact", n=40, dim=8).save(tmp_path / "index")
  shutil.copytree(folder, folders.backup_path(folder))  # left by a killed save, long ago
  shutil.rmtree(folder)  # and the user deleted the index since
  message = refusal(folder)
  assert f"no index at {folder}" in message and str(folders.backup_path(folder)) in message
  with pytest.raises(FileNotFoundError):
    reload.read_version(folder)


def test_the_next_writer_settles_a_swap_that_a_crash_interrupted(tmp_path, capsys):
  old = small_index("exact", n=40, dim=8, seed=1)
  folder = old.save(tmp_path / "index")
  # Killed between the renames: the journal and the backup, no index.
  folders.swap_journal_path(folder).write_text("swap\n")
  os.rename(folder, folders.backup_path(folder))
  edit_index(folder, lambda index: index.with_metadata(eta=0.4))
  (line,) = capsys.readouterr().err.splitlines()
  assert "restored" in line and str(folder) in line
  loaded = CentroidIndex.load(folder)
  np.testing.assert_array_equal(loaded.centroids, old.centroids)
  assert loaded.metadata["eta"] == 0.4
  assert not folders.backup_path(folder).exists() and not folders.swap_journal_path(folder).exists()
  # Killed after the renames (journal, backup and the new index): the backup goes.
  shutil.copytree(folder, folders.backup_path(folder))
  folders.swap_journal_path(folder).write_text("swap\n")
  edit_index(folder, lambda index: index.with_metadata(eta=0.5))
  assert not folders.backup_path(folder).exists() and not folders.swap_journal_path(folder).exists()
  assert CentroidIndex.load(folder).metadata["eta"] == 0.5


# Landmarks of another index, a full disk -------------------------------------------------


def test_only_the_index_landmarks_are_stored_and_a_huge_table_is_refused(tmp_path):
  vectors, _ = clustered_vectors(8, 8, clusters=4, seed=1)
  table = {i: LandmarkInfo(name=f"landmark {i}") for i in range(10_000)}
  index = CentroidIndex.build(
    vectors, np.arange(8), IndexConfig(backend="exact"), label_map=LabelMap.from_ids(range(8))
  )
  folder = index.with_landmarks(table).save(tmp_path / "i")
  assert sorted(CentroidIndex.load(folder).landmarks) == list(range(8))
  # Written by another tool and re-sealed: refused before it is parsed.
  rows = "".join(f"{i},landmark {i},,,\n" for i in range(10_000))
  (folder / "landmarks.csv").write_text("landmark_id,name,latitude,longitude,category\n" + rows)
  assert f"{folder / 'landmarks.csv'}: " in refusal(resealed(folder))


def test_a_full_disk_leaves_the_index_unchanged_in_one_line(tmp_path, monkeypatch, capsys):
  folder = small_index("exact", n=40, dim=8).save(tmp_path / "index")
  before = (folder / "manifest.json").read_bytes()
  save = np.save

  def full(path, array, **kwargs):
    if os.fspath(path).endswith("cluster_sizes.npy"):
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.fspath(path))
    return save(path, array, **kwargs)

  monkeypatch.setattr(centroid_index.np, "save", full)
  status, _, err = run_in_process(["remove-landmarks", "--index", folder, "3"], capsys)
  assert status == 2, err
  assert err == [
    f"landmark-jax remove-landmarks: error: no space left writing {folder}; the index is unchanged"
  ]
  # A Python caller sees both what it is (an OSError) and that it is the user's to fix.
  with pytest.raises(UserError) as caught:
    small_index("exact", n=40, dim=8).save(folder)
  assert isinstance(caught.value, OSError)
  assert (folder / "manifest.json").read_bytes() == before
  assert sorted(p.name for p in tmp_path.iterdir()) == [".index.lock", "index"]  # no staging
