"""A trivial app behind the service's connection and body guards, for the hostile-client
tests: `python -m tests.serve.guarded_server --port N [--plain] ...`.

The app has no model (so it starts in half a second): ``GET /healthz`` and ``POST
/upload``, which reads its body as the service reads a raw photo. Guarded, it runs what
`create_app` and `serve_until_drained` run around the routes: `RequestDeadline`, `BodyLimit`
with a shared `BodyBudget`, the service's JSON errors, under `uvicorn_config` (the guarded
protocol). `--plain` is the reference before issue 33: uvicorn's own config, and only the
per-request body limit. The tests measure this process's memory from /proc.

`serving(...)` starts it for a test; with LANDMARK_TEST_PLAIN_SERVER=1 in the environment
every test runs against the plain reference, which is how the tests were seen to fail
before the guards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import resource
import socket
import subprocess
import sys
import time
import types

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from landmark_jax.serve.body import BodyBudget, BodyLimit
from landmark_jax.serve.errors import EXCEPTION_HANDLERS
from landmark_jax.serve.limits import RequestDeadline
from landmark_jax.serve.shutdown import uvicorn_config


async def healthz(request: Request):
  return JSONResponse({"status": "ok"})


async def upload(request: Request):
  try:
    return JSONResponse({"bytes": len(await request.body())})
  except ClientDisconnect:  # an attacker that left: nobody to answer
    return JSONResponse({}, status_code=400)


def build(args) -> uvicorn.Config:
  limits = [
    Middleware(
      BodyLimit,
      limit_for=lambda path: args.max_bytes,
      read_timeout_s=args.read_timeout_s,
      budget=None if args.plain else BodyBudget(args.max_bytes_in_flight),
    )
  ]
  if not args.plain:
    limits.insert(0, Middleware(RequestDeadline, timeout_s=args.request_timeout_s))
  app = Starlette(
    routes=[Route("/healthz", healthz), Route("/upload", upload, methods=["POST"])],
    middleware=limits,
    exception_handlers=EXCEPTION_HANDLERS,
  )
  if args.plain:
    return uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning")
  # ServeConfig's connection fields alone: serve.app would import JAX (5 s) for nothing.
  serve_config = types.SimpleNamespace(
    header_timeout_s=args.header_timeout_s,
    max_connections=args.max_connections,
    keep_alive_s=5.0,
    drain_timeout_s=1.0,
  )
  return uvicorn_config(app, "127.0.0.1", args.port, serve_config, log_level="warning")


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--port", type=int, required=True)
  parser.add_argument("--plain", action="store_true", help="uvicorn's own config: no guards")
  parser.add_argument("--nofile", type=int, help="RLIMIT_NOFILE's soft limit for this process")
  parser.add_argument("--header-timeout-s", type=float, default=10.0)
  parser.add_argument("--max-connections", type=int, default=None)
  parser.add_argument("--request-timeout-s", type=float, default=60.0)
  parser.add_argument("--read-timeout-s", type=float, default=30.0)
  parser.add_argument("--max-bytes", type=int, default=2 * 2**20)
  parser.add_argument("--max-bytes-in-flight", type=int, default=8 * 2**20)
  args = parser.parse_args()
  if args.nofile:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, hard))
  uvicorn.Server(build(args)).run()


# The tests' side.

PLAIN = os.environ.get("LANDMARK_TEST_PLAIN_SERVER") == "1"


@contextlib.contextmanager
def serving(log_path: pathlib.Path, *flags: str):
  """This server in a subprocess on a free port, with `flags`: yields (port, process)."""
  from tests.helpers import free_port

  port = free_port()
  command = [sys.executable, "-m", "tests.serve.guarded_server", "--port", str(port), *flags]
  with open(log_path, "w") as log:
    process = subprocess.Popen(
      command + (["--plain"] if PLAIN else []),
      stdout=log,
      stderr=subprocess.STDOUT,
      cwd=pathlib.Path(__file__).parents[2],
    )
  try:
    deadline = time.monotonic() + 60
    while request(port, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n", 2)[0] != 200:
      assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
      time.sleep(0.1)
    yield port, process
  finally:
    process.kill()
    process.wait()


def request(port: int, raw: bytes, timeout_s: float) -> tuple[int | None, bytes, float]:
  """`raw` sent on a new connection, the answer read to its end: (status, whole answer,
  seconds); status None when no answer came (refused, reset, timed out)."""
  start = time.perf_counter()
  answer = b""
  try:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
      sock.settimeout(max(0.01, timeout_s - (time.perf_counter() - start)))
      sock.sendall(raw)
      while chunk := sock.recv(65536):
        answer += chunk
        if _complete(answer):
          break
  except OSError:
    pass
  seconds = time.perf_counter() - start
  try:
    return int(answer.split(b" ", 2)[1]), answer, seconds
  except (IndexError, ValueError):
    return None, answer, seconds


def _complete(answer: bytes) -> bool:
  head, sep, body = answer.partition(b"\r\n\r\n")
  if not sep:
    return False
  for line in head.lower().split(b"\r\n"):
    if line.startswith(b"content-length:"):
      return len(body) >= int(line.split(b":")[1])
  return False


def memory_kib(pid: int) -> dict[str, int]:
  """VmRSS and VmHWM (the peak RSS) of a process, in KiB."""
  fields = {}
  for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
    name, _, value = line.partition(":")
    if name in ("VmRSS", "VmHWM"):
      fields[name] = int(value.split()[0])
  return fields


if __name__ == "__main__":
  main()
