"""`landmark-jax serve`: the recognition service (Starlette on uvicorn).

    POST /v1/recognize         one photo: multipart field "image", or the raw JPEG/PNG/WebP
                               body with its Content-Type; optional ?lat=&lon= (else the
                               photo's EXIF GPS) restricts candidates to nearby landmarks
    POST /v1/recognize:batch   several photos: multipart fields "images"
    GET  /healthz              liveness
    GET  /v1/info              model, index size, η, version, batching figures
    GET  /                     an upload page for people

Photos are decoded in worker threads; concurrent requests are batched onto the device by
`Batcher`, whose batch sizes are compiled at start-up. Bad input gets a 4xx JSON error that
names the problem, and the service keeps serving.
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
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

import landmark_jax
from landmark_jax.data.transforms import ImageDecodeError
from landmark_jax.geo import Location
from landmark_jax.recognize import Photo, Recognizer, decode_photo
from landmark_jax.serve.batcher import Batcher

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")


@dataclasses.dataclass(frozen=True)
class ServeConfig:
  max_batch: int = 16  # photos per device call
  max_wait_ms: float = 5.0  # how long the first photo of a batch waits for company
  max_bytes: int = 20 * 2**20  # larger uploads are refused (413)
  max_pixels: int = 50_000_000  # larger images are refused from their header (413)
  max_batch_request: int = 32  # photos in one /v1/recognize:batch request


class RequestError(Exception):
  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status
    self.message = message


def _error(status: int, message: str) -> JSONResponse:
  return JSONResponse({"error": message, "status": status}, status_code=status)


class RecognitionService:
  """The state behind the routes: the recognizer, its limits and the batcher."""

  def __init__(self, recognizer: Recognizer, config: ServeConfig = ServeConfig()):
    self.recognizer = recognizer
    self.config = config
    self.image_config = dataclasses.replace(recognizer.photos.image_config,
                                            max_pixels=config.max_pixels)
    self.batcher = Batcher(self._run_batch, config.max_batch, config.max_wait_ms / 1000)

  def _run_batch(self, photos: list[Photo]) -> list:
    return self.recognizer.recognize_photos(photos)

  async def startup(self) -> None:
    # Compile every batch size now: no request pays for compilation.
    await asyncio.to_thread(self.recognizer.photos.warm_up)
    await self.batcher.start()

  async def shutdown(self) -> None:
    await self.batcher.stop()

  def _decode(self, data: bytes, what: str, location: Location | None) -> Photo:
    if not data:
      raise RequestError(400, f"{what}: empty body (0 bytes); send a JPEG, PNG or WebP photo")
    if len(data) > self.config.max_bytes:
      raise RequestError(413, f"{what}: {len(data):,} bytes exceeds the limit of "
                              f"{self.config.max_bytes:,}")
    try:
      return decode_photo(data, self.image_config, location=location)
    except ImageDecodeError as e:
      status = 413 if "exceeds the limit" in str(e) or "decompression bomb" in str(e) else 400
      raise RequestError(status, f"{what}: {e}") from None

  async def recognize(self, data: bytes, what: str, location: Location | None = None
                      ) -> dict[str, Any]:
    """A photo's answer; its location is the caller's, else its EXIF GPS, else unknown."""
    start = time.perf_counter()
    photo = await asyncio.to_thread(self._decode, data, what, location)
    decoded = time.perf_counter()
    prediction, batch_size = await self.batcher.submit(photo)
    done = time.perf_counter()
    return {**prediction.to_json(),
            "timing_ms": {"decode": 1000 * (decoded - start),
                          "recognize": 1000 * (done - decoded), "total": 1000 * (done - start)},
            "batch_size": batch_size}

  def info(self) -> dict[str, Any]:
    trained = self.recognizer.trained
    index = self.recognizer.index
    return {"version": landmark_jax.__version__,
            "model": {"backbone": trained.config.model.backbone,
                      "embedding_dim": trained.model.embedding_dim,
                      "classes": trained.model.num_classes, "checkpoint": trained.checkpoint_id},
            "index": {"centroids": len(index), "landmarks": int(len(np.unique(index.labels))),
                      "backend": index.backend},
            "eta": None if math.isinf(self.recognizer.eta) else self.recognizer.eta,
            "top_k": self.recognizer.top_k,
            "batching": {"max_batch": self.config.max_batch, "max_wait_ms": self.config.max_wait_ms,
                         "batches": self.batcher.batches, "photos": self.batcher.items,
                         "mean_batch_size": self.batcher.mean_batch_size},
            "limits": {"max_bytes": self.config.max_bytes, "max_pixels": self.config.max_pixels}}


async def _upload_bytes(request: Request, field: str, limit: int) -> list[tuple[str, bytes]]:
  content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
  if content_type == "multipart/form-data":
    form = await request.form(max_files=limit, max_fields=limit + 8)
    uploads = [u for u in form.getlist(field) if hasattr(u, "read")]
    if not uploads:
      raise RequestError(400, f"multipart body has no file field {field!r}")
    if len(uploads) > limit:
      raise RequestError(413, f"{len(uploads)} photos in one request; the limit is {limit}")
    return [(u.filename or f"{field}[{i}]", await u.read()) for i, u in enumerate(uploads)]
  if content_type in IMAGE_TYPES:
    return [("body", await request.body())]
  if not content_type:
    raise RequestError(415, "missing Content-Type: send multipart/form-data or image/jpeg, "
                            "image/png, image/webp")
  raise RequestError(415, f"unsupported Content-Type {content_type!r}: send multipart/form-data "
                          "or image/jpeg, image/png, image/webp")


def _query_location(request: Request) -> Location | None:
  """``?lat=..&lon=..`` (both or neither; degrees)."""
  lat, lon = request.query_params.get("lat"), request.query_params.get("lon")
  if lat is None and lon is None:
    return None
  try:
    location = Location(float(lat), float(lon))
  except (TypeError, ValueError):
    raise RequestError(400, "lat and lon must both be given, in decimal degrees") from None
  if not (-90 <= location.latitude <= 90 and -180 <= location.longitude <= 180):
    raise RequestError(400, f"location out of range: lat {lat}, lon {lon}")
  return location


def create_app(recognizer: Recognizer, config: ServeConfig = ServeConfig()) -> Starlette:
  service = RecognitionService(recognizer, config)

  async def recognize(request: Request):
    try:
      location = _query_location(request)
      (name, data), = await _upload_bytes(request, "image", 1)
      return JSONResponse(await service.recognize(data, name, location))
    except RequestError as e:
      return _error(e.status, e.message)

  async def recognize_batch(request: Request):
    try:
      uploads = await _upload_bytes(request, "images", config.max_batch_request)
      results = await asyncio.gather(
          *(service.recognize(data, name) for name, data in uploads), return_exceptions=True)
      out = []
      for (name, _), result in zip(uploads, results):
        if isinstance(result, RequestError):
          out.append({"file": name, "error": result.message, "status": result.status})
        elif isinstance(result, BaseException):
          raise result
        else:
          out.append({"file": name, **result})
      return JSONResponse({"results": out})
    except RequestError as e:
      return _error(e.status, e.message)

  async def healthz(request: Request):
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
      routes=[Route("/v1/recognize", recognize, methods=["POST"]),
              Route("/v1/recognize:batch", recognize_batch, methods=["POST"]),
              Route("/healthz", healthz), Route("/v1/info", info), Route("/", index_page)],
      lifespan=lifespan)
  app.state.service = service
  return app
