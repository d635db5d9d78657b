"""The running service, shared by the API tests and the browser test."""

import contextlib
import pathlib
import threading
import time

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from landmark_jax.index import CentroidIndex
from landmark_jax.recognize import Recognizer
from landmark_jax.serve.app import create_app
from landmark_jax.serve.config import ServeConfig
from landmark_jax.serve.shutdown import uvicorn_config
from tests.helpers import free_port  # noqa: F401 (the serve tests import it from here)


def scrape(client: httpx.Client) -> dict:
  """`GET /metrics` parsed: {(sample name, sorted labels): value}."""
  response = client.get("/metrics")
  assert response.status_code == 200
  assert response.headers["content-type"].startswith("text/plain")
  return {
    (sample.name, tuple(sorted(sample.labels.items()))): sample.value
    for family in text_string_to_metric_families(response.text)
    for sample in family.samples
  }


def metric_delta(before: dict, after: dict, name: str, **labels) -> float:
  """How much a sample of two scrapes grew."""
  key = (name, tuple(sorted(labels.items())))
  return after.get(key, 0.0) - before.get(key, 0.0)


@contextlib.contextmanager
def app_in_thread(app, **config):
  """`app` under a real uvicorn on a free loopback port, in a thread: yields its base URL
  once it listens; stops it on exit. The service's own settings (`uvicorn_config`: the
  guarded protocol, its service's limits); `config`: more `uvicorn.Config` settings."""
  port = free_port()
  server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, **config))
  thread = threading.Thread(target=server.run, daemon=True)
  thread.start()
  try:
    deadline = time.monotonic() + 120
    while not server.started and time.monotonic() < deadline:
      time.sleep(0.05)
    assert server.started, "server did not start"
    yield f"http://127.0.0.1:{port}"
  finally:
    server.should_exit = True
    thread.join(timeout=30)


def wait_until_healthy(url: str, server, log_path, timeout_s: float = 300) -> None:
  """Until `landmark-jax serve` (the process `server`, logging to `log_path`) answers
  /healthz with 200; its log in the failure when it dies or never gets there."""
  deadline = time.monotonic() + timeout_s
  while time.monotonic() < deadline:
    try:
      if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
        return
    except httpx.TransportError:
      assert server.poll() is None, pathlib.Path(log_path).read_text()
    time.sleep(0.5)
  raise AssertionError("server not ready: " + pathlib.Path(log_path).read_text())


# Small limits, so that tests reach each of them quickly.
SERVE_CONFIG = ServeConfig(
  max_batch=8,
  max_wait_ms=20,
  max_bytes=2_000_000,
  max_batch_bytes=4_000_000,
  max_pixels=20_000_000,
  max_decode_bytes=32 * 2**20,  # 4 Mpx at 8 bytes a pixel
  decode_workers=2,
  max_batch_request=8,
  read_timeout_s=2.0,
)


def served_recognizer(trained, index_dir) -> Recognizer:
  """The session model and index as the test services answer with them (η 0.9)."""
  return Recognizer(
    trained,
    CentroidIndex.load(index_dir / "index"),
    eta=0.9,
    names={0: "astronaut"},
    batch_size=SERVE_CONFIG.max_batch,
  )


@pytest.fixture(scope="module")
def server(trained, index_dir):
  """The real app under uvicorn on a free loopback port: (base URL, its Recognizer)."""
  recognizer = served_recognizer(trained, index_dir)
  with app_in_thread(create_app(recognizer, SERVE_CONFIG), log_level="warning") as url:
    yield url, recognizer
