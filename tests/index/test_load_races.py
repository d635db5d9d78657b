"""Readers racing a writer: `CentroidIndex.load` returns one whole version of an index that a
concurrent save replaces, and still refuses a damaged index at once.

Issue 33, finding 7: at 6008fac (and at 44ece44) a load that a save tore failed with
"checksum mismatch" or "No such file". The races are made deterministic here: the save
(or half of one) runs inside the reader, at the point where a real writer would land.
"""

import os
import shutil

import numpy as np
import pytest

from landmark_jax import folders
from landmark_jax.index import CentroidIndex, IndexFormatError, centroid_index, integrity
from tests.helpers import small_index


def first_call_runs(action, function):
  """`function`, running `action` once, on its first call, before it."""
  calls = []

  def wrapped(*args, **kwargs):
    if not calls:
      calls.append(1)
      action()
    return function(*args, **kwargs)

  return wrapped


def test_a_save_landing_while_the_files_are_checked_gives_the_new_index(tmp_path, monkeypatch):
  folder = tmp_path / "index"
  small_index("exact", n=40, dim=8, seed=1).save(folder)
  new = small_index("exact", n=40, dim=8, seed=2)
  # The reader has read the old manifest; the writer swaps in the new folder now.
  monkeypatch.setattr(
    integrity, "check_files", first_call_runs(lambda: new.save(folder), integrity.check_files)
  )
  monkeypatch.setattr(centroid_index, "_wait_for_writer", lambda seconds: None, raising=False)
  loaded = CentroidIndex.load(folder)
  np.testing.assert_array_equal(loaded.centroids, new.centroids)
  assert loaded.metadata == CentroidIndex.load(folder).metadata


def test_a_reader_between_a_saves_two_renames_waits_for_the_new_index(tmp_path, monkeypatch):
  folder, staged = tmp_path / "index", tmp_path / "staged"
  small_index("exact", n=40, dim=8, seed=1).save(folder)
  new = small_index("exact", n=40, dim=8, seed=2)
  new.save(staged)

  def first_rename():  # as `folders._swap_into_place` does: journal, then target → backup
    folders.swap_journal_path(folder).write_text("swap\n")
    os.rename(folder, folders.backup_path(folder))

  waits = []

  def second_rename(seconds):  # the writer finishes while the reader waits
    waits.append(seconds)
    os.rename(staged, folder)
    shutil.rmtree(folders.backup_path(folder))
    folders.swap_journal_path(folder).unlink()

  monkeypatch.setattr(
    integrity, "check_files", first_call_runs(first_rename, integrity.check_files)
  )
  monkeypatch.setattr(centroid_index, "_wait_for_writer", second_rename, raising=False)
  with folders.exclusive_writer(folder):  # the writer is alive: it holds the lock
    loaded = CentroidIndex.load(folder)
  np.testing.assert_array_equal(loaded.centroids, new.centroids)
  assert len(waits) == 1


def test_a_swap_left_by_a_killed_writer_is_refused_at_once(tmp_path, monkeypatch):
  # The journal and the backup, no index, and nobody holds the lock: no writer to wait for.
  folder = small_index("exact", n=40, dim=8).save(tmp_path / "index")
  folders.swap_journal_path(folder).write_text("swap\n")
  os.rename(folder, folders.backup_path(folder))
  waits = []
  monkeypatch.setattr(centroid_index, "_wait_for_writer", waits.append, raising=False)
  with pytest.raises(IndexFormatError, match="an interrupted save left .*mv"):
    CentroidIndex.load(folder)
  assert waits == []


def test_a_damaged_index_with_no_writer_around_fails_at_once(tmp_path, monkeypatch):
  # The retry must not turn the one-line refusal of a damaged index into a wait.
  folder = small_index("exact", n=40, dim=8).save(tmp_path / "index")
  (folder / "labels.npy").write_bytes(b"\x93NUMPY damaged")
  waits = []
  monkeypatch.setattr(centroid_index, "_wait_for_writer", waits.append, raising=False)
  with pytest.raises(IndexFormatError, match="labels.npy"):
    CentroidIndex.load(folder)
  with pytest.raises(IndexFormatError, match="no index at"):
    CentroidIndex.load(tmp_path / "nothing")
  assert waits == []


def test_an_index_that_keeps_changing_is_refused_at_the_deadline(tmp_path, monkeypatch):
  folder = tmp_path / "index"
  versions = [small_index("exact", n=40, dim=8, seed=seed) for seed in (1, 2)]
  versions[0].save(folder)
  saves = []

  def save_another(directory, manifest):  # every read is torn by another save
    saves.append(1)
    versions[len(saves) % 2].save(folder)
    return check_files(directory, manifest)

  check_files = integrity.check_files
  monkeypatch.setattr(integrity, "check_files", save_another)
  monkeypatch.setattr(centroid_index, "_wait_for_writer", lambda seconds: None, raising=False)
  monkeypatch.setattr(centroid_index, "READ_DEADLINE_S", 0.0, raising=False)
  with pytest.raises(IndexFormatError, match="kept changing while it was read"):
    CentroidIndex.load(folder)
  assert len(saves) == 1  # a zero deadline: one read, then the error
