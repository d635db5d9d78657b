"""A burst of maximum-size uploads against `landmark-jax serve` in its own process, while
valid requests keep coming: the valid ones are answered, the over-budget ones refused with
JSON, and the server's memory stays within the decode budget and comes back afterwards."""

import concurrent.futures
import os
import subprocess
import sys
import threading
import time

import httpx
import pytest
from PIL import Image

from landmark_jax.data.image_guard import decode_cost
from tests.helpers import encode, mini_photos
from tests.serve.conftest import free_port, wait_until_healthy

DECODE_WORKERS = 2
MAX_DECODE_BYTES = 128 * 2**20  # the service's default


def _rss_bytes(pid: int) -> int:
  with open(f"/proc/{pid}/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) * 1024
  raise RuntimeError("no VmRSS")


class _MemorySampler(threading.Thread):
  def __init__(self, pid: int):
    super().__init__(daemon=True)
    self.pid, self.samples, self.stop = pid, [], threading.Event()

  def run(self):
    while not self.stop.is_set():
      self.samples.append(_rss_bytes(self.pid))
      time.sleep(0.02)


def widest_png_within_budget(height: int, crop: int) -> int:
  """The widest RGB PNG of `height` rows whose decode (and resample to `crop`) the service
  counts within MAX_DECODE_BYTES (`data.image_guard.decode_cost`)."""
  low, high = 1, 2**16
  while low < high:
    width = (low + high + 1) // 2
    cost = decode_cost("RGB", (width, height), format="PNG", resample_to=crop)
    low, high = (width, high) if cost <= MAX_DECODE_BYTES else (low, width - 1)
  return low


def test_burst_of_maximum_size_pngs_keeps_memory_bounded(
  tiny_trained, trained, index_dir, landmarks_mini, tmp_path
):
  if not os.path.exists("/proc/self/status"):
    pytest.skip("reads the server's memory from /proc (Linux)")
  port = free_port()
  log = open(tmp_path / "server.log", "w")
  server = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "landmark_jax.cli",
      "serve",
      "--checkpoint",
      str(tiny_trained[0]),
      "--index",
      str(index_dir / "index"),
      "--port",
      str(port),
      "--decode-workers",
      str(DECODE_WORKERS),
      "--max-decode-mib",
      str(MAX_DECODE_BYTES // 2**20),
    ],
    stdout=log,
    stderr=subprocess.STDOUT,
  )
  url = f"http://127.0.0.1:{port}"
  try:
    wait_until_healthy(url, server, tmp_path / "server.log")

    # Exactly the decode budget (~33 Mpx of RGB), and one column more; solid colour: ~130
    # KB on the wire.
    side = 4096
    width = widest_png_within_budget(side, trained.config.pipeline.image.crop_size)
    at_budget = encode(Image.new("RGB", (width, side), (40, 90, 140)), "PNG")
    over_budget = encode(Image.new("RGB", (width + 1, side), (40, 90, 140)), "PNG")
    valid = [p.read_bytes() for p in mini_photos(landmarks_mini, 4)]
    baseline = _rss_bytes(server.pid)
    sampler = _MemorySampler(server.pid)
    sampler.start()
    burst_done = threading.Event()

    def upload(data):
      with httpx.Client(base_url=url, timeout=300) as client:
        return client.post("/v1/recognize", content=data, headers={"content-type": "image/png"})

    def valid_requests():
      answers = []
      with httpx.Client(base_url=url, timeout=300) as client:
        while not burst_done.is_set() or len(answers) < 4:
          response = client.post(
            "/v1/recognize",
            content=valid[len(answers) % len(valid)],
            headers={"content-type": "image/jpeg"},
          )
          answers.append(response.status_code)
      return answers

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(18) as pool:
      steady = pool.submit(valid_requests)
      uploads = [pool.submit(upload, data) for data in [at_budget] * 8 + [over_budget] * 8]
      responses = [u.result() for u in uploads]
      burst_done.set()
      valid_statuses = steady.result()
    burst_s = time.monotonic() - start
    time.sleep(1.0)
    sampler.stop.set()
    sampler.join()
    after = _rss_bytes(server.pid)
    peak = max(sampler.samples)

    assert [r.status_code for r in responses[:8]] == [200] * 8, [r.text for r in responses[:8]]
    for response in responses[8:]:
      assert response.status_code == 413, response.text
      assert response.headers["content-type"] == "application/json"
      assert response.json()["error"] == "image_too_large"
    assert valid_statuses and set(valid_statuses) == {200}
    mb = 2**20
    print(
      f"\nburst: 8 PNGs of {width}×{side} decoded + 8 over budget refused, "
      f"{len(valid_statuses)} valid requests answered, {burst_s:.1f} s; server RSS "
      f"before {baseline / mb:.0f} MB, peak {peak / mb:.0f} MB (+{(peak - baseline) / mb:.0f}), "
      f"1 s after {after / mb:.0f} MB (+{(after - baseline) / mb:.0f})"
    )
    budget = DECODE_WORKERS * MAX_DECODE_BYTES
    # Eight decodes at once would take 4× this; the budget lets two run.
    assert peak - baseline < 1.5 * budget, (peak - baseline) / mb
    assert after - baseline < 0.25 * budget, (after - baseline) / mb  # handed back
  finally:
    server.terminate()
    server.wait(timeout=60)
    log.close()
