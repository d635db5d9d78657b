"""An index reached through a symlink (``current -> index-v1``) is edited, locked and saved
as its real folder: the link stays a link, and writers through either name take turns.

Issue 33, finding 6: at 6008fac (and at 44ece44) an edit through ``current`` renamed the
link away and wrote a real folder in its place, ``index-v1`` was never edited, and the
second edit failed with "Not a directory".
"""

import json
import threading

import pytest

from landmark_jax.folders import FolderBusyError, exclusive_writer, lock_path
from landmark_jax.index import CentroidIndex
from landmark_jax.index.editing import edit_index
from tests.helpers import small_index


@pytest.fixture
def linked(tmp_path):
  """(link, real folder): ``current -> index-v1``, a relative link as `ln -s` makes."""
  small_index("exact", n=40, dim=8).save(tmp_path / "index-v1")
  (tmp_path / "current").symlink_to("index-v1")
  return tmp_path / "current", tmp_path / "index-v1"


def manifest(folder):
  return json.loads((folder / "manifest.json").read_text())


def test_edits_through_a_symlink_edit_the_folder_it_points_to(linked):
  link, real = linked
  edit_index(link, lambda index: index.with_metadata(eta=0.3))
  edit_index(link, lambda index: index.with_metadata(note="second edit"))
  assert link.is_symlink() and link.resolve() == real
  # Both edits landed in the real folder; no folder or backup was made beside it.
  assert manifest(real)["eta"] == 0.3 and manifest(real)["note"] == "second edit"
  assert sorted(p.name for p in real.parent.iterdir()) == [".index-v1.lock", "current", "index-v1"]
  assert CentroidIndex.load(link).metadata["note"] == "second edit"


def test_writers_through_either_name_exclude_each_other(linked):
  link, real = linked
  assert lock_path(link) == lock_path(real)  # one lock file, whichever name a process used
  held, done = threading.Event(), threading.Event()

  def hold_through_the_link():
    with exclusive_writer(link):
      held.set()
      done.wait()

  holder = threading.Thread(target=hold_through_the_link)
  holder.start()
  try:
    held.wait()
    with pytest.raises(FolderBusyError):
      with exclusive_writer(real, timeout=0.2):
        pass
  finally:
    done.set()
    holder.join()


def test_a_save_through_a_dangling_link_creates_the_folder_it_names(tmp_path):
  # `ln -s index-v2 current && build-index --out current`: the new version is index-v2.
  (tmp_path / "current").symlink_to("index-v2")
  small_index("exact", n=40, dim=8).save(tmp_path / "current")
  assert (tmp_path / "current").is_symlink()
  assert (tmp_path / "index-v2" / "manifest.json").is_file()
  assert len(CentroidIndex.load(tmp_path / "current")) == 40
