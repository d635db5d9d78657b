"""Start-up of `landmark-jax serve` and `landmark-jax recognize`, with a cold and a warm
compilation cache, against no cache at all (docs/benchmarks.md, "Start-up of `serve` and
`recognize`").

    python scripts/startup_times.py --checkpoint workdir/demo/train --index workdir/demo/index \
        [--photo PHOTO] [--repeats 3] [--max-batch 16]

`serve`: seconds from the command to the first 200 of /healthz (the service answers only
after its warm-up, which compiles every batch size); `recognize`: the whole command on one
photo. Each "cold" run gets an empty cache folder, each "warm" run the folder a cold run
filled. Every run is a new process, as a restarted service is.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

COMMAND = [sys.executable, "-m", "landmark_jax.cli"]


def _free_port() -> int:
  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    return probe.getsockname()[1]


def serve_seconds(args, cache: list[str]) -> float:
  port = _free_port()
  start = time.perf_counter()
  server = subprocess.Popen(
    COMMAND
    + [
      "serve",
      "--checkpoint",
      args.checkpoint,
      "--index",
      args.index,
      "--port",
      str(port),
      "--max-batch",
      str(args.max_batch),
    ]
    + cache,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  try:
    while True:
      if server.poll() is not None:
        raise SystemExit(f"serve exited with status {server.returncode}")
      try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as reply:
          if reply.status == 200:
            return time.perf_counter() - start
      except OSError:
        time.sleep(0.05)
  finally:
    server.terminate()
    server.wait()


def recognize_seconds(args, cache: list[str]) -> float:
  start = time.perf_counter()
  subprocess.run(
    COMMAND
    + ["recognize", "--checkpoint", args.checkpoint, "--index", args.index, args.photo]
    + cache,
    check=True,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  return time.perf_counter() - start


def measure(run, args) -> dict[str, float]:
  times = {"no cache": [], "cold cache": [], "warm cache": []}
  for _ in range(args.repeats):  # in turns, so that drift touches all three alike
    times["no cache"].append(run(args, ["--no-compilation-cache"]))
    folder = tempfile.mkdtemp(prefix="landmark-jax-startup-")
    try:
      times["cold cache"].append(run(args, ["--compilation-cache", folder]))
      times["warm cache"].append(run(args, ["--compilation-cache", folder]))
    finally:
      shutil.rmtree(folder)
  return {case: statistics.median(samples) for case, samples in times.items()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--checkpoint", required=True)
  parser.add_argument("--index", required=True)
  parser.add_argument("--photo", help="the photo `recognize` answers (default: skip recognize)")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--max-batch", type=int, default=16, help="serve's --max-batch")
  args = parser.parse_args()
  rows = {"serve (to the first /healthz)": measure(serve_seconds, args)}
  if args.photo:
    rows["recognize (one photo)"] = measure(recognize_seconds, args)
  print(
    "| command | no cache s | cold cache s | warm cache s | warm vs no cache |\n"
    "|---|---|---|---|---|"
  )
  for name, t in rows.items():
    print(
      f"| {name} | {t['no cache']:.2f} | {t['cold cache']:.2f} | {t['warm cache']:.2f} | "
      f"{t['no cache'] / t['warm cache']:.2f}× |"
    )


if __name__ == "__main__":
  main()
