"""The service against the raw forward: how many photos/s `landmark-jax serve` answers under
concurrent clients, as a share of what its model's batched forward does on decoded crops,
and what the difference is made of.

One process holds the real app (`create_app` under uvicorn, in a thread, on a free loopback
port) with a randomly initialised model of the `default` config and a small random index;
the raw forward is timed on that very recognizer's `PhotoEmbedder`, before and after the
load. The clients run in a process of their own (`python -m` this module), so that their
Python does not share the server's GIL; they post the same real JPEGs for a warm-up, then
for the measured window.

The breakdown is measured from outside `landmark_jax.serve`: the recognizer's
`PhotoEmbedder.embed_photos` (one call per batch) is wrapped to time each device call; the
answers carry the server's own decode / recognize / total milliseconds and batch size; the
CPU time of the server's threads is read from /proc by thread (decode threads, the batcher,
the event loop, XLA's threads).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Sequence

import numpy as np

PHOTO_SIZE = (640, 480)  # what a phone app would upload after its own downscale
SAMPLE_IMAGES = (  # scikit-image's colour samples that ship with it (no download)
  "astronaut",
  "coffee",
  "chelsea",
  "rocket",
  "immunohistochemistry",
  "hubble_deep_field",
  "retina",
  "colorwheel",
)
NUM_LANDMARKS = 50  # of the random index (10 centroids each) and the model's classifier


@dataclasses.dataclass(frozen=True)
class ServeBenchSettings:
  seconds: float = 30.0  # the measured window
  warmup_seconds: float = 5.0  # load before the window (allocators, connections, queues)
  clients: int = 16  # concurrent clients, each one request at a time
  max_batch: int = 8  # the service's `--max-batch`, and the raw forward's batch
  max_wait_ms: float = 5.0  # the service's `--max-wait-ms` (its default)
  decode_workers: int | None = None  # the service's `--decode-workers` (None: its default)
  backbone: str = "wide_resnet50_2"
  image_size: int = 224  # the crop; photos are resized to image_size × 256 / 224 first
  repeats: int = 10  # raw forward calls timed, before and after the load each


# The model, the index and the photos -----------------------------------------------------


def random_trained(backbone: str, image_size: int):
  """A `TrainedModel` of the `default` config (float32: the CPU serving precision) with
  random weights: the speed of a trained one, without a checkpoint."""
  import jax
  import jax.numpy as jnp

  from landmark_jax.config import load_config
  from landmark_jax.data.labels import LabelMap
  from landmark_jax.models.landmark_net import model_variables
  from landmark_jax.train.checkpoints import TrainedModel, make_model

  config = load_config(
    "default",
    [
      f"model.backbone={backbone}",
      "model.dtype=float32",
      "model.pretrained=none",
      f"pipeline.image.crop_size={image_size}",
      f"pipeline.image.resize_size={round(image_size * 256 / 224)}",
    ],
  )
  model = make_model(config, NUM_LANDMARKS + 1)  # + the non-landmark class
  init = jnp.zeros((1, image_size, image_size, 3), jnp.uint8)
  variables = jax.device_get(jax.jit(model.init)(jax.random.key(0), init))
  variables = model_variables(variables["params"], variables["batch_stats"])
  label_map = LabelMap.from_ids(range(NUM_LANDMARKS))
  workdir = pathlib.Path("random-weights")
  return TrainedModel(model, variables, label_map, config, 0, workdir)


def random_index(trained, seed: int = 0):
  """An exact `CentroidIndex` of 10 random unit centroids per landmark, in the model's
  embedding space and naming it (so the recognizer does not warn)."""
  from landmark_jax.index import CentroidIndex, IndexConfig

  rng = np.random.default_rng(seed)
  vectors = rng.standard_normal((10 * NUM_LANDMARKS, trained.model.embedding_dim), np.float32)
  vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
  return CentroidIndex.build(
    vectors,
    np.arange(len(vectors)) // 10,
    IndexConfig(backend="exact"),
    label_map=trained.label_map,
    metadata={"checkpoint": trained.checkpoint_id},
  )


def sample_jpegs(size: tuple[int, int] = PHOTO_SIZE, quality: int = 90) -> list[bytes]:
  """scikit-image's colour sample photos as `size` JPEGs (real photos: real entropy)."""
  import skimage.data
  from PIL import Image

  out = []
  for name in SAMPLE_IMAGES:
    image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB").resize(size)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    out.append(buffer.getvalue())
  return out


