"""The service under careless and hostile input: body limits read as a stream, stalled
uploads, the decode budget, JSON errors everywhere, readiness. Each over the real socket."""

import asyncio
import http.client
import json
import socket
import threading
import time

import httpx
import pytest
from PIL import Image

from landmark_jax.serve.decoding import DecodeBudget
from tests.helpers import encode, gradient_image, mini_photos
from tests.serve.conftest import SERVE_CONFIG

# `server` (the running service) is tests/serve/conftest.py's.


def _raw_request(
  url: str, head: bytes, body_chunks=(), pause_s: float = 0.0
) -> tuple[int, dict, int]:
  """Sends `head` then `body_chunks` over a raw socket until the server answers or closes:
  (status, JSON body, body bytes sent before the answer)."""
  host, port = url.removeprefix("http://").split(":")
  with socket.create_connection((host, int(port)), timeout=30) as sock:
    sock.sendall(head)
    sent = 0
    sock.setblocking(False)
    answer = b""
    for chunk in body_chunks:
      try:
        answer += sock.recv(65536)
      except BlockingIOError:
        pass
      if answer:
        break
      try:
        sock.setblocking(True)
        sock.settimeout(5)
        sock.sendall(chunk)
        sent += len(chunk)
        sock.setblocking(False)
      except (BrokenPipeError, ConnectionResetError, socket.timeout):
        break
    time.sleep(pause_s)
    sock.setblocking(True)
    sock.settimeout(30)
    while b"\r\n\r\n" not in answer or not _complete(answer):
      data = sock.recv(65536)
      if not data:
        break
      answer += data
  head_text, _, body = answer.partition(b"\r\n\r\n")
  return int(head_text.split()[1]), json.loads(body), sent


def _complete(answer: bytes) -> bool:
  head, _, body = answer.partition(b"\r\n\r\n")
  for line in head.split(b"\r\n"):
    if line.lower().startswith(b"content-length:"):
      return len(body) >= int(line.split(b":")[1])
  return False


def test_declared_oversize_body_is_refused_before_it_is_sent(server):
  url, _ = server
  head = (
    b"POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
    b"Content-Length: 200000000\r\n\r\n"
  )
  status, body, sent = _raw_request(url, head)
  assert status == 413 and body["error"] == "body_too_large" and sent == 0
  assert "200,000,000" in body["message"]


def test_a_client_that_sends_its_whole_body_first_still_reads_the_413(server):
  # Python's http.client (under requests) sends the whole body before it reads: the 413
  # comes while it sends, and closing at once answered its bytes with a reset, which it
  # saw instead of the 413 (docs/decisions.md, "Lingering close").
  url, _ = server
  host, port = url.removeprefix("http://").split(":")
  body = b"\0" * 6_000_000  # three times the limit, more than the socket buffers hold
  for _ in range(3):
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
      connection.request("POST", "/v1/recognize", body, {"Content-Type": "image/jpeg"})
      answer = connection.getresponse()
      status, error = answer.status, json.loads(answer.read())["error"]
    finally:
      connection.close()
    assert (status, error) == (413, "body_too_large")


def test_chunked_body_is_cut_at_the_limit(server):
  url, _ = server
  head = (
    b"POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
  )
  chunk = b"%x\r\n" % 65536 + b"\xff" * 65536 + b"\r\n"
  status, body, sent = _raw_request(url, head, [chunk] * 700)  # 46 MB offered
  assert status == 413 and body["error"] == "body_too_large"
  # The server stopped reading at its 2 MB limit; what more went out sat in socket buffers.
  assert sent < 20 * SERVE_CONFIG.max_bytes, sent


def test_stalled_upload_gets_408(server):
  url, _ = server
  head = (
    b"POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
    b"Content-Length: 5000\r\n\r\n"
  )
  start = time.monotonic()
  status, body, _ = _raw_request(url, head, [b"\xff\xd8" * 10])
  assert status == 408 and body["error"] == "body_timeout"
  assert time.monotonic() - start < 30  # answered, not held open until our socket timeout


def test_framework_errors_are_json_with_codes(server):
  url, _ = server
  photo = encode(gradient_image(120, 90))
  with httpx.Client(base_url=url, timeout=60) as client:
    two = client.post(
      "/v1/recognize",
      files=[("image", ("a.jpg", photo, "image/jpeg")), ("image", ("b.jpg", photo, "image/jpeg"))],
    )
    many = client.post(
      "/v1/recognize:batch",
      files=[
        ("images", (f"{i}.jpg", b"x", "image/jpeg"))
        for i in range(SERVE_CONFIG.max_batch_request + 1)
      ],
    )
    long_name = client.post(
      "/v1/recognize", files={"image": ("n" * 70_000 + ".jpg", photo, "image/jpeg")}
    )
    wrong_method = client.get("/v1/recognize")
    unknown = client.get("/v1/nothing")
  expected = {
    "two": (two, 400, "too_many_files"),
    "many": (many, 413, "too_many_files"),
    "long name": (long_name, None, None),
    "405": (wrong_method, 405, "method_not_allowed"),
    "404": (unknown, 404, "not_found"),
  }
  for what, (response, status, code) in expected.items():
    assert response.headers["content-type"] == "application/json", (what, response.text)
    body = response.json()
    assert set(body) == {"error", "message", "status"} or response.status_code == 200, (what, body)
    if status is not None:
      assert response.status_code == status, (what, response.text)
    if code is not None:
      assert body["error"] == code, (what, body)
  assert "/v1/recognize:batch" in two.json()["message"]
  assert wrong_method.headers["allow"] == "POST"
  assert wrong_method.json()["message"] == "GET is not allowed on /v1/recognize; use POST"


