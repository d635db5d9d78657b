"""The service against photos built to cost their decoder (issue 33, findings 1 and 5), over
the real socket: the progressive-JPEG scan bomb is refused before it is decoded, so a good
request sent while bombs hold every decode worker is answered as fast as on an idle
server; formats outside the allowlist are refused by their first bytes, whatever the
Content-Type says."""

import contextlib
import http.client
import io
import json
import statistics
import time

import pytest
from PIL import Image

from tests.helpers import mini_photos
from tests.hostile_images import OTHER_FORMATS, other_format, scan_bomb
from tests.serve.conftest import SERVE_CONFIG

# `server` (the running service) is tests/serve/conftest.py's.


def undefended_decode_s(bomb: bytes) -> float:
  """Seconds Pillow takes to decode `bomb` as the service did before the guard: drafted
  to the network's 256 (the coefficients stay full size), every scan decoded."""
  start = time.perf_counter()
  image = Image.open(io.BytesIO(bomb))
  image.draft("RGB", (256, 256))
  image.load()
  return time.perf_counter() - start


def send_jpeg(url: str, data: bytes) -> http.client.HTTPConnection:
  """Sends a `/v1/recognize` request, body and all, without waiting for the answer: once
  this returns the service has the whole photo (on loopback) and can start decoding it."""
  host, port = url.removeprefix("http://").split(":")
  connection = http.client.HTTPConnection(host, int(port), timeout=120)
  connection.request("POST", "/v1/recognize", body=data, headers={"content-type": "image/jpeg"})
  return connection


def answer(connection: http.client.HTTPConnection) -> tuple[int, dict]:
  with contextlib.closing(connection):
    response = connection.getresponse()
    return response.status, json.loads(response.read())


def post_jpeg(url: str, data: bytes) -> tuple[tuple[int, dict], float]:
  """(status, JSON answer) and the seconds from the first byte sent to the answer read."""
  start = time.perf_counter()
  result = answer(send_jpeg(url, data))
  return result, time.perf_counter() - start


def test_scan_bombs_do_not_delay_good_requests(server, landmarks_mini):
  url, _ = server
  good = mini_photos(landmarks_mini, 1)[0].read_bytes()
  bomb = scan_bomb(1024, 12000)  # 0.4 MB; 12,000 scans, each a pass over 1 Mpx
  assert len(bomb) < SERVE_CONFIG.max_bytes
  # The references, measured here: one bomb's decode as it cost before the guard, and a
  # good request's latency on the idle server (its median of 5, after one warm-up).
  undefended = undefended_decode_s(bomb)
  post_jpeg(url, good)
  idle = statistics.median(post_jpeg(url, good)[1] for _ in range(5))
  assert SERVE_CONFIG.decode_workers == 2  # two bombs hold every decode worker
  latencies = []
  for _ in range(3):  # up to 3 rounds: a busy 2-core machine may delay any one request
    bombs = [send_jpeg(url, bomb) for _ in range(2)]  # both sent whole before the good one
    time.sleep(0.05)
    (status, body), latency = post_jpeg(url, good)
    assert status == 200, body
    for status, body in map(answer, bombs):
      assert status == 413 and body["error"] == "image_too_costly", body
      assert "more than 64 scans" in body["message"]
    latencies.append(latency)
    if latency <= 4 * idle and latency < undefended / 4:
      break
  # Before the guard the good photo waited for a bomb's whole decode (~`undefended`).
  best = min(latencies)
  assert best <= 4 * idle and best < undefended / 4, (latencies, idle, undefended)


@pytest.mark.parametrize("fmt, mode", OTHER_FORMATS)
def test_other_formats_are_refused_by_their_first_bytes_whatever_the_content_type(
  server, fmt, mode
):
  url, _ = server
  data = other_format(fmt, mode)
  if data is None:
    pytest.skip(f"this Pillow cannot write {fmt}")
  Image.open(io.BytesIO(data)).load()  # the reference: Pillow decodes it
  (status, body), _ = post_jpeg(url, data)  # sent as image/jpeg
  assert status == 415, body
  assert body["error"] == "unsupported_image_format"
  assert body["message"].startswith(f"body: {fmt} images are not accepted")
  assert body["message"].endswith("accepted: JPEG, PNG, WEBP")
