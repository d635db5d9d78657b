"""`build-index --target-recall`: recall@1 against exact search, the cheapest setting meeting
the target, kept in the manifest and used by a loaded index; a shortfall warns.

The oracle everywhere is NumPy: every query's dot product with every centroid in float64,
so the exact nearest neighbour and "does the found one score as high" need no library code.
"""

import json
import logging
import subprocess
import sys

import numpy as np
import pytest

from landmark_jax.benchmarks.index_speed import write_synthetic_clean, write_synthetic_embeddings
from landmark_jax.cli.main import main
from landmark_jax.index import CentroidIndex, IndexConfig, IndexFormatError, tuning
from landmark_jax.index.config import SearchSetting
from landmark_jax.index.editing import remove_landmarks
from landmark_jax.index.integrity import sealed
from landmark_jax.stages.build_index import tuning_queries

NUM_CENTROIDS, DIM, PHOTOS, ETA, TARGET = 4000, 64, 1500, 0.6, 0.99


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
  """A `clean` folder of 4,000 clustered 64-d centroids (63 ScaNN leaves) and an `embed`
  folder of 1,500 photos around them and in random directions, in build-index's layouts."""
  root = tmp_path_factory.mktemp("tuning")
  centroids = write_synthetic_clean(root / "clean", NUM_CENTROIDS, DIM)
  write_synthetic_embeddings(
    root / "embeddings",
    centroids,
    np.load(root / "clean" / "centroid_labels.npy"),
    PHOTOS,
    shard_size=500,
  )
  return root


def photos(folder) -> np.ndarray:
  return np.concatenate([np.load(folder / f"shard-{i:05d}" / "embeddings.npy") for i in range(3)])


def numpy_recall(centroids, queries, found, mask=None) -> float:
  """Share of queries whose found centroid scores as high as the best (float64 NumPy)."""
  scores = queries.astype(np.float64) @ centroids.astype(np.float64).T
  hit = scores[np.arange(len(queries)), found] >= scores.max(axis=1)
  return float(hit[mask].mean() if mask is not None else hit.mean())


def test_recall_at_1_by_hand():
  found, truth = np.array([0, 1, 2, 3, 4]), np.array([0, 1, 5, 3, 6])
  assert tuning.recall_at_1(found, truth) == 3 / 5
  # The 3rd found ties the exact best (equal scores): as right as the exact one.
  assert (
    tuning.recall_at_1(
      found, truth, np.array([0.9, 0.8, 0.7, 0.6, 0.4]), np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    )
    == 4 / 5
  )
  assert tuning.recall_at_1(found, truth, mask=np.array([0, 0, 1, 1, 0], bool)) == 1 / 2
  assert tuning.recall_at_1(found, truth, mask=np.zeros(5, bool)) is None


def test_ladder_and_cost():
  ladder = tuning.settings_ladder(63, leaf_shares=(0.01, 0.1, 1.0), reorders=(50, 20))
  assert ladder == [SearchSetting(l, r) for l in (1, 6, 63) for r in (20, 50)]
  # 1,000 vectors × 10/100 leaves × 256 blocks × ½ byte + 20 rows × 512 × 4 bytes.
  assert (
    tuning.search_cost(
      SearchSetting(10, 20), num_vectors=1000, num_leaves=100, dim=512, dims_per_block=2
    )
    == 100 * 128 + 20 * 2048
  )


def test_perturbed_queries_sit_at_the_similarity():
  rng = np.random.default_rng(0)
  centroids = rng.standard_normal((50, 32)).astype(np.float32)
  centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
  queries = tuning.perturbed_queries(centroids, 20, np.random.default_rng(1), similarity=0.7)
  np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1, atol=1e-6)
  best = (queries @ centroids.T).max(axis=1)  # each is nearest to its own at this similarity
  np.testing.assert_allclose(best, 0.7, atol=1e-5)