def test_batch_endpoint_takes_and_checks_the_location(server, landmarks_mini):
  url, _ = server
  files = [
    ("images", (p.name, p.read_bytes(), "image/jpeg")) for p in mini_photos(landmarks_mini, 2)
  ]
  with httpx.Client(base_url=url, timeout=60) as client:
    bad = client.post("/v1/recognize:batch", params={"lat": 999, "lon": "abc"}, files=files)
    far = client.post("/v1/recognize:batch", params={"lat": -82.0, "lon": 0.0}, files=files)
  assert bad.status_code == 400 and bad.json()["error"] == "bad_location"
  assert bad.json()["message"] == "lon 'abc' is not a number of decimal degrees"
  results = far.json()["results"]
  assert len(results) == 2
  for result in results:  # nothing near the South Pole: no candidates
    assert result["location"] == {"latitude": -82.0, "longitude": 0.0}
    assert result["candidates"] == [] and result["landmark_id"] is None


def test_decode_budget_refuses_png_from_header_and_decodes_large_jpeg_reduced(server):
  url, _ = server
  # 3000×3000 = 9 Mpx: under max_pixels (20 M); 36 MB decoded, over max_decode_bytes (32 MiB).
  image = Image.new("RGB", (3000, 3000), (90, 120, 150))
  png, jpeg = encode(image, "PNG"), encode(image, "JPEG", quality=80)
  with httpx.Client(base_url=url, timeout=60) as client:
    refused = client.post("/v1/recognize", content=png, headers={"content-type": "image/png"})
    decoded = client.post("/v1/recognize", content=jpeg, headers={"content-type": "image/jpeg"})
  assert refused.status_code == 413 and refused.json()["error"] == "image_too_large"
  assert "3000×3000" in refused.json()["message"]
  assert decoded.status_code == 200, decoded.text  # libjpeg decodes it at 1/8 scale


def test_decode_budget_runs_at_most_workers_at_once():
  running, peak, lock = 0, 0, threading.Lock()

  def decode():
    nonlocal running, peak
    with lock:
      running += 1
      peak = max(peak, running)
    time.sleep(0.05)
    with lock:
      running -= 1
    return threading.current_thread().name

  async def burst():
    budget = DecodeBudget(2)
    names = await asyncio.gather(*(budget.run(decode) for _ in range(8)))
    budget.shutdown()
    return names

  names = asyncio.run(burst())
  assert peak == 2 and len(names) == 8 and all(n.startswith("decode") for n in names)


def test_healthz_is_ready_only_after_a_warm_up_recognition(trained, index_dir):
  from landmark_jax.index import CentroidIndex
  from landmark_jax.recognize import Recognizer
  from landmark_jax.serve.app import create_app

  index = CentroidIndex.load(index_dir / "index")
  app = create_app(Recognizer(trained, index, eta=0.5, batch_size=2), SERVE_CONFIG)

  async def health():  # the ASGI app without its lifespan: nothing warmed up yet
    async with httpx.AsyncClient(
      transport=httpx.ASGITransport(app=app), base_url="http://localhost"
    ) as c:
      return (await c.get("/healthz")).status_code

  assert asyncio.run(health()) == 503
  app.state.service.warm_up()
  assert asyncio.run(health()) == 200
  # An index whose labels do not cover its centroids answers nothing: the warm-up says so.
  broken = CentroidIndex(
    index.centroids, index.labels[:1], index.cluster_sizes, index.config, label_map=index.label_map
  )
  broken_app = create_app(Recognizer(trained, broken, eta=0.5, batch_size=2), SERVE_CONFIG)
  with pytest.raises(IndexError):
    broken_app.state.service.warm_up()
  assert not broken_app.state.service.ready


def test_serve_refuses_to_start_on_an_inconsistent_index(tiny_trained, index_dir, tmp_path, capsys):
  from landmark_jax.cli import main
  from landmark_jax.index import CentroidIndex
  from tests.serve.conftest import free_port

  index = CentroidIndex.load(index_dir / "index")
  # Saved by the library, so its checksums are valid: only the parts disagree.
  CentroidIndex(
    index.centroids,
    index.labels[:-1],
    index.cluster_sizes,
    index.config,
    label_map=index.label_map,
    metadata=index.metadata,
  ).save(tmp_path / "bad")
  status = main(
    [
      "serve",
      "--checkpoint",
      str(tiny_trained[0]),
      "--index",
      str(tmp_path / "bad"),
      "--port",
      str(free_port()),
    ]
  )
  err = capsys.readouterr().err.strip()
  assert status == 2 and len(err.splitlines()) == 1 and "labels.npy" in err, err


def test_info_states_the_connection_cap_and_the_memory_bound(server):
  """The service runs the guarded protocol and the shared body budget (issue 33): /v1/info
  names the cap in force and the bound, and /metrics counts cut uploads from the start."""
  from landmark_jax.serve.memory import memory_bound
  from landmark_jax.serve.protocol import default_max_connections

  url, _ = server
  limits = httpx.get(f"{url}/v1/info", timeout=30).json()["limits"]
  cap = default_max_connections()  # SERVE_CONFIG leaves it to the file limit
  assert limits["max_connections"] == cap
  assert limits["memory_bound_bytes"] == memory_bound(
    SERVE_CONFIG.max_bytes_in_flight, SERVE_CONFIG.decode_workers, SERVE_CONFIG.decode_budget, cap
  )
  assert limits["request_timeout_s"] == SERVE_CONFIG.request_timeout_s
  metrics = httpx.get(f"{url}/metrics", timeout=30).text
  assert 'landmark_uploads_cut_total{reason="stalled"} 0.0' in metrics
