"""`landmark-jax serve`: the recognition service (Starlette on uvicorn).

    POST /v1/recognize         one photo: multipart field "image", or the raw JPEG/PNG/WebP
                               body with its Content-Type; optional ?lat=&lon= (else the
                               photo's EXIF GPS) restricts candidates to nearby landmarks
    POST /v1/recognize:batch   several photos: multipart fields "images"; ?lat=&lon= apply
                               to each
    GET  /healthz              ready (200) once a warm-up recognition succeeded, else 503
    GET  /v1/info              model, index (version, size), η, the verification band,
                               batching figures, limits
    GET  /metrics              Prometheus text format (`metrics`)
    POST /v1/admin/reload      only with an admin key (`admin`): reload the index now
    GET  /                     an upload page for people

An answer is `Prediction.to_dict()`: for "no landmark", ``reason`` says why
(``below_threshold``, ``no_landmark_nearby``, ``far_from_references`` or
``too_few_inliers``), and the upload page words it from that code; ``index_version`` names
the index version that answered (an edited index is swapped in while serving: `reload`).
SIGTERM drains (`shutdown`).

An index that stores local features and a calibrated band verifies the answers whose score
falls in the band (`recognize.verifier`): after the device batch, on a thread of its own,
so that answers outside the band never wait behind a verification.

Hostile or careless input costs bounded memory and time: bodies are read against a byte
limit and a read timeout (`body.BodyLimit`), images are refused before decoding in a
format outside `image_formats` (by their first bytes), above a pixel or byte budget, or as
a progressive JPEG of too many scans (`data.image_guard`), JPEGs are decoded at reduced
size, and at most `decode_workers` photos
decode at once (`decoding.DecodeBudget`). Concurrent requests are batched onto the device
by `Batcher`, whose batch sizes are compiled at start-up. Every error is JSON with a
stable code (`errors`), and the service keeps serving.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib.resources
import logging
import math
import time
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

import landmark_jax
from landmark_jax.data.config import ImageConfig
from landmark_jax.data.transforms import ImageDecodeError
from landmark_jax.geo import Location
from landmark_jax.recognize import Photo, Prediction, Recognizer, decode_photo
from landmark_jax.serve.admin import check_bearer
from landmark_jax.serve.batcher import Batcher
from landmark_jax.serve.body import BodyBudget, BodyLimit
from landmark_jax.serve.config import BATCH_PATH, ServeConfig
from landmark_jax.serve.decoding import DecodeBudget
from landmark_jax.serve.errors import (
  EXCEPTION_HANDLERS,
  RequestError,
  decode_refusal,
  internal_error,
)
from landmark_jax.serve.limits import RequestDeadline
from landmark_jax.serve.memory import memory_bound
from landmark_jax.serve.metrics import RequestMetrics, ServiceMetrics
from landmark_jax.serve.protocol import default_max_connections
from landmark_jax.serve.reload import IndexReloader, IndexSource, ReloadResult, ServedIndex
from landmark_jax.serve.security import (
  ApiKeyGate,
  HostOriginGate,
  SecurityHeaders,
  cors_middleware,
  page_policy,
)
from landmark_jax.serve.shutdown import Drain, DrainGate

logger = logging.getLogger(__name__)

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
ADMIN_RELOAD_PATH = "/v1/admin/reload"


class RecognitionService:
  """The state behind the routes: the recognizer's embedder, the index version served, the
  limits, the decode budget, the batcher, the metrics and the drain.

  With `source` (the index's folder), an edited index is swapped in while serving
  (`reload`); `recognizer.decision` is then only the first version served."""

  def __init__(
    self,
    recognizer: Recognizer,
    config: ServeConfig = ServeConfig(),
    source: IndexSource | None = None,
  ):
    self.recognizer = recognizer
    self.config = config
    self.metrics = ServiceMetrics(config.max_batch)
    self.drain = Drain(config.drain_timeout_s)
    served = ServedIndex(
      recognizer.decision, None if source is None else source.version, verifier=recognizer.verifier
    )
    self.reloads = {"ok": 0, "refused": 0, "last_refusal": None}
    self.reloader = None
    if source is not None:
      self.reloader = IndexReloader(source, recognizer.trained, served, on_result=self._reload_done)
    self._served = served
    self._show_index(served)
    self.image_config = config.image_config(recognizer.photos.image_config)
    self.decodes = DecodeBudget(config.decode_workers)
    self.max_connections = config.max_connections or default_max_connections()
    # Request bodies held at once, every connection together (`body.BodyBudget`).
    self.bodies = BodyBudget(
      config.max_bytes_in_flight,
      on_cut=lambda reason: self.metrics.uploads_cut.labels(reason).inc(),
    )
    self.batcher = Batcher(self._run_batch, config.max_batch, config.max_wait_ms / 1000)
    # One verification at a time (each describes a whole photo on the device), on a thread
    # apart from the batcher's, so that no batch waits behind one.
    self.verify_pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="verify")
    self.ready = False

  @property
  def served(self) -> ServedIndex:
    """The index version answering now."""
    return self.reloader.served if self.reloader is not None else self._served

  def _reload_done(self, result: ReloadResult) -> None:
    if result.outcome == "refused":
      self.reloads["refused"] += 1
      self.reloads["last_refusal"] = result.reason
      self.metrics.reloads.labels("refused").inc()
    else:
      self.reloads["ok"] += 1
      self.metrics.reloads.labels("ok").inc()
      self._show_index(result.served)

  def _show_index(self, served: ServedIndex) -> None:
    info = served.info()
    self.metrics.index.info(
      {"version": str(info["version"]), "edits": str(info["edits"]), "backend": info["backend"]}
    )
    self.metrics.index_loaded.set(served.loaded_at)

  def _run_batch(self, items: list[tuple[Photo, ServedIndex]]) -> list:
    """(photo, the index version its request took) → (prediction, that version). The
    embedder is the same for every version, so one device call serves them all; only the
    device-free decision differs, and a batch that straddles a reload is split there."""
    embeddings = self.recognizer.photos.embed_photos([photo for photo, _ in items])
    rows_by_version: dict[int, tuple[ServedIndex, list[int]]] = {}
    for row, (_, served) in enumerate(items):
      rows_by_version.setdefault(id(served), (served, []))[1].append(row)
    results: list = [None] * len(items)
    for served, rows in rows_by_version.values():
      predictions = served.decision.predict(
        embeddings[rows], locations=[items[row][0].location for row in rows]
      )
      for row, prediction in zip(rows, predictions):
        results[row] = (prediction, served)
    self.metrics.batch_size.observe(len(items))
    return results

  def warm_up(self) -> None:
    """Compiles every batch size and recognises one photo end to end (model, index, η and
    names together): a service that would fail every request fails here instead."""
    if self.ready:
      return
    self.recognizer.photos.warm_up()
    size = self.image_config.crop_size
    pixels = np.full((size, size, 3), 128, np.uint8)
    served = self.served
    (embedding,) = self.recognizer.photos.embed_photos([Photo(pixels)])
    (prediction,) = served.decision.predict(embedding[None])
    if not math.isfinite(prediction.score):
      raise RuntimeError(f"warm-up recognition gave a non-finite score {prediction.score}")
    if served.verifier is not None:  # compiles its single-photo program, reads its store
      verify_one(served.verifier, pixels, prediction)
    self.ready = True

  async def startup(self) -> None:
    await asyncio.to_thread(self.warm_up)
    await self.batcher.start()
    if self.reloader is not None:
      await self.reloader.start(self.config.reload_poll_s)

  async def shutdown(self) -> None:
    if self.reloader is not None:
      await self.reloader.stop()
    await self.batcher.stop()
    self.verify_pool.shutdown(wait=False, cancel_futures=True)
    self.decodes.shutdown()

  def _decode(self, data: bytes, what: str, location: Location | None) -> Photo:
    if not data:
      raise RequestError(
        400, "empty_body", f"{what}: empty body (0 bytes); send a JPEG, PNG or WebP photo"
      )
    try:
      return decode_photo(data, self.image_config, location=location)
    except ImageDecodeError as e:
      raise decode_refusal(e, what) from None

  async def recognize(
    self,
    data: bytes,
    what: str,
    location: Location | None = None,
    served: ServedIndex | None = None,
  ) -> dict[str, Any]:
    """A photo's answer; its location is the caller's, else its EXIF GPS, else unknown.
    `served`: the index version to answer from (a batch request's photos share one);
    default: the one served when the photo is decoded."""
    start = time.perf_counter()
    try:
      photo = await self.decodes.run(lambda: self._decode(data, what, location))
    except RequestError as error:
      self.metrics.decode_refusals.labels(error.code).inc()
      raise
    decoded = time.perf_counter()
    (prediction, served), batch_size = await self.batcher.submit((photo, served or self.served))
    recognized = time.perf_counter()
    timing = {"decode": 1000 * (decoded - start), "recognize": 1000 * (recognized - decoded)}
    done = recognized  # the parts add up to the total: the service benchmark's phases rely on it
    verifier = served.verifier
    if verifier is not None and verifier.needs(prediction):
      loop = asyncio.get_running_loop()
      # The extractor decodes the photo again, whole, under the service's decode limits.
      try:
        prediction = await loop.run_in_executor(
          self.verify_pool, verify_one, verifier, photo.source, prediction, self.image_config
        )
      except ImageDecodeError as e:
        raise decode_refusal(e, what) from None
      done = time.perf_counter()
      timing["verify"] = 1000 * (done - recognized)
      self.metrics.verifications.labels("accepted" if prediction.is_landmark else "rejected").inc()
    answer = prediction.to_dict()
    self.metrics.observe_answer(answer)
    return {
      **answer,
      "index_version": None if served.version is None else served.version.short,
      "timing_ms": {**timing, "total": 1000 * (done - start)},
      "batch_size": batch_size,
    }

  def info(self) -> dict[str, Any]:
    trained = self.recognizer.trained
    served = self.served
    decision = served.decision
    limits = (
      "max_bytes",
      "max_batch_bytes",
      "max_pixels",
      "max_decoded_pixels",
      "max_batch_request",
      "decode_workers",
      "read_timeout_s",
      "drain_timeout_s",
      "image_formats",
      "max_decode_bytes",
      "max_jpeg_scans",
      "request_timeout_s",
      "header_timeout_s",
      "keep_alive_s",
      "max_connections",
      "max_bytes_in_flight",
    )
    return {
      "version": landmark_jax.__version__,
      # The run's folder name and step identify the model without the server's paths.
      "model": {
        "backbone": trained.config.model.backbone,
        "embedding_dim": trained.model.embedding_dim,
        "classes": trained.model.num_classes,
        "run": trained.workdir.name,
        "step": trained.step,
      },
      # version: the first 16 hex digits of the manifest's manifest_sha256, as answers
      # carry it in index_version; loaded_at in UTC.
      "index": served.info(),
      "eta": None if math.isinf(decision.eta) else decision.eta,
      # ρ beside η when the decision checks class references too (None: it does not).
      "reference_threshold": decision.reference_threshold,
      # The band around η whose answers local features settle, and k (None: no verification).
      "verification": None if served.verifier is None else _band_info(served.verifier.band),
      "top_k": decision.top_k,
      "reloads": {
        "poll_s": self.config.reload_poll_s if self.reloader is not None else None,
        **self.reloads,
      },
      "batching": {
        "max_batch": self.config.max_batch,
        "max_wait_ms": self.config.max_wait_ms,
        "batches": self.batcher.batches,
        "photos": self.batcher.items,
        "mean_batch_size": self.batcher.mean_batch_size,
      },
      "limits": {
        **{name: getattr(self.config, name) for name in limits},
        # The connection cap in force, and what the service may hold above its idle memory.
        "max_connections": self.max_connections,
        "memory_bound_bytes": memory_bound(
          self.config.max_bytes_in_flight,
          self.config.decode_workers,
          self.config.decode_budget,  # max_decode_bytes, or the deprecated pixels × 8
          self.max_connections,
        ),
      },
    }


def verify_one(
  verifier, image: Any, prediction: Prediction, limits: ImageConfig | None = None
) -> Prediction:
  """`prediction` settled by `verifier` with its photo (what the photo was decoded from):
  describe (decoded under `limits`' formats and budgets), match, answer."""
  features = verifier.describe(image, limits=limits)
  return verifier.verified(prediction, verifier.check(features, prediction))


def _band_info(band) -> dict[str, Any]:
  return {
    "below": band.below,
    "above": band.above,
    "min_inliers": band.min_inliers,
    "candidates": band.candidates,
  }


async def _upload_bytes(request: Request, field: str, limit: int) -> list[tuple[str, bytes]]:
  content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
  if content_type == "multipart/form-data":
    uploads = await _multipart_files(request, field, limit)
    return [(u.filename or f"{field}[{i}]", await u.read()) for i, u in enumerate(uploads)]
  if content_type in IMAGE_TYPES:
    return [("body", await request.body())]
  wanted = "send multipart/form-data or image/jpeg, image/png, image/webp"
  if not content_type:
    raise RequestError(415, "unsupported_media_type", f"missing Content-Type: {wanted}")
  raise RequestError(
    415, "unsupported_media_type", f"unsupported Content-Type {content_type!r}: {wanted}"
  )


async def _multipart_files(request: Request, field: str, limit: int) -> list:
  try:
    form = await request.form(max_files=limit, max_fields=limit + 8)
  except HTTPException as e:  # Starlette's multipart errors, e.g. "Too many files"
    detail = str(e.detail)
    if detail.startswith("Too many files"):
      if limit == 1:  # a request of the wrong shape, not one too large
        raise RequestError(
          400, "too_many_files", "one photo per request here; send several with /v1/recognize:batch"
        ) from None
      raise RequestError(
        413, "too_many_files", f"more than {limit} photos in one request"
      ) from None
    raise RequestError(400, "bad_multipart", f"malformed multipart body: {detail}") from None
  uploads = [u for u in form.getlist(field) if hasattr(u, "read")]
  if not uploads:
    raise RequestError(400, "missing_field", f"multipart body has no file field {field!r}")
  return uploads


def _query_location(request: Request) -> Location | None:
  """``?lat=..&lon=..`` (both or neither; degrees)."""
  lat, lon = request.query_params.get("lat"), request.query_params.get("lon")
  if lat is None and lon is None:
    return None
  if lat is None or lon is None:
    raise RequestError(400, "bad_location", "lat and lon must both be given, or neither")
  location = Location(_degrees("lat", lat), _degrees("lon", lon))
  if not location.on_earth:
    raise RequestError(400, "bad_location", f"location out of range: lat {lat}, lon {lon}")
  return location


def _degrees(name: str, text: str) -> float:
  try:
    return float(text)
  except ValueError:
    raise RequestError(
      400, "bad_location", f"{name} {text!r} is not a number of decimal degrees"
    ) from None


def create_app(
  recognizer: Recognizer,
  config: ServeConfig = ServeConfig(),
  *,
  source: IndexSource | None = None,
  admin_key: str | None = None,
  api_key: str | None = None,
  listen_host: str | None = None,
) -> Starlette:
  """The service's app. With `source` (the index's folder, `reload.IndexSource`), edits of
  the index are served without a restart; with `admin_key`, ``POST /v1/admin/reload``
  exists (without one it is 404, like any unknown route: nothing to guess a key for); with
  `api_key`, every other route but /healthz and the page wants it (`security`).
  `listen_host`, the address served on, is a Host name answered besides the loopback ones
  and `config.allowed_hosts`."""
  service = RecognitionService(recognizer, config, source)

  async def recognize(request: Request):
    location = _query_location(request)
    ((name, data),) = await _upload_bytes(request, "image", 1)
    return JSONResponse(await service.recognize(data, name, location))

  async def recognize_batch(request: Request):
    location = _query_location(request)
    uploads = await _upload_bytes(request, "images", config.max_batch_request)
    served = service.served  # one index version for every photo of the request
    results = await asyncio.gather(
      *(service.recognize(data, name, location, served) for name, data in uploads),
      return_exceptions=True,
    )
    out = []
    for (name, _), result in zip(uploads, results):
      if isinstance(result, RequestError):  # one bad photo does not fail the others
        out.append({"file": name, **result.to_json()})
      elif isinstance(result, Exception):  # a fault of ours: logged, this photo's error
        logger.error("photo %r of a batch failed", name, exc_info=result)
        out.append({"file": name, **internal_error().to_json()})
      elif isinstance(result, BaseException):  # cancelled: the request itself is ending
        raise result
      else:
        out.append({"file": name, **result})
    return JSONResponse({"results": out})

  async def healthz(request: Request):
    if not service.ready:
      return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ok"})

  async def info(request: Request):
    return JSONResponse({**service.info(), "api_key_required": api_key is not None})

  page = importlib.resources.files("landmark_jax.serve").joinpath("page.html").read_text()

  async def index_page(request: Request):
    return HTMLResponse(page)

  async def admin_reload(request: Request):
    check_bearer(request, admin_key)
    if service.reloader is None:
      raise RequestError(409, "no_index_folder", "this service was given no index folder to reload")
    result = await service.reloader.reload("admin request")
    if result.outcome == "refused":
      raise RequestError(
        422,
        "index_refused",
        f"the index was refused, still serving version {result.served.info()['version']}: "
        f"{result.reason}",
      )
    return JSONResponse({"outcome": result.outcome, "index": result.served.info()})

  @contextlib.asynccontextmanager
  async def lifespan(app):
    await service.startup()
    yield
    await service.shutdown()

  routes = [
    Route("/v1/recognize", recognize, methods=["POST"]),
    Route(BATCH_PATH, recognize_batch, methods=["POST"]),
    Route("/healthz", healthz),
    Route("/v1/info", info),
    Route("/metrics", service.metrics.endpoint),
    Route("/", index_page),
  ]
  if admin_key is not None:
    routes.append(Route(ADMIN_RELOAD_PATH, admin_reload, methods=["POST"]))
  app = Starlette(
    routes=routes,
    # Outermost first: every answer gets the security headers, every request is counted
    # (503s of the drain too); the Host, Origin and key gates and the drain gate refuse
    # before a body is read.
    middleware=[
      Middleware(SecurityHeaders, page_csp=page_policy(page)),
      Middleware(RequestMetrics, metrics=service.metrics, routes=[r.path for r in routes]),
      Middleware(
        HostOriginGate,
        allowed_hosts=config.allowed_hosts,
        allowed_origins=config.allowed_origins,
        listen_host=listen_host,
      ),
      *cors_middleware(config.allowed_origins),
      Middleware(ApiKeyGate, key=api_key, public_paths=("/healthz", "/", ADMIN_RELOAD_PATH)),
      Middleware(DrainGate, drain=service.drain),
      Middleware(RequestDeadline, timeout_s=config.request_timeout_s),
      Middleware(
        BodyLimit,
        limit_for=config.body_limit,
        read_timeout_s=config.read_timeout_s,
        budget=service.bodies,
      ),
    ],
    exception_handlers=EXCEPTION_HANDLERS,
    lifespan=lifespan,
  )
  app.state.service = service
  return app