# Baselines in this process ---------------------------------------------------------------


def raw_forward(photos, crops: np.ndarray, repeats: int) -> dict[str, float]:
  """Seconds per call of the recognizer's embedder on one full batch of host crops
  (`embed_arrays`: what the service's batches go through, host→device copy included), the
  copy alone (`shard_batch`), and the CPU seconds one call takes of the whole process."""
  import jax

  from landmark_jax import sharding
  from landmark_jax.benchmarks.timing import median_seconds

  host = median_seconds(lambda: photos.embed_arrays(crops), warmup=1, repeats=repeats)
  transfer = median_seconds(lambda: sharding.shard_batch(crops, photos.mesh), repeats=repeats)
  cpu_start, wall_start = time.process_time(), time.perf_counter()
  for _ in range(repeats):
    jax.block_until_ready(photos.embed_arrays(crops))
  cpu = (time.process_time() - cpu_start) / repeats
  wall = (time.perf_counter() - wall_start) / repeats
  return {"host_s": host, "transfer_s": transfer, "cpu_s": cpu, "cores": cpu / wall}


def decode_speed(jpegs: Sequence[bytes], image_config, workers: int, count: int) -> float:
  """Photos/s of the service's decode (`decode_photo`, EXIF read) on `workers` threads,
  with nothing else running."""
  import concurrent.futures

  from landmark_jax.recognize import decode_photo

  def decode(i):
    return decode_photo(jpegs[i % len(jpegs)], image_config)

  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    list(pool.map(decode, range(2 * workers)))  # warm-up
    start = time.perf_counter()
    list(pool.map(decode, range(count)))
    return count / (time.perf_counter() - start)


# CPU time by thread ----------------------------------------------------------------------


def _thread_group(name: str) -> str:
  if name.startswith("decode"):
    return "decode threads"
  if name.startswith("batcher"):
    return "batcher thread (dispatch, search, decision)"
  if name == "uvicorn":
    return "event loop (HTTP, JSON, batching)"
  return "other Python threads"


def thread_cpu_seconds() -> dict[str, float]:
  """CPU seconds so far of this process's threads, grouped: the service's Python threads
  by name, every thread Python does not know as XLA's (its intra-op pool runs the forward)."""
  named = {t.native_id: t.name for t in threading.enumerate()}
  ticks = os.sysconf("SC_CLK_TCK")
  groups: dict[str, float] = {}
  for task in pathlib.Path("/proc/self/task").iterdir():
    try:
      stat = (task / "stat").read_text()
    except OSError:  # the thread ended meanwhile
      continue
    fields = stat[stat.rindex(")") + 2 :].split()
    seconds = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    tid = int(task.name)
    group = _thread_group(named[tid]) if tid in named else "XLA threads (forward)"
    groups[group] = groups.get(group, 0.0) + seconds
  return groups


# The clients (a process of their own) ----------------------------------------------------


