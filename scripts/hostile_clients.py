"""Slow uploads and slowloris against `landmark-jax serve` at `ulimit -n 1024` (issue 33's
full-scale check; the suite runs it small: tests/serve/test_slow_uploads.py and
test_connections.py).

    .venv/bin/python scripts/hostile_clients.py --checkpoint W/train --index W/index

The server runs from `--source` (default: this checkout) in its own process, its file limit
at 1024. Good clients post a 640×480 JPEG to /v1/recognize, first alone (the idle
reference), then while `--uploads` clients each send a body but its last KiB and then one
byte every `--drip-s`, and `--slowloris` connections each send a request head one line every
10 s. It prints the good requests' p50/p99 and statuses, what the attackers got, the
server's peak and after RSS and its CPU time. "Before" (no guards): run the same against
the code before them, e.g. `git archive 44ece44 | tar -x -C /tmp/before` and
`--source /tmp/before`.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import pathlib
import resource
import select
import socket
import statistics
import subprocess
import sys
import threading
import time

import numpy as np
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]


def jpeg() -> bytes:
  rng = np.random.default_rng(0)
  pixels = np.clip(
    np.linspace(0, 255, 640)[None, :, None] + rng.normal(0, 20, (480, 640, 3)), 0, 255
  )
  out = io.BytesIO()
  Image.fromarray(pixels.astype(np.uint8)).save(out, "JPEG", quality=90)
  return out.getvalue()


def post(body: bytes, content_length: int | None = None) -> bytes:
  length = len(body) if content_length is None else content_length
  return (
    b"POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\n"
    + f"Content-Length: {length}\r\nConnection: close\r\n\r\n".encode()
    + body
  )


def exchange(port: int, raw: bytes, timeout_s: float) -> tuple[int | None, float]:
  start = time.perf_counter()
  answer = b""
  try:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
      sock.sendall(raw)
      while chunk := sock.recv(65536):
        answer += chunk
  except OSError:
    pass
  try:
    return int(answer.split(b" ", 2)[1]), time.perf_counter() - start
  except (IndexError, ValueError):
    return None, time.perf_counter() - start


def proc_figures(pid: int) -> dict:
  status = pathlib.Path(f"/proc/{pid}/status").read_text()
  fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
  stat = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
  tick = os.sysconf("SC_CLK_TCK")
  return {
    "rss_mb": int(fields["VmRSS"].split()[0]) / 1024,
    "hwm_mb": int(fields["VmHWM"].split()[0]) / 1024,
    "cpu_s": (int(stat[11]) + int(stat[12])) / tick,
  }


class SlowUploads:
  """Each client, once: a body of `size` but its last KiB, then a byte every `drip_s`."""

  def __init__(self, port: int, n: int, size: int, drip_s: float):
    self.port, self.size, self.drip_s = port, size, drip_s
    self.stop = threading.Event()
    self.statuses: list = []
    self.threads = [threading.Thread(target=self._one, daemon=True) for _ in range(n)]
    for thread in self.threads:
      thread.start()

  def _one(self) -> None:
    status = None
    try:
      with socket.create_connection(("127.0.0.1", self.port), timeout=60) as sock:
        sock.sendall(post(b"\0" * (self.size - 1024), self.size))
        while not self.stop.is_set():
          readable, _, _ = select.select([sock], [], [], self.drip_s)
          if readable:
            answer = sock.recv(4096)
            status = int(answer.split(b" ", 2)[1]) if answer else "closed"
            break
          sock.send(b"\0")
    except (OSError, ValueError, IndexError) as e:
      status = type(e).__name__
    self.statuses.append(status)

  def close(self) -> None:
    self.stop.set()
    for thread in self.threads:
      thread.join()


class Slowloris:
  def __init__(self, port: int, n: int, every_s: float):
    self.sockets, self.failed = [], 0
    for _ in range(n):
      try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=2)
        sock.setblocking(False)
        sock.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        self.sockets.append(sock)
      except OSError:
        self.failed += 1
    self.closed_by_server = 0
    self.stop = threading.Event()
    self.thread = threading.Thread(target=self._drip, args=(every_s,), daemon=True)
    self.thread.start()

  def _drip(self, every_s: float) -> None:
    while not self.stop.wait(every_s):
      for sock in list(self.sockets):
        try:
          sock.send(b"X-Slow: 1\r\n")
        except OSError:
          self.sockets.remove(sock)
          self.closed_by_server += 1

  def close(self) -> None:
    self.stop.set()
    self.thread.join()
    for sock in self.sockets:
      sock.close()


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--checkpoint", required=True)
  parser.add_argument("--index", required=True)
  parser.add_argument("--source", default=str(ROOT), help="the checkout whose server runs")
  parser.add_argument("--uploads", type=int, default=100)
  parser.add_argument("--upload-mib", type=int, default=20)
  parser.add_argument("--drip-s", type=float, default=20.0)
  parser.add_argument("--slowloris", type=int, default=1100)
  parser.add_argument("--good", type=int, default=40)
  parser.add_argument(
    "--seconds", type=float, default=30.0, help="attack time before the good requests"
  )
  parser.add_argument("--port", type=int, default=8765)
  args = parser.parse_args()
  _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
  resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the clients need ~1,300

  def limit_files():
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))

  log = open("/tmp/hostile_clients_server.log", "w")
  env = {**os.environ, "PYTHONPATH": args.source}
  server = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "landmark_jax.cli",
      "serve",
      "--checkpoint",
      args.checkpoint,
      "--index",
      args.index,
      "--port",
      str(args.port),
      "--no-compilation-cache",
    ],
    cwd=args.source,
    env=env,
    stdout=log,
    stderr=subprocess.STDOUT,
    preexec_fn=limit_files,
  )
  try:
    get = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    deadline = time.monotonic() + 600
    while exchange(args.port, get, 2)[0] != 200:
      assert server.poll() is None and time.monotonic() < deadline, "server did not start"
      time.sleep(1)
    good = post(jpeg())
    for _ in range(3):
      exchange(args.port, good, 30)
    idle = [exchange(args.port, good, 30) for _ in range(20)]
    idle_s = [s for _, s in idle]
    before = proc_figures(server.pid)
    start = time.monotonic()
    uploads = SlowUploads(args.port, args.uploads, args.upload_mib * 2**20, args.drip_s)
    loris = Slowloris(args.port, args.slowloris, 10.0)
    time.sleep(max(0.0, args.seconds - (time.monotonic() - start)))
    answers = []
    lock = threading.Lock()

    def client(n):
      for _ in range(n):
        result = exchange(args.port, good, 60)
        with lock:
          answers.append(result)

    clients = [threading.Thread(target=client, args=(args.good // 4,)) for _ in range(4)]
    for c in clients:
      c.start()
    for c in clients:
      c.join()
    during = proc_figures(server.pid)
    uploads.close()
    loris.close()
    time.sleep(5)
    after = proc_figures(server.pid)
  finally:
    server.terminate()
    server.wait(60)
  latencies = sorted(s for status, s in answers if status == 200)
  statuses = collections.Counter(status for status, _ in answers)
  print(
    f"source {args.source}; {args.uploads} slow uploads of {args.upload_mib} MiB "
    f"(a byte every {args.drip_s:g} s after all but 1 KiB), {args.slowloris} slowloris "
    f"({loris.failed} could not connect, {loris.closed_by_server} closed by the server)"
  )
  print(f"idle good requests: p50 {1000 * statistics.median(idle_s):.0f} ms")
  if latencies:
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    print(
      f"good requests under attack: {statuses[200]}/{len(answers)} answered 200, "
      f"p50 {1000 * statistics.median(latencies):.0f} ms, p99 {1000 * p99:.0f} ms"
    )
  print(f"good request statuses: {dict(statuses)}; seconds: {[round(s, 2) for _, s in answers]}")
  print(f"slow uploads got: {dict(collections.Counter(uploads.statuses))}")
  print(
    f"server RSS: idle {before['rss_mb']:.0f} MB, peak {during['hwm_mb']:.0f} MB, "
    f"5 s after {after['rss_mb']:.0f} MB; CPU during the attack "
    f"{during['cpu_s'] - before['cpu_s']:.1f} s in {time.monotonic() - start:.0f} s"
  )
  errors = [
    line for line in open("/tmp/hostile_clients_server.log") if "Too many open files" in line
  ]
  print(f"'Too many open files' lines in the server log: {len(errors)}")


if __name__ == "__main__":
  main()
