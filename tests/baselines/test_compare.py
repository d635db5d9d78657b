"""`landmark-jax benchmark compare` end to end on the embedded dataset (tiny backbone, CPU)."""

import json

import numpy as np
from PIL import Image

from landmark_jax import cli
from landmark_jax.benchmarks.compare import mean_over_seeds, write_comparison
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.index import CentroidIndex


def test_benchmark_compare_writes_table_json_and_chart(tiny_trained, index_dir, tmp_path, capsys):
  out = tmp_path / "compare"
  code = cli.main(
    [
      "benchmark",
      "compare",
      "--checkpoint",
      str(tiny_trained[0]),
      "--index",
      str(index_dir / "index"),
      "--root",
      str(demo_dataset()),
      "--max-queries",
      "16",
      "--target-specificity",
      "0.9",
      "--out",
      str(out),
      "--preset",
      "demo",
      "attention_steps=3",
      "num_candidates=5",
      "index_backend=exact",
    ]
  )
  assert code == 0
  result = json.loads((out / "compare.json").read_text())
  assert len(result["rows"]) == 3
  centroid, verified, delf = result["rows"]
  queries = result["queries"]
  assert queries == 16 and result["target_specificity"] == 0.9
  for row in (centroid, verified, delf):
    assert row["forward ms"] > 0 and row["search ms"] > 0
    assert row["total ms"] == np.float64(
      row["forward ms"] + row["search ms"] + row["verification ms"]
    )
    # The per-query totals written are the ones summarised.
    assert len(row["per_query_ms"]) == queries
    assert row["mean ms"] == np.mean(row["per_query_ms"])
    assert row["p99 ms"] == np.percentile(row["per_query_ms"], 99)
    assert row["share verified"] == sum(row["per_query_verified"]) / queries
    assert 0 <= row["share verified"] <= 1
    assert row["sensitivity n"] + row["specificity n"] == queries
    for rate in ("sensitivity", "specificity"):
      assert row[f"{rate} low"] <= row[rate] <= row[f"{rate} high"]
  assert centroid["share verified"] == 0 and delf["share verified"] == 1
  assert centroid["verification ms"] == 0 and delf["verification ms"] > 0
  # A query verified costs more than its centroid answer: the describing and the matching.
  for answer, alone, was_verified in zip(
    verified["per_query_ms"], centroid["per_query_ms"], verified["per_query_verified"]
  ):
    assert (answer > alone) if was_verified else (answer == alone)
  # Memory: the centroid index holds its vectors (float32) and labels (int64); the database
  # every kept descriptor (40 float32), its keypoint (2 float32), owner (int64) + offsets;
  # the verified answers' store each of its features' int8 descriptor and float16
  # keypoint, per photo an offset and a label (int64) and one offset more.
  index = CentroidIndex.load(index_dir / "index")
  centroid_bytes = index.centroids.nbytes + index.labels.nbytes
  assert centroid["index KB"] * 1024 == centroid["vectors"] * (64 * 4 + 8) == centroid_bytes
  photos = result["database_photos"]
  assert delf["index KB"] * 1024 == delf["vectors"] * (40 * 4 + 2 * 4 + 8) + (photos + 1) * 8
  store = result["verification"]
  assert store["store"] == "DELF's database" and store["descriptor_dim"] == 40
  assert 0 < store["photos"] <= 4 * len(np.unique(index.labels))
  features, stored = store["features"], store["photos"]
  store_bytes = features * (40 + 2 * 2) + (stored + 1) * 8 + stored * 8
  assert verified["index KB"] == (centroid_bytes + store_bytes) / 1024
  assert verified["vectors"] == centroid["vectors"] + features
  # One extractor (attention head + PCA) describes for both; the centroids need none.
  assert verified["extractor KB"] == delf["extractor KB"] > 0 == centroid["extractor KB"]
  ratios = result["ratios"]
  assert ratios["time, mean per query (DELF / centroids)"] == delf["mean ms"] / centroid["mean ms"]
  assert ratios["time, mean per query (DELF / verified)"] == delf["mean ms"] / verified["mean ms"]
  assert ratios["time, median parts (DELF / centroids)"] == delf["total ms"] / centroid["total ms"]
  assert ratios["memory (DELF / centroids)"] == delf["index KB"] / centroid["index KB"]
  assert ratios["memory (DELF / verified)"] == delf["index KB"] / verified["index KB"]
  printed = capsys.readouterr().out
  for method in ("centroids (ours)", "centroids + verification (ours)", "DELF-style (trained"):
    assert f"| {method}" in printed
  assert f"reference photos ({features} features) from DELF's database;" in printed
  assert (out / "compare.md").read_text() in printed
  with Image.open(out / "compare.png") as chart:
    assert chart.format == "PNG" and chart.size[0] > chart.size[1] > 200
  # The seeds' report renders a mean result (two copies of this one: their mean is it).
  mean = mean_over_seeds([result, result], (0, 1))
  assert [row["mean ms"] for row in mean["rows"]] == [row["mean ms"] for row in result["rows"]]
  assert "mean over seeds 0, 1" in write_comparison(mean, tmp_path / "mean")


def _seed_result(value: float, threshold: str) -> dict:
  row = {
    "method": "centroids (ours)",
    "mean ms": value,
    "sensitivity": value / 10,
    "sensitivity n": 40,
    "threshold": threshold,
    "per_query_ms": [value, value],
  }
  return {
    "rows": [row, {**row, "method": "DELF-style"}],
    "ratios": {"time (DELF / centroids)": 10 * value},
    "queries": 16,
    "database_photos": 100,
    "target_specificity": 0.9,
  }


def test_the_seeds_table_is_the_mean_of_the_seeds_tables():
  mean = mean_over_seeds([_seed_result(1.0, "η = 0.5"), _seed_result(4.0, "η = 0.6")], (0, 1))
  expected = {"mean ms": 2.5, "sensitivity": 0.25, "sensitivity n": 40.0, "threshold": "per seed"}
  assert mean["rows"] == [
    {"method": "centroids (ours)", **expected},
    {"method": "DELF-style", **expected},
  ]
  assert mean["ratios"] == {"time (DELF / centroids)": 25.0}
  assert (mean["queries"], mean["database_photos"], mean["target_specificity"]) == (16, 100, 0.9)
  assert mean["seeds"] == [0, 1]
  shared = mean_over_seeds([_seed_result(1.0, "η = 0.5")] * 2, (0, 1))
  assert shared["rows"][0]["threshold"] == "η = 0.5"


def test_seeds_train_the_demo_so_they_refuse_a_given_checkpoint(tmp_path, capsys):
  code = cli.main(
    ["benchmark", "compare", "--checkpoint", str(tmp_path), "--index", str(tmp_path), "--seeds"]
    + ["0", "1"]
  )
  assert code == 2 and "--seeds" in capsys.readouterr().err
