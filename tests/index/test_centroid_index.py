import hashlib
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from landmark_jax.folders import exclusive_writer
from landmark_jax.index import CentroidIndex, IndexFormatError
from landmark_jax.index.exact import ExactSearcher
from landmark_jax.index.integrity import sealed
from tests.helpers import clustered_vectors, small_index


def test_exact_searcher_equals_numpy_with_chunks_and_padding():
  rng = np.random.default_rng(0)
  database = rng.standard_normal((1003, 16)).astype(np.float32)
  queries = rng.standard_normal((37, 16)).astype(np.float32)
  searcher = ExactSearcher(database, chunk_size=100, query_batch=8)  # 11 chunks, last padded
  index, scores = searcher.search(queries, 5)
  reference = np.argsort(-(queries @ database.T), axis=1)[:, :5]
  np.testing.assert_array_equal(index, reference)
  np.testing.assert_allclose(
    scores, np.take_along_axis(queries @ database.T, reference, 1), rtol=1e-5
  )


@pytest.mark.slow
def test_scann_recall_at_1_on_100k_clustered_vectors():
  vectors, rng = clustered_vectors(100_000)
  index = CentroidIndex.build(vectors, np.arange(100_000) % 977)
  assert index.backend == "scann" and index.manifest()["scann"]["mode"] == "tree_ah"
  queries = vectors[rng.integers(0, 100_000, 1000)] + 0.1 * rng.standard_normal((1000, 512)).astype(
    np.float32
  )
  queries /= np.linalg.norm(queries, axis=1, keepdims=True)
  _, _, approximate = index.search(queries, 1)
  _, exact_scores, exact = index.search(queries, 1, exact=True)
  recall = np.mean(approximate[:, 0] == exact[:, 0])
  assert recall >= 0.99, recall


@pytest.mark.parametrize("backend", ["scann", "exact"])
def test_save_load_search_identical_and_movable(tmp_path, backend):
  index = small_index(backend)
  queries = clustered_vectors(20, 32, clusters=50, seed=9)[0]
  before = index.search(queries, 5)
  index.save(tmp_path / "a")
  shutil.move(tmp_path / "a", tmp_path / "moved")  # ScaNN's absolute asset paths are remapped
  loaded = CentroidIndex.load(tmp_path / "moved")
  assert loaded.backend == index.backend
  for x, y in zip(before, loaded.search(queries, 5)):
    np.testing.assert_array_equal(x, y)
  np.testing.assert_array_equal(loaded.cluster_sizes, index.cluster_sizes)
  assert loaded.label_map == index.label_map and loaded.metadata["checkpoint"] == "run/step_100"
  manifest = json.loads((tmp_path / "moved" / "manifest.json").read_text())
  assert manifest["format_version"] == 2 and manifest["embedding_dim"] == 32
  assert manifest["num_centroids"] == 500 and manifest["num_landmarks"] == 50
  files = {"centroids.npy", "labels.npy", "cluster_sizes.npy", "label_map.json"}
  if backend == "scann":
    files |= {"scann/dataset.npy", "scann/scann_assets.pbtxt", "scann/scann_config.pb"}
  assert set(manifest["files"]) == files
  centroids = (tmp_path / "moved" / "centroids.npy").read_bytes()
  assert manifest["files"]["centroids.npy"] == {
    "bytes": len(centroids),
    "sha256": hashlib.sha256(centroids).hexdigest(),
  }


def test_relative_paths_work(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  index = small_index("scann")
  index.save("work/index")
  loaded = CentroidIndex.load("work/index")
  np.testing.assert_array_equal(loaded.search(index.centroids[:3], 1)[2][:, 0], [0, 1, 2])


def test_load_errors_name_the_problem(tmp_path):
  small_index("exact").save(tmp_path / "i")
  with pytest.raises(IndexFormatError, match="embedding_dim 32, the model produces 512"):
    CentroidIndex.load(tmp_path / "i", expected_dim=512)
  manifest = json.loads((tmp_path / "i" / "manifest.json").read_text())
  (tmp_path / "i" / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
  with pytest.raises(IndexFormatError, match="format_version 99"):
    CentroidIndex.load(tmp_path / "i")
  (tmp_path / "i" / "manifest.json").write_text(json.dumps(manifest))
  (tmp_path / "i" / "labels.npy").unlink()
  with pytest.raises(IndexFormatError, match=r"index file missing: .*labels\.npy"):
    CentroidIndex.load(tmp_path / "i")
  with pytest.raises(IndexFormatError, match="no index at"):
    CentroidIndex.load(tmp_path / "nothing")


def test_pickled_arrays_are_refused_even_with_valid_checksums(tmp_path):
  small_index("exact").save(tmp_path / "i")
  labels = tmp_path / "i" / "labels.npy"
  np.save(labels, np.array([object()] * 500, dtype=object), allow_pickle=True)
  manifest = json.loads((tmp_path / "i" / "manifest.json").read_text())
  manifest["files"]["labels.npy"] = {
    "bytes": labels.stat().st_size,
    "sha256": hashlib.sha256(labels.read_bytes()).hexdigest(),
  }
  (tmp_path / "i" / "manifest.json").write_text(json.dumps(sealed(manifest)))
  with pytest.raises(IndexFormatError, match=r"labels\.npy: .*allow_pickle"):
    CentroidIndex.load(tmp_path / "i")


@pytest.mark.slow
def test_killed_while_saving_leaves_a_readable_index(tmp_path):
  target = tmp_path / "index"
  small_index("scann", n=3000, seed=1).save(target)
  writer = textwrap.dedent(f"""
      import numpy as np
      from tests.helpers import small_index
      index = small_index("scann", n=3000, seed=2)
      print("ready", flush=True)
      while True:
        index.save({str(target)!r})
      """)
  for delay in (0.05, 0.2, 0.4, 0.7, 1.1):
    process = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE)
    assert process.stdout.readline().strip() == b"ready"
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # The next writer settles a swap the kill cut between its renames (readers refuse to
    # read the backup in the index's place, naming it: tests/index/test_load_races.py).
    with exclusive_writer(target):
      pass
    loaded = CentroidIndex.load(target)  # whichever save completed last, but always whole
    assert len(loaded) == 3000
    queries = loaded.centroids[:5]
    _, scores, ids = loaded.search(queries, 1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(5))
