"""Concurrent writers of one index take turns: none loses another's edit, a waiting writer
says whom it waits for, a killed writer leaves neither a stale lock nor staging folders."""

import concurrent.futures
import csv
import json
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from landmark_jax.data.labels import LabelMap
from landmark_jax.folders import FolderBusyError, exclusive_writer, lock_path
from landmark_jax.index import CentroidIndex, IndexConfig
from landmark_jax.index.editing import add_centroids, locked_index
from tests.helpers import clustered_vectors


def small_index(tmp_path):
  vectors, _ = clustered_vectors(20, 8, clusters=4, seed=0)
  index = CentroidIndex.build(
    vectors, np.arange(20) // 5, IndexConfig(backend="exact"), label_map=LabelMap.from_ids(range(4))
  )
  return index.save(tmp_path / "index")


def unit(rng, dim=8):
  v = rng.normal(size=(1, dim)).astype(np.float32)
  return v / np.linalg.norm(v)


def test_threads_editing_at_once_lose_no_edit(tmp_path):
  directory = small_index(tmp_path)

  def add(name):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    with locked_index(directory, on_wait=None) as index:
      time.sleep(0.02)  # widen the read-modify-write window
      add_centroids(index, unit(rng), [name], np.ones(1, np.int64), None, {"images": 1}).save(
        directory
      )  # save re-enters the held lock

  names = [f"new{i}" for i in range(6)]
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    list(pool.map(add, names))
  final = CentroidIndex.load(directory)
  assert set(names) <= set(final.label_map.landmark_ids)
  assert len(final) == 20 + len(names)
  assert len(json.loads((directory / "manifest.json").read_text())["edits"]) == len(names)


def test_a_second_process_waits_names_the_holder_and_times_out(tmp_path):
  target = tmp_path / "index"
  holder = subprocess.Popen(
    [
      sys.executable,
      "-c",
      textwrap.dedent(f"""
      import sys, time
      from landmark_jax.folders import exclusive_writer
      with exclusive_writer({str(target)!r}):
        print("held", flush=True)
        time.sleep(30)
      """),
    ],
    stdout=subprocess.PIPE,
    text=True,
  )
  try:
    assert holder.stdout.readline().strip() == "held"
    waits = []
    with pytest.raises(FolderBusyError, match=f"pid {holder.pid}") as error:
      with exclusive_writer(target, timeout=0.5, on_wait=waits.append):
        pass
    assert "being written by another process" in str(error.value)
    assert len(waits) == 1 and f"pid {holder.pid}" in waits[0]
  finally:
    holder.kill()
    holder.wait()
  # The kernel released the killed holder's lock: nothing stale to clean by hand.
  assert lock_path(target).exists()
  with exclusive_writer(target, timeout=5):
    pass


def test_staging_folders_of_killed_saves_are_removed_by_the_next_writer(tmp_path):
  directory = small_index(tmp_path)
  leftover = tmp_path / ".index.tmp-killed"
  leftover.mkdir()
  (leftover / "centroids.npy").write_bytes(b"half")
  other = tmp_path / ".other.tmp-keep"  # another folder's staging is not ours to remove
  other.mkdir()
  CentroidIndex.load(directory).save(directory)
  assert not leftover.exists() and other.exists()
  assert sorted(p.name for p in tmp_path.iterdir()) == [".index.lock", ".other.tmp-keep", "index"]


def test_two_add_landmarks_processes_at_once_both_land(
  tiny_trained, index_dir, landmarks_mini, tmp_path
):
  CentroidIndex.load(index_dir / "index").save(tmp_path / "index")
  rows = list(csv.DictReader(open(landmarks_mini / "train.csv")))
  folders = []
  for landmark, name in (("2", "sacre_coeur"), ("3", "third")):
    folder = tmp_path / f"new-{name}" / name
    folder.mkdir(parents=True)
    for row in [r for r in rows if r["landmark_id"] == landmark][:6]:
      i = row["id"]
      (folder / f"{i}.jpg").symlink_to(landmarks_mini / "images" / i[0] / i[1] / i[2] / f"{i}.jpg")
    folders.append(folder.parent)
  commands = [
    [
      sys.executable,
      "-m",
      "landmark_jax.cli",
      "add-landmarks",
      "--checkpoint",
      str(tiny_trained[0]),
      "--index",
      str(tmp_path / "index"),
      "--folder",
      str(folder),
      "distance_threshold=0.5",
      "min_cluster_size=2",
    ]
    for folder in folders
  ]
  processes = [
    subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands
  ]
  outputs = [p.communicate(timeout=600) for p in processes]
  for process, (_, err) in zip(processes, outputs):
    assert process.returncode == 0, err
  final = CentroidIndex.load(tmp_path / "index")
  assert {"sacre_coeur", "third"} <= set(final.label_map.landmark_ids)
  assert [
    e["landmarks"] for e in json.loads((tmp_path / "index" / "manifest.json").read_text())["edits"]
  ] in ([["sacre_coeur"], ["third"]], [["third"], ["sacre_coeur"]])
  print("\n".join(err for _, err in outputs if "waiting for" in err))
