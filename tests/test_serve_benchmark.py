"""`landmark-jax benchmark serve` with a tiny backbone, 2 clients and 2 seconds: it runs end
to end (the real app under uvicorn, the clients in their own process) and its figures agree
with one another. No test asserts a time: only counts and the arithmetic between figures."""

import json
import math
import subprocess
import sys

import pytest

from landmark_jax.benchmarks.serve_speed import ServeBenchSettings, summarize

CLIENTS, MAX_BATCH = 2, 8


@pytest.mark.slow  # starts a server and a client process, compiles a model
def test_benchmark_serve_end_to_end(tmp_path):
  out = tmp_path / "serve.json"
  # A process of its own: the CLI sets XLA's inference flags before JAX starts.
  result = subprocess.run(
    [sys.executable, "-m", "landmark_jax", "benchmark", "serve"]
    + ["--backbone", "resnet_tiny", "--image-size", "64", "--clients", str(CLIENTS)]
    + ["--seconds", "2", "--warmup-seconds", "1", "--repeats", "2", "--json", str(out)],
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode == 0, result.stderr
  assert "| service / raw |" in result.stdout and "batching wait" in result.stdout
  figures = json.loads(out.read_text())

  answered = figures["requests_answered"]
  assert answered > 0 and figures["requests_failed"] == 0
  assert figures["requests_total"] >= answered
  assert figures["service_photos_per_s"] * figures["window_s"] == pytest.approx(answered)
  assert figures["ratio"] == pytest.approx(
    figures["service_photos_per_s"] / figures["raw_forward_photos_per_s"]
  )
  raw_row, service_row = figures["rows"][:2]
  assert raw_row["photos/s"] == figures["raw_forward_photos_per_s"]
  assert service_row["vs raw"] == pytest.approx(figures["ratio"])
  assert figures["decode_share_of_budget"] == pytest.approx(
    figures["raw_forward_photos_per_s"] / figures["decode_photos_per_s"]
  )
  # Batches and answers are counted on both sides of the window's edges: at each edge at
  # most one request per client is in flight.
  assert abs(figures["photos_in_batches"] - answered) <= 2 * CLIENTS
  assert 1 <= figures["mean_batch_size"] <= min(CLIENTS, MAX_BATCH)
  gap = figures["gap"]
  assert gap["device_busy_share"] * gap["photos_per_busy_s_vs_raw"] == pytest.approx(
    figures["ratio"]
  )
  assert 0 < gap["device_busy_share"] <= 1
  assert sum(figures["batch_sizes"].values()) == figures["batches"]
  phases = gap["phases_ms_per_request"]
  latency = phases.pop("latency")
  assert sum(phases.values()) == pytest.approx(latency, rel=1e-6)
  assert figures["latency_p50_ms"] <= figures["latency_p99_ms"]
  assert set(figures["cpu"]["ms_per_photo"]) >= {
    "decode threads",
    "XLA threads (forward)",
    "event loop (HTTP, JSON, batching)",
    "clients (their process)",
  }


def test_summarize_counts_the_window_only():
  """Hand-made measurements: 4 answers in a 2 s window (one before it, one failed), two
  device calls of 2 photos in it, each 0.5 s long; the raw forward takes 0.1 s per 8 photos."""

  def answer(start, end, status=200):
    timing = {"decode": 10.0, "recognize": 600.0, "total": 610.0} if status == 200 else None
    return {"start": start, "end": end, "status": status, "timing_ms": timing, "batch_size": 2}

  records = [answer(9.0, 9.9)] + [answer(t - 0.7, t) for t in (10.6, 10.6, 11.2, 11.2)]
  records.append(answer(11.0, 11.5, status=503))
  raw = {"host_s": 0.1, "transfer_s": 0.01, "cpu_s": 0.2, "cores": 2.0}
  figures = summarize(
    ServeBenchSettings(clients=2, max_batch=8),
    load={"records": records, "cpu_s": 0.6, "wall_s": 3.0},
    window=(10.0, 12.0),
    batches=[(10.0, 10.5, 2), (10.6, 11.1, 2)],
    raw=[raw, raw],
    decode_pps=160.0,
    decode_pps_one=80.0,
    decode_workers=2,
    cpu={"decode threads": 0.04, "XLA threads (forward)": 1.2},
    process_cpu=1.5,
  )
  assert figures["requests_answered"] == 4 and figures["requests_failed"] == 1
  assert figures["service_photos_per_s"] == 2.0 and figures["raw_forward_photos_per_s"] == 80.0
  assert figures["ratio"] == 2.0 / 80.0
  assert figures["mean_batch_size"] == 2.0 and figures["decode_share_of_budget"] == 0.5
  assert figures["gap"]["device_busy_share"] == pytest.approx(0.5)
  assert figures["batch_sizes"]["2"] == 2
  assert figures["batcher_idle_ms_between_calls"] == pytest.approx(100.0)
  assert figures["gap"]["full_batch_slowdown_vs_raw"] is None  # no batch of 8
  phases = figures["gap"]["phases_ms_per_request"]
  assert phases["latency"] == pytest.approx(700.0)
  assert phases["its batch's device call (embed_photos)"] == pytest.approx(500.0)
  assert phases["batching wait (queue + gather), search, decision"] == pytest.approx(100.0)
  assert phases["HTTP (client, loopback, request/response)"] == pytest.approx(90.0)
  assert figures["cpu"]["ms_per_photo"]["decode threads"] == pytest.approx(10.0)
  assert figures["cpu"]["ms_per_photo"]["clients (their process)"] == pytest.approx(100.0)
  assert math.isclose(figures["raw"]["host_to_device_ms_per_batch"], 10.0)
