"""`GET /metrics`: the service's figures in Prometheus' text format (`prometheus_client`).

Each app has its own `CollectorRegistry`, not the process-wide one, so that several apps in
one process (tests, an embedding program) count apart. Routes are labelled by their path
when it is one of the app's, else ``other``: a scanner probing random paths must not grow
one time series per path it tries.
"""

from __future__ import annotations

import time
from typing import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

# Best-score buckets: 0.05 apart over [0, 1], and 0.01 apart above 0.8, where η usually is
# (a cosine similarity; -1, "no candidate", falls in the first bucket).
SCORE_BUCKETS = tuple(
  sorted({round(0.05 * i, 2) for i in range(21)} | {round(0.8 + 0.01 * i, 2) for i in range(20)})
)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def batch_buckets(max_batch: int) -> tuple[int, ...]:
  """1, 2, 4, … up to `max_batch`: the sizes the embedder compiles, and the largest one."""
  sizes, size = [], 1
  while size < max_batch:
    sizes.append(size)
    size *= 2
  return (*sizes, max_batch)


class ServiceMetrics:
  """Every metric the service exports, in its own registry."""

  def __init__(self, max_batch: int):
    self.registry = CollectorRegistry(auto_describe=True)
    r = self.registry
    self.requests = Counter(
      "landmark_http_requests", "HTTP requests answered", ["route", "status"], registry=r
    )
    self.latency = Histogram(
      "landmark_http_request_duration_seconds",
      "Time from a request's headers to the end of its answer",
      ["route"],
      buckets=LATENCY_BUCKETS,
      registry=r,
    )
    self.in_flight = Gauge(
      "landmark_http_requests_in_flight", "Requests received and not yet answered", registry=r
    )
    self.batch_size = Histogram(
      "landmark_batch_size",
      "Photos per device batch (count: device batches run)",
      buckets=batch_buckets(max_batch),
      registry=r,
    )
    self.decode_refusals = Counter(
      "landmark_decode_refusals",
      "Photos refused before recognition, by error code (empty_body, image_too_large, "
      "image_too_costly, unsupported_image_format, undecodable_image)",
      ["reason"],
      registry=r,
    )
    self.uploads_cut = Counter(
      "landmark_uploads_cut",
      "Uploads cut while the memory for request bodies was full: stalled (408, to make "
      "room) or busy (503, no stalled upload to cut)",
      ["reason"],
      registry=r,
    )
    for reason in ("stalled", "busy"):
      self.uploads_cut.labels(reason)
    self.answers = Counter(
      "landmark_answers",
      "Photos answered: accepted (a landmark) or rejected (reason: below_threshold, "
      "no_landmark_nearby, far_from_references, too_few_inliers)",
      ["decision", "reason"],
      registry=r,
    )
    self.best_score = Histogram(
      "landmark_best_score",
      "The best candidate's similarity of each answered photo that had a candidate",
      buckets=SCORE_BUCKETS,
      registry=r,
    )
    self.index = Info(
      "landmark_index", "The index served: version (its manifest's sha256), edits", registry=r
    )
    self.index_loaded = Gauge(
      "landmark_index_loaded_timestamp_seconds",
      "When the served index was loaded (Unix time)",
      registry=r,
    )
    self.reloads = Counter(
      "landmark_index_reloads",
      "Index reloads: ok (swapped in) or refused (the old index kept)",
      ["result"],
      registry=r,
    )
    for result in ("ok", "refused"):  # both series exist from the start, at 0
      self.reloads.labels(result)
    self.verifications = Counter(
      "landmark_verifications",
      "Photos whose score fell in the verification band, settled by local features: "
      "accepted (a landmark) or rejected (too_few_inliers)",
      ["outcome"],
      registry=r,
    )
    for outcome in ("accepted", "rejected"):
      self.verifications.labels(outcome)

  def observe_answer(self, prediction: dict) -> None:
    if prediction["is_landmark"]:
      self.answers.labels("accepted", "").inc()
    else:
      self.answers.labels("rejected", prediction["reason"] or "").inc()
    if prediction["candidates"]:
      self.best_score.observe(prediction["score"])

  async def endpoint(self, request: Request) -> Response:
    return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
  """ASGI middleware: counts each HTTP request by route and status and times it."""

  def __init__(self, app, metrics: ServiceMetrics, routes: Iterable[str]):
    self.app = app
    self.metrics = metrics
    self.routes = frozenset(routes)

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    route = scope["path"] if scope["path"] in self.routes else "other"
    status = 500  # what the client gets when the app raises before answering
    start = time.perf_counter()

    async def send_status(message):
      nonlocal status
      if message["type"] == "http.response.start":
        status = message["status"]
      await send(message)

    self.metrics.in_flight.inc()
    try:
      await self.app(scope, receive, send_status)
    finally:
      self.metrics.in_flight.dec()
      self.metrics.requests.labels(route, str(status)).inc()
      self.metrics.latency.labels(route).observe(time.perf_counter() - start)
