"""`landmark-jax benchmark compare` end to end on the embedded dataset (tiny backbone, CPU)."""

import json

import numpy as np
from PIL import Image

from landmark_jax import cli
from landmark_jax.data.demo_dataset import demo_dataset


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
  centroid, delf = result["rows"]
  assert result["queries"] == 16 and result["target_specificity"] == 0.9
  for row in (centroid, delf):
    assert row["forward ms"] > 0 and row["search ms"] > 0
    assert row["total ms"] == np.float64(
      row["forward ms"] + row["search ms"] + row["verification ms"]
    )
    assert 0 <= row["sensitivity"] <= 1 and 0 <= row["specificity"] <= 1
  assert centroid["verification ms"] == 0 and delf["verification ms"] > 0
  # Memory: the centroid index holds its vectors (float32) and labels (int64); the database
  # every kept descriptor (40 float32), its keypoint (2 float32), owner (int64) + offsets.
  assert centroid["index KB"] * 1024 == centroid["vectors"] * (64 * 4 + 8)
  photos = result["database_photos"]
  assert delf["index KB"] * 1024 == delf["vectors"] * (40 * 4 + 2 * 4 + 8) + (photos + 1) * 8
  ratios = result["ratios"]
  assert ratios["time (DELF / centroids)"] == delf["total ms"] / centroid["total ms"]
  assert ratios["memory (DELF / centroids)"] == delf["index KB"] / centroid["index KB"]
  printed = capsys.readouterr().out
  assert "| centroids (ours) |" in printed and "| DELF-style (trained attention) |" in printed
  assert (out / "compare.md").read_text() in printed
  with Image.open(out / "compare.png") as chart:
    assert chart.format == "PNG" and chart.size[0] > chart.size[1] > 200
