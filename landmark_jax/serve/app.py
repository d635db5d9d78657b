"""`landmark-jax serve`: the recognition service (Starlette on uvicorn).

    POST /v1/recognize         one photo: multipart field "image", or the raw JPEG/PNG/WebP
                               body with its Content-Type; optional ?lat=&lon= (else the
                               photo's EXIF GPS) restricts candidates to nearby landmarks
    POST /v1/recognize:batch   several photos: multipart fields "images"; ?lat=&lon= apply
                               to each
    GET  /healthz              ready (200) once a warm-up recognition succeeded, else 503
    GET  /v1/info              model, index size, η, version, batching figures, limits
    GET  /                     an upload page for people

An answer is `Prediction.to_dict()`: for "no landmark", ``reason`` says why
(``below_threshold``, ``no_landmark_nearby`` or ``far_from_references``), and the upload
page words it from that code.

Hostile or careless input costs bounded memory and time: bodies are read against a byte
limit and a read timeout (`body.BodyLimit`), images are refused from their header above a
pixel budget, JPEGs are decoded at reduced size, and at most `decode_workers` photos
decode at once (`decoding.DecodeBudget`). Concurrent requests are batched onto the device
by `Batcher`, whose batch sizes are compiled at start-up. Every error is JSON with a
stable code (`errors`), and the service keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib.resources
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
from landmark_jax.data.transforms import ImageDecodeError, ImageTooLargeError
from landmark_jax.errors import ConfigError
from landmark_jax.geo import Location
from landmark_jax.recognize import Photo, Recognizer, decode_photo
from landmark_jax.serve.batcher import Batcher
from landmark_jax.serve.body import BodyLimit
from landmark_jax.serve.decoding import DecodeBudget, default_decode_workers
from landmark_jax.serve.errors import EXCEPTION_HANDLERS, RequestError

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
BATCH_PATH = "/v1/recognize:batch"


@dataclasses.dataclass(frozen=True)
class ServeConfig:
  max_batch: int = 16  # photos per device call
  max_wait_ms: float = 5.0  # how long the first photo of a batch waits for company
  max_bytes: int = 20 * 2**20  # request body limit of /v1/recognize (413)
  max_batch_bytes: int = 64 * 2**20  # request body limit of /v1/recognize:batch (413)
  max_pixels: int = 50_000_000  # images larger in their header are refused (413)
  # Pixels decoded at full size: PNG/WebP above it are refused from their header (413);
  # JPEGs are decoded at a reduced scale and pass up to max_pixels. ~8 bytes per pixel
  # while decoding: 4096² is ~130 MB per decode at most.
  max_decoded_pixels: int = 4096 * 4096
  decode_workers: int = dataclasses.field(default_factory=default_decode_workers)
  max_batch_request: int = 32  # photos in one /v1/recognize:batch request
  read_timeout_s: float = 30.0  # a body that stalls this long is answered 408

  def __post_init__(self):
    for name in (
      "max_batch",
      "max_bytes",
      "max_batch_bytes",
      "max_pixels",
      "max_decoded_pixels",
      "decode_workers",
      "max_batch_request",
    ):
      if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
        raise ConfigError(f"serve: {name} must be a positive integer, got {getattr(self, name)!r}")
    if not (math.isfinite(self.max_wait_ms) and self.max_wait_ms >= 0):
      raise ConfigError(f"serve: max_wait_ms must be ≥ 0, got {self.max_wait_ms!r}")
    if not (math.isfinite(self.read_timeout_s) and self.read_timeout_s > 0):
      raise ConfigError(f"serve: read_timeout_s must be > 0, got {self.read_timeout_s!r}")

  def body_limit(self, path: str) -> int:
    return self.max_batch_bytes if path == BATCH_PATH else self.max_bytes


class RecognitionService:
  """The state behind the routes: the recognizer, its limits, the decode budget and the
  batcher."""

  def __init__(self, recognizer: Recognizer, config: ServeConfig = ServeConfig()):
    self.recognizer = recognizer
    self.config = config
    self.image_config = dataclasses.replace(
      recognizer.photos.image_config,
      max_pixels=config.max_pixels,
      max_decoded_pixels=config.max_decoded_pixels,
    )
    self.decodes = DecodeBudget(config.decode_workers)
    self.batcher = Batcher(self._run_batch, config.max_batch, config.max_wait_ms / 1000)
    self.ready = False

  def _run_batch(self, photos: list[Photo]) -> list:
    return self.recognizer.recognize_photos(photos)

  def warm_up(self) -> None:
    """Compiles every batch size and recognises one photo end to end (model, index, η and
    names together): a service that would fail every request fails here instead."""
    if self.ready:
      return
    self.recognizer.photos.warm_up()
    size = self.image_config.crop_size
    photo = Photo(np.full((size, size, 3), 128, np.uint8), None)
    (prediction,) = self.recognizer.recognize_photos([photo])
    if not math.isfinite(prediction.score):
      raise RuntimeError(f"warm-up recognition gave a non-finite score {prediction.score}")
    self.ready = True

  async def startup(self) -> None:
    await asyncio.to_thread(self.warm_up)
    await self.batcher.start()

  async def shutdown(self) -> None:
    await self.batcher.stop()
    self.decodes.shutdown()

  def _decode(self, data: bytes, what: str, location: Location | None) -> Photo:
    if not data:
      raise RequestError(
        400, "empty_body", f"{what}: empty body (0 bytes); send a JPEG, PNG or WebP photo"
      )
    try:
      return decode_photo(data, self.image_config, location=location)
    except ImageTooLargeError as e:
      raise RequestError(413, "image_too_large", f"{what}: {e}") from None
    except ImageDecodeError as e:
      raise RequestError(400, "undecodable_image", f"{what}: {e}") from None

  async def recognize(
    self, data: bytes, what: str, location: Location | None = None
  ) -> dict[str, Any]:
    """A photo's answer; its location is the caller's, else its EXIF GPS, else unknown."""
    start = time.perf_counter()
    photo = await self.decodes.run(lambda: self._decode(data, what, location))
    decoded = time.perf_counter()
    prediction, batch_size = await self.batcher.submit(photo)
    done = time.perf_counter()
    return {
      **prediction.to_dict(),
      "timing_ms": {
        "decode": 1000 * (decoded - start),
        "recognize": 1000 * (done - decoded),
        "total": 1000 * (done - start),
      },
      "batch_size": batch_size,
    }

  def info(self) -> dict[str, Any]:
    trained = self.recognizer.trained
    index = self.recognizer.index
    limits = (
      "max_bytes",
      "max_batch_bytes",
      "max_pixels",
      "max_decoded_pixels",
      "max_batch_request",
      "decode_workers",
      "read_timeout_s",
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
      "index": {
        "centroids": len(index),
        "landmarks": int(len(np.unique(index.labels))),
        "backend": index.backend,
      },
      "eta": None if math.isinf(self.recognizer.eta) else self.recognizer.eta,
      # ρ beside η when the decision checks class references too (None: it does not).
      "reference_threshold": self.recognizer.decision.reference_threshold,
      "top_k": self.recognizer.decision.top_k,
      "batching": {
        "max_batch": self.config.max_batch,
        "max_wait_ms": self.config.max_wait_ms,
        "batches": self.batcher.batches,
        "photos": self.batcher.items,
        "mean_batch_size": self.batcher.mean_batch_size,
      },
      "limits": {name: getattr(self.config, name) for name in limits},
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


def create_app(recognizer: Recognizer, config: ServeConfig = ServeConfig()) -> Starlette:
  service = RecognitionService(recognizer, config)

  async def recognize(request: Request):
    location = _query_location(request)
    ((name, data),) = await _upload_bytes(request, "image", 1)
    return JSONResponse(await service.recognize(data, name, location))

  async def recognize_batch(request: Request):
    location = _query_location(request)
    uploads = await _upload_bytes(request, "images", config.max_batch_request)
    results = await asyncio.gather(
      *(service.recognize(data, name, location) for name, data in uploads), return_exceptions=True
    )
    out = []
    for (name, _), result in zip(uploads, results):
      if isinstance(result, RequestError):  # one bad photo does not fail the others
        out.append({"file": name, **result.to_json()})
      elif isinstance(result, BaseException):
        raise result
      else:
        out.append({"file": name, **result})
    return JSONResponse({"results": out})

  async def healthz(request: Request):
    if not service.ready:
      return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ok"})

  async def info(request: Request):
    return JSONResponse(service.info())

  page = importlib.resources.files("landmark_jax.serve").joinpath("page.html").read_text()

  async def index_page(request: Request):
    return HTMLResponse(page)

  @contextlib.asynccontextmanager
  async def lifespan(app):
    await service.startup()
    yield
    await service.shutdown()

  app = Starlette(
    routes=[
      Route("/v1/recognize", recognize, methods=["POST"]),
      Route(BATCH_PATH, recognize_batch, methods=["POST"]),
      Route("/healthz", healthz),
      Route("/v1/info", info),
      Route("/", index_page),
    ],
    middleware=[
      Middleware(BodyLimit, limit_for=config.body_limit, read_timeout_s=config.read_timeout_s)
    ],
    exception_handlers=EXCEPTION_HANDLERS,
    lifespan=lifespan,
  )
  app.state.service = service
  return app
