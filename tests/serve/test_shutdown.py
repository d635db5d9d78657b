"""SIGTERM's drain: requests in flight finish, new ones get 503, and the drain is bounded.

The first two tests run `DrainingServer` and `DrainGate` in a thread around a minimal app
whose one route takes as long as asked (no model: fast); signals can only reach the main
thread, so they start the drain as SIGTERM does (`begin_drain`). The last one sends a real
SIGTERM (and SIGHUP) to `landmark-jax serve` in its own process.
"""

import asyncio
import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from landmark_jax.index import CentroidIndex
from landmark_jax.serve.reload import read_version
from landmark_jax.serve.shutdown import Drain, DrainGate, DrainingServer
from tests.helpers import mini_photos
from tests.serve.conftest import free_port, wait_until_healthy


def _start(drain_timeout_s: float):
  async def slow(request):
    await asyncio.sleep(float(request.query_params["s"]))
    return JSONResponse({"slept": float(request.query_params["s"])})

  drain = Drain(drain_timeout_s)
  app = Starlette(routes=[Route("/slow", slow)], middleware=[Middleware(DrainGate, drain=drain)])
  port = free_port()
  server = DrainingServer(
    uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"), drain
  )
  thread = threading.Thread(target=server.run, daemon=True)
  thread.start()
  deadline = time.monotonic() + 30
  while not server.started and time.monotonic() < deadline:
    time.sleep(0.02)
  assert server.started
  return f"http://127.0.0.1:{port}", server, drain, thread


def _wait_in_flight(drain: Drain, n: int) -> None:
  deadline = time.monotonic() + 10
  while drain.in_flight < n and time.monotonic() < deadline:
    time.sleep(0.01)
  assert drain.in_flight == n


def test_drain_finishes_requests_in_flight_and_refuses_new_ones():
  url, server, drain, thread = _start(drain_timeout_s=20)
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    slow = [pool.submit(httpx.get, f"{url}/slow", params={"s": 1.5}, timeout=30) for _ in range(3)]
    _wait_in_flight(drain, 3)
    start = time.monotonic()
    server.begin_drain()
    refused = httpx.get(f"{url}/slow", params={"s": 0}, timeout=10)
    assert refused.status_code == 503
    assert refused.json()["error"] == "shutting_down"
    assert refused.headers["connection"] == "close"
    assert not any(f.done() for f in slow)  # the 503 came while they were in flight
    assert [f.result().status_code for f in slow] == [200] * 3
  thread.join(timeout=10)
  assert not thread.is_alive()
  assert time.monotonic() - start < 1.5 + 2  # they finished; no wait for the drain bound
  with pytest.raises(httpx.ConnectError):  # gone once drained
    httpx.get(f"{url}/slow", params={"s": 0}, timeout=5)


def test_drain_is_bounded():
  url, server, drain, thread = _start(drain_timeout_s=1.0)
  with concurrent.futures.ThreadPoolExecutor(1) as pool:
    stuck = pool.submit(httpx.get, f"{url}/slow", params={"s": 60}, timeout=30)
    _wait_in_flight(drain, 1)
    start = time.monotonic()
    server.begin_drain()
    thread.join(timeout=10)
    stopped = time.monotonic() - start
    assert not thread.is_alive()
    # The drain bound, then uvicorn's final grace of a second for the connection.
    assert 1.0 <= stopped < 1.0 + 1.0 + 1.5, stopped
    # Cut: uvicorn cancels it and, its answer not begun, sends a 500.
    assert stuck.result().status_code == 500


def _held_request(port: int, photo: bytes) -> socket.socket:
  """A /v1/recognize request whose body is only half sent: in flight until the rest is."""
  sock = socket.create_connection(("127.0.0.1", port), timeout=60)
  sock.sendall(
    b"POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
    + f"Content-Length: {len(photo)}\r\n\r\n".encode()
    + photo[: len(photo) // 2]
  )
  return sock


def _answer(sock: socket.socket) -> tuple[int, bytes]:
  answer = b""
  while True:
    data = sock.recv(65536)
    if not data:
      break
    answer += data
  head, _, body = answer.partition(b"\r\n\r\n")
  return int(head.split()[1]), body


def test_serve_process_reloads_on_sighup_and_drains_on_sigterm(
  tiny_trained, index_dir, landmarks_mini, tmp_path
):
  index = tmp_path / "index"
  CentroidIndex.load(index_dir / "index").save(index)
  port = free_port()
  url = f"http://127.0.0.1:{port}"
  log = open(tmp_path / "server.log", "w")
  drain_timeout_s = 20
  server = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "landmark_jax",
      "serve",
      "--checkpoint",
      str(tiny_trained[0]),
      "--index",
      str(index),
      "--port",
      str(port),
      "--reload-poll-s",
      "0",  # only SIGHUP reloads here
      "--drain-timeout-s",
      str(drain_timeout_s),
      "--decode-workers",
      "1",
      "--max-batch",
      "4",
    ],
    stdout=log,
    stderr=subprocess.STDOUT,
  )
  try:
    wait_until_healthy(url, server, tmp_path / "server.log")

    # SIGHUP: an edit is served only once asked for (the poll is off).
    first = httpx.get(f"{url}/v1/info").json()["index"]
    assert first["version"] == read_version(index).short
    CentroidIndex.load(index).with_metadata(note="edited while serving").save(index)
    edited = read_version(index).short
    time.sleep(1.0)
    assert httpx.get(f"{url}/v1/info").json()["index"]["version"] == first["version"]
    server.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/v1/info").json()["index"]["version"] != edited:
      assert time.monotonic() < deadline, "SIGHUP did not reload the index"
      time.sleep(0.1)
    assert server.poll() is None  # SIGHUP's default action would have ended the process

    # SIGTERM with requests in flight: one held half-sent by this test (so the drain is
    # certainly still on when the probe is sent), and batch requests of many photos.
    photos = [p.read_bytes() for p in mini_photos(landmarks_mini, 16)]
    held = _held_request(port, photos[0])
    files = [("images", (f"{i}.jpg", data, "image/jpeg")) for i, data in enumerate(photos)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
      batches = [
        pool.submit(httpx.post, f"{url}/v1/recognize:batch", files=files, timeout=120)
        for _ in range(4)
      ]
      time.sleep(0.5)  # the held request's headers and the batches reach the server
      server.send_signal(signal.SIGTERM)
      sent_sigterm = time.monotonic()
      time.sleep(0.5)  # the signal is handled on the server's event loop
      probe = httpx.get(f"{url}/healthz", timeout=10)
      assert probe.status_code == 503 and probe.json()["error"] == "shutting_down"
      assert server.poll() is None  # still draining: the held request is not answered yet
      held.sendall(photos[0][len(photos[0]) // 2 :])
      status, body = _answer(held)
      held.close()
      assert status == 200, body
      for batch in batches:
        response = batch.result()
        assert response.status_code == 200
        assert all("candidates" in r for r in response.json()["results"])
    assert server.wait(timeout=drain_timeout_s + 10) == 0
    assert time.monotonic() - sent_sigterm < drain_timeout_s
    with pytest.raises(httpx.ConnectError):
      httpx.get(f"{url}/healthz", timeout=5)
    text = (tmp_path / "server.log").read_text()
    assert "shutting down" in text and "drained in" in text, text
    assert "index reloaded (SIGHUP)" in text, text
  finally:
    if server.poll() is None:
      os.kill(server.pid, signal.SIGKILL)
      server.wait(timeout=30)
    log.close()