def run_clients(
  port: int, photo_dir: str, clients: int, warmup_s: float, seconds: float
) -> dict[str, Any]:
  """`clients` threads, one keep-alive connection and one request at a time each, cycling
  through the JPEGs in `photo_dir`; prints the window's start (monotonic, comparable across
  processes on Linux) as soon as it is fixed, and returns every request's record."""
  import http.client

  jpegs = [p.read_bytes() for p in sorted(pathlib.Path(photo_dir).glob("*.jpg"))]
  window_start = time.monotonic() + warmup_s
  window_end = window_start + seconds
  print(json.dumps({"window_start": window_start, "window_end": window_end}), flush=True)
  records: list[list[dict]] = [[] for _ in range(clients)]

  def client(k: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    i = k
    while time.monotonic() < window_end:
      body = jpegs[i % len(jpegs)]
      i += clients
      start = time.monotonic()
      try:
        connection.request(
          "POST", "/v1/recognize", body=body, headers={"Content-Type": "image/jpeg"}
        )
        response = connection.getresponse()
        payload = response.read()
        status = response.status
      except (OSError, http.client.HTTPException):
        connection.close()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        status, payload = 0, b"{}"
      end = time.monotonic()
      answer = json.loads(payload) if status == 200 else {}
      records[k].append(
        {
          "start": start,
          "end": end,
          "status": status,
          "timing_ms": answer.get("timing_ms"),
          "batch_size": answer.get("batch_size"),
        }
      )
    connection.close()

  cpu_start = time.process_time()
  threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
  for thread in threads:
    thread.start()
  for thread in threads:
    thread.join()
  return {
    "records": [r for rs in records for r in rs],
    "cpu_s": time.process_time() - cpu_start,
    "wall_s": time.monotonic() - (window_start - warmup_s),
  }


def _start_clients(port: int, photo_dir: str, settings: ServeBenchSettings):
  args = [str(port), photo_dir, str(settings.clients), str(settings.warmup_seconds)]
  return subprocess.Popen(
    [sys.executable, "-m", __name__, *args, str(settings.seconds)],
    stdout=subprocess.PIPE,
    text=True,
  )


# The service -----------------------------------------------------------------------------


class _TimedCalls:
  """Wraps a recognizer's `PhotoEmbedder.embed_photos` (an instance attribute: the service
  looks it up on each batch) to log (start, end, photos) per device call."""

  def __init__(self, photos):
    self.batches: list[tuple[float, float, int]] = []
    embed = photos.embed_photos

    def timed(batch, *args, **kwargs):
      start = time.monotonic()
      result = embed(batch, *args, **kwargs)
      self.batches.append((start, time.monotonic(), len(batch) if isinstance(batch, list) else 1))
      return result

    photos.embed_photos = timed


def _serve_in_thread(app):
  import socket

  import uvicorn

  with socket.socket() as probe:
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
  # No access log: one line per request would fill the table's terminal (production logs
  # them at info; their cost is not in these figures). log_config=None: leave logging alone.
  server = uvicorn.Server(
    uvicorn.Config(
      app, host="127.0.0.1", port=port, log_level="warning", log_config=None, access_log=False
    )
  )
  thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
  thread.start()
  deadline = time.monotonic() + 600  # the warm-up compiles every batch size first
  while not server.started and thread.is_alive() and time.monotonic() < deadline:
    time.sleep(0.05)
  if not server.started:
    raise RuntimeError("the service did not start")
  return server, thread, port


def _percentile(values: Sequence[float], q: float) -> float | None:
  return float(np.percentile(values, q)) if len(values) else None


def _overlap(start: float, end: float, lo: float, hi: float) -> float:
  return max(0.0, min(end, hi) - max(start, lo))


def benchmark_serve(settings: ServeBenchSettings = ServeBenchSettings()) -> dict[str, Any]:
  """Runs it all; returns the figures (`rows` for the table, the parts of the gap, and the
  raw measurements)."""
  from landmark_jax.recognize import Recognizer, decode_photo
  from landmark_jax.serve.app import create_app
  from landmark_jax.serve.config import ServeConfig

  trained = random_trained(settings.backbone, settings.image_size)
  recognizer = Recognizer(trained, random_index(trained), eta=0.5, batch_size=settings.max_batch)
  serve_config = ServeConfig(
    max_batch=settings.max_batch,
    max_wait_ms=settings.max_wait_ms,
    **({"decode_workers": settings.decode_workers} if settings.decode_workers else {}),
  )
  app = create_app(recognizer, serve_config)
  service = app.state.service
  jpegs = sample_jpegs()
  crops = np.stack(
    [
      decode_photo(jpegs[i % len(jpegs)], service.image_config).pixels
      for i in range(settings.max_batch)
    ]
  )

  recognizer.photos.warm_up()
  raw_before = raw_forward(recognizer.photos, crops, settings.repeats)
  decode_pps = decode_speed(jpegs, service.image_config, serve_config.decode_workers, 64)
  decode_pps_one = decode_speed(jpegs, service.image_config, 1, 32)

  calls = _TimedCalls(recognizer.photos)
  server, thread, port = _serve_in_thread(app)
  try:
    with tempfile.TemporaryDirectory() as photo_dir:
      for i, jpeg in enumerate(jpegs):
        pathlib.Path(photo_dir, f"{i}.jpg").write_bytes(jpeg)
      clients = _start_clients(port, photo_dir, settings)
      window = json.loads(clients.stdout.readline())
      lo, hi = window["window_start"], window["window_end"]
      time.sleep(max(0.0, lo - time.monotonic()))
      cpu_before, process_before = thread_cpu_seconds(), time.process_time()
      time.sleep(max(0.0, hi - time.monotonic()))
      cpu_after, process_after = thread_cpu_seconds(), time.process_time()
      out, _ = clients.communicate(timeout=600)
      if clients.returncode:
        raise RuntimeError(f"the clients failed (exit {clients.returncode})")
      load = json.loads(out.strip().splitlines()[-1])
  finally:
    server.should_exit = True
    thread.join(timeout=60)
  raw_after = raw_forward(recognizer.photos, crops, settings.repeats)

  return summarize(
    settings,
    load=load,
    window=(lo, hi),
    batches=calls.batches,
    raw=[raw_before, raw_after],
    decode_pps=decode_pps,
    decode_pps_one=decode_pps_one,
    decode_workers=serve_config.decode_workers,
    cpu={
      group: cpu_after.get(group, 0.0) - cpu_before.get(group, 0.0)
      for group in sorted(set(cpu_before) | set(cpu_after))
    },
    process_cpu=process_after - process_before,
  )


def summarize(
  settings: ServeBenchSettings,
  *,
  load: dict,
  window: tuple[float, float],
  batches: list,
  raw: list[dict],
  decode_pps: float,
  decode_pps_one: float,
  decode_workers: int,
  cpu: dict[str, float],
  process_cpu: float,
) -> dict[str, Any]:
  """The figures of one run, from its measurements (a pure function: the test checks it)."""
  lo, hi = window
  seconds = hi - lo
  records = load["records"]
  in_window = [r for r in records if lo <= r["end"] < hi]
  answered = [r for r in in_window if r["status"] == 200]
  raw_batch_s = statistics.median([r["host_s"] for r in raw])
  transfer_s = statistics.median([r["transfer_s"] for r in raw])
  raw_pps = settings.max_batch / raw_batch_s
  service_pps = len(answered) / seconds
  latencies = [1000 * (r["end"] - r["start"]) for r in answered]

  window_batches = [b for b in batches if lo <= b[1] < hi]  # calls that ended in the window
  busy_s = sum(_overlap(start, end, lo, hi) for start, end, _ in batches)
  photos_in_batches = sum(n for _, _, n in window_batches)
  mean_batch = photos_in_batches / len(window_batches) if window_batches else 0.0
  full = [end - start for start, end, n in window_batches if n == settings.max_batch]
  service_batch_s = statistics.median(full) if full else None

  # Per answered photo, in ms: the server's own phases, and the rest (HTTP both ways).
  timing = [r["timing_ms"] for r in answered]
  photo_weighted_call_ms = (
    1000 * sum((end - start) * n for start, end, n in window_batches) / photos_in_batches
    if photos_in_batches
    else 0.0
  )
  mean = lambda xs: float(np.mean(xs)) if len(xs) else 0.0  # noqa: E731
  phases = {
    "latency": mean(latencies),
    "decode (queue + decode)": mean([t["decode"] for t in timing]),
    "batching wait (queue + gather), search, decision": mean([t["recognize"] for t in timing])
    - photo_weighted_call_ms,
    "its batch's device call (embed_photos)": photo_weighted_call_ms,
    "HTTP (client, loopback, request/response)": mean(
      [l - t["total"] for l, t in zip(latencies, timing)]
    ),
  }
  per_photo = 1 / len(answered) if answered else 0.0
  cpu_ms = {group: 1000 * s * per_photo for group, s in cpu.items()}
  client_cpu_ms = 1000 * load["cpu_s"] / len(records) if records else 0.0
  cores = os.cpu_count() or 1
  raw_cpu_ms = 1000 * statistics.median([r["cpu_s"] for r in raw]) / settings.max_batch

  rows = [
    {
      "what": f"raw forward, batches of {settings.max_batch} decoded crops",
      "photos/s": raw_pps,
      "vs raw": 1.0,
    },
    {
      "what": f"service, {settings.clients} clients, --max-batch {settings.max_batch}",
      "photos/s": service_pps,
      "vs raw": service_pps / raw_pps if raw_pps else None,
    },
    {
      "what": f"decode alone ({decode_workers} threads, the service's)",
      "photos/s": decode_pps,
      "vs raw": decode_pps / raw_pps,
    },
    {
      "what": "decode alone (1 thread)",
      "photos/s": decode_pps_one,
      "vs raw": decode_pps_one / raw_pps,
    },
  ]
  return {
    "settings": dataclasses.asdict(settings),
    "rows": rows,
    "raw_forward_photos_per_s": raw_pps,
    "service_photos_per_s": service_pps,
    "ratio": service_pps / raw_pps if raw_pps else None,
    "window_s": seconds,
    "requests_answered": len(answered),
    "requests_failed": len(in_window) - len(answered),
    "requests_total": len(records),
    "decode_photos_per_s": decode_pps,
    "decode_photos_per_s_one_thread": decode_pps_one,
    "decode_share_of_budget": raw_pps / decode_pps,
    "mean_batch_size": mean_batch,
    "batch_sizes": {
      str(n): sum(1 for *_, m in window_batches if m == n) for n in range(1, settings.max_batch + 1)
    },
    "batch_size_sequence": [n for *_, n in window_batches],
    # Between one call's end and the next one's start: the batcher's own turnaround.
    "batcher_idle_ms_between_calls": 1000
    * float(np.mean([b[0] - a[1] for a, b in zip(window_batches, window_batches[1:])]))
    if len(window_batches) > 1
    else None,
    "batches": len(window_batches),
    "photos_in_batches": photos_in_batches,
    "latency_p50_ms": _percentile(latencies, 50),
    "latency_p99_ms": _percentile(latencies, 99),
    "raw": {
      "batch_ms": 1000 * raw_batch_s,
      "host_to_device_ms_per_batch": 1000 * transfer_s,
      "cpu_ms_per_photo": raw_cpu_ms,
      "cores_busy": statistics.median([r["cores"] for r in raw]),
      "before_and_after_load_ms": [1000 * r["host_s"] for r in raw],
    },
    "gap": {
      # service/raw = busy share × (photos per busy second / raw photos per second).
      "device_busy_share": busy_s / seconds,
      "photos_per_busy_s_vs_raw": (service_pps * seconds / busy_s) / raw_pps if busy_s else None,
      "full_batch_call_ms_in_service": None if service_batch_s is None else 1000 * service_batch_s,
      "full_batch_slowdown_vs_raw": None
      if service_batch_s is None
      else service_batch_s / raw_batch_s,
      "phases_ms_per_request": phases,
    },
    "cpu": {
      "cores": cores,
      "server_cpu_s": process_cpu,
      "server_cores_busy": process_cpu / seconds,
      "ms_per_photo": {**cpu_ms, "clients (their process)": client_cpu_ms},
      "raw_forward_ms_per_photo": raw_cpu_ms,
    },
    "load_average": os.getloadavg(),
  }


def phase_rows(result: dict) -> list[dict[str, Any]]:
  """The gap's table: per request, where its time went; per photo, whose CPU it took."""
  rows = [
    {"part": f"time per request: {name}", "ms": ms}
    for name, ms in result["gap"]["phases_ms_per_request"].items()
  ]
  rows.append(
    {
      "part": "per batch: host→device copy (alone)",
      "ms": result["raw"]["host_to_device_ms_per_batch"],
    }
  )
  rows.append(
    {"part": "per batch: the batcher's turnaround", "ms": result["batcher_idle_ms_between_calls"]}
  )
  rows.append(
    {"part": "raw forward's CPU per photo (alone)", "ms": result["cpu"]["raw_forward_ms_per_photo"]}
  )
  rows += [
    {"part": f"CPU per photo under load: {group}", "ms": ms}
    for group, ms in result["cpu"]["ms_per_photo"].items()
  ]
  return rows


if __name__ == "__main__":  # the clients, in a process of their own
  port, photo_dir, clients, warmup_s, seconds = sys.argv[1:6]
  print(
    json.dumps(run_clients(int(port), photo_dir, int(clients), float(warmup_s), float(seconds)))
  )