def test_measured_recall_equals_numpy(folders):
  centroids = np.load(folders / "clean" / "centroids.npy")
  index = CentroidIndex.build(
    centroids, np.arange(NUM_CENTROIDS), IndexConfig(backend="scann", brute_force_below=0)
  )
  queries = photos(folders / "embeddings")
  setting = SearchSetting(3, 20)
  result = tuning.tune(index, queries, 0.5, eta=ETA, ladder=[setting])
  _, _, found = index.search(queries, 1, leaves_to_search=3, reorder=20)
  above = (queries.astype(np.float64) @ centroids.T.astype(np.float64)).max(axis=1) >= ETA
  assert result.chosen.setting == setting and result.queries_above_eta == above.sum()
  assert result.chosen.recall == pytest.approx(
    numpy_recall(centroids, queries, found[:, 0]), abs=1e-12
  )
  assert result.chosen.recall_above_eta == pytest.approx(
    numpy_recall(centroids, queries, found[:, 0], above), abs=1e-12
  )
  assert 0 < result.chosen.recall < 1  # a case that tells right from wrong


@pytest.mark.slow
def test_build_index_target_recall_cheapest_setting_kept_and_used(folders, tmp_path, capsys):
  out = tmp_path / "index"
  assert (
    main(
      [
        "build-index",
        "--clean",
        str(folders / "clean"),
        "--out",
        str(out),
        "--target-recall",
        str(TARGET),
        "--embeddings",
        str(folders / "embeddings"),
        "--eta",
        str(ETA),
        "--tuning-queries",
        str(PHOTOS),
        "brute_force_below=0",
      ]
    )
    == 0
  )
  printed = capsys.readouterr().out
  manifest = json.loads((out / "manifest.json").read_text())
  record = manifest["scann"]["tuning"]
  chosen = SearchSetting(manifest["scann"]["leaves_to_search"], manifest["scann"]["reorder"])
  assert record["reached"] and record["eta"] == ETA and record["queries"] == PHOTOS
  assert (manifest["config"]["leaves_to_search"], manifest["config"]["reorder"]) == (
    chosen.leaves_to_search,
    chosen.reorder,
  )
  assert f"{record['recall_at_1_above_eta']:.4f}" in printed

  index = CentroidIndex.load(out)
  assert index.search_settings == chosen
  centroids, queries = index.centroids, photos(folders / "embeddings")
  above = (queries.astype(np.float64) @ centroids.T.astype(np.float64)).max(axis=1) >= ETA
  _, _, found = index.search(queries, 1)
  recall_above = numpy_recall(centroids, queries, found[:, 0], above)
  assert recall_above >= TARGET
  assert recall_above == pytest.approx(record["recall_at_1_above_eta"], abs=1e-12)
  assert numpy_recall(centroids, queries, found[:, 0]) == pytest.approx(
    record["recall_at_1"], abs=1e-12
  )
  # The cheapest: every cheaper setting of the ladder misses the target (NumPy oracle).
  num_leaves = manifest["scann"]["num_leaves"]

  def cost(s):
    return tuning.search_cost(
      s, num_vectors=NUM_CENTROIDS, num_leaves=num_leaves, dim=DIM, dims_per_block=2
    )

  cheaper = [s for s in tuning.settings_ladder(num_leaves) if cost(s) < cost(chosen)]
  assert cheaper
  for setting in cheaper:
    _, _, other = index.search(
      queries, 1, leaves_to_search=setting.leaves_to_search, reorder=setting.reorder
    )
    assert numpy_recall(centroids, queries, other[:, 0], above) < TARGET, setting
  # The loaded index searches with the chosen setting, not the searcher's built defaults
  # (a fifth of the leaves, reorder 100), which miss the target here.
  default = SearchSetting(max(16, num_leaves // 5), 100)
  assert default != chosen
  raw, _ = index._scann.search_batched(queries, final_num_neighbors=1)
  assert numpy_recall(centroids, queries, raw[:, 0].astype(np.int64), above) < TARGET
  # An edit rebuilds the tree with the chosen setting (from the config).
  edited = remove_landmarks(index, [index.label_map.landmark_ids[0]])
  assert edited.search_settings == chosen and "tuning" not in edited.scann_info


def test_unreachable_target_warns_and_keeps_the_best(folders, tmp_path, caplog):
  centroids = np.load(folders / "clean" / "centroids.npy")
  index = CentroidIndex.build(
    centroids, np.arange(NUM_CENTROIDS), IndexConfig(backend="scann", brute_force_below=0)
  )
  queries, source = tuning_queries(centroids, folders / "clean", folders / "embeddings", 500)
  capped = [SearchSetting(1, 20), SearchSetting(2, 20), SearchSetting(1, 50)]
  with caplog.at_level(logging.WARNING):
    tuned, result = tuning.tuned_index(index, queries, 1.0, query_source=source, ladder=capped)
  assert not result.reached and result.chosen.setting == SearchSetting(2, 20)
  assert len(result.measured) == 1  # the most generous missed: nothing else can reach it
  assert "recall@1 target 1.0 not reached" in caplog.text and "2/63 leaves" in caplog.text
  loaded = CentroidIndex.load(tuned.save(tmp_path / "index"))
  assert loaded.search_settings == SearchSetting(2, 20)
  assert loaded.scann_info["tuning"]["reached"] is False
  _, _, found = loaded.search(queries, 1)
  recall = numpy_recall(centroids, queries, found[:, 0])
  assert recall == pytest.approx(result.chosen.recall, abs=1e-12) and recall < 1


def test_queries_come_from_the_cleanings_embeddings_else_perturbed(folders, tmp_path):
  centroids = np.load(folders / "clean" / "centroids.npy")
  clean = tmp_path / "clean"
  clean.mkdir()
  (clean / "clean.json").write_text(json.dumps({"embeddings": str(folders / "embeddings")}))
  queries, source = tuning_queries(centroids, clean, count=100)
  every = photos(folders / "embeddings")
  assert len(queries) == 100 and "embedded photos" in source
  assert all((every == q).all(axis=1).any() for q in queries)  # each one of the photos
  (clean / "clean.json").write_text(json.dumps({"embeddings": str(tmp_path / "gone")}))
  queries, source = tuning_queries(centroids, clean, count=100)
  assert "perturbed" in source and "gone" in source
  # Each at the similarity to a centroid (another may be nearer, in a cluster).
  assert (np.abs(queries @ centroids.T - tuning.PERTURBED_SIMILARITY) < 1e-5).any(axis=1).all()


def test_manifest_settings_are_checked(folders, tmp_path):
  centroids = np.load(folders / "clean" / "centroids.npy")[:500]
  index = CentroidIndex.build(
    centroids, np.arange(500), IndexConfig(backend="scann", brute_force_below=0)
  )
  path = index.save(tmp_path / "index")
  original = json.loads((path / "manifest.json").read_text())
  assert "tuning" not in original["scann"]  # built without a target: loads as before
  assert CentroidIndex.load(path).search_settings == SearchSetting(
    original["scann"]["leaves_to_search"], original["scann"]["reorder"]
  )
  for key, value, field in (
    ("leaves_to_search", 0, "scann.leaves_to_search"),
    ("tuning", {"recall_at_1": 1.5}, "scann.tuning.recall_at_1"),
  ):
    manifest = {k: v for k, v in original.items() if k != "manifest_sha256"}
    manifest["scann"] = {**manifest["scann"], key: value}
    (path / "manifest.json").write_text(json.dumps(sealed(manifest)))
    with pytest.raises(IndexFormatError, match=field):
      CentroidIndex.load(path)


def test_bad_target_recall_is_one_line_and_status_2(tmp_path, capsys):
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "landmark_jax.cli",
      "build-index",
      "--clean",
      str(tmp_path),
      "--out",
      str(tmp_path / "i"),
      "--target-recall",
      "1.5",
    ],
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
  assert "1.5" in result.stderr and "--target-recall" in result.stderr
  assert (
    main(["build-index", "--clean", str(tmp_path), "--out", str(tmp_path / "i"), "--eta", "0.5"])
    == 2
  )
  error = capsys.readouterr().err.strip().splitlines()
  assert len(error) == 1 and "--target-recall" in error[0]
