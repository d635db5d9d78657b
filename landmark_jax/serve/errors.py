"""The service's errors: every 4xx/5xx is JSON ``{"error": code, "message": text, "status": n}``.

`error` is a stable machine-readable code (below); `message` is for people and may change.
Starlette's own errors (unknown route, wrong method, a malformed multipart body) and
unexpected failures are rendered the same way, so a client never has to parse plain text.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

# Codes for the statuses Starlette raises by itself.
_STATUS_CODES = {
  400: "bad_request",
  404: "not_found",
  405: "method_not_allowed",
  413: "body_too_large",
  500: "internal_error",
}
# The request cannot go on after these (its body is unread), or the service is going away:
# the connection is closed.
_CLOSE_CODES = {
  "body_too_large",
  "body_timeout",
  "shutting_down",
  # Issue 33: a request cut by its deadline, a stalled upload cut, an upload refused.
  "request_timeout",
  "upload_stalled",
  "server_busy",
}
# Refused from their headers (`security`): a body sent with them is never read.
_CLOSE_CODES |= {"unauthorized", "forbidden_host", "forbidden_origin"}


class RequestError(Exception):
  """A request the service refuses: HTTP `status`, stable `code`, and a message naming why."""

  def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
    super().__init__(message)
    self.status = status
    self.code = code
    self.message = message
    self.headers = headers or {}  # e.g. a 401's WWW-Authenticate

  def to_json(self) -> dict:
    return {"error": self.code, "message": self.message, "status": self.status}


def error_response(error: RequestError) -> JSONResponse:
  headers = {**error.headers, **({"connection": "close"} if error.code in _CLOSE_CODES else {})}
  return JSONResponse(error.to_json(), status_code=error.status, headers=headers)


async def _request_error(request: Request, error: RequestError) -> JSONResponse:
  return error_response(error)


async def _http_exception(request: Request, error: HTTPException) -> JSONResponse:
  code = _STATUS_CODES.get(error.status_code, f"http_{error.status_code}")
  message = str(error.detail)
  if error.status_code == 405 and error.headers and "Allow" in error.headers:
    message = f"{request.method} is not allowed on {request.url.path}; use {error.headers['Allow']}"
  response = error_response(RequestError(error.status_code, code, message))
  if error.headers:  # e.g. the Allow header of a 405
    response.headers.update(error.headers)
  return response


def internal_error() -> RequestError:
  return RequestError(500, "internal_error", "internal error; see the server log")


def decode_refusal(error: Exception, what: str) -> RequestError:
  """A photo refused by its decode (`data.image_guard`), with its code: 415
  `unsupported_image_format` (by its first bytes), 413 `image_too_costly` (a progressive
  JPEG's scans), 413 `image_too_large` (pixels, or bytes to decode), 400
  `undecodable_image`."""
  from landmark_jax.data import image_guard as guard

  for kind, status, code in (
    (guard.UnsupportedImageFormatError, 415, "unsupported_image_format"),
    (guard.ImageTooCostlyError, 413, "image_too_costly"),
    (guard.ImageTooLargeError, 413, "image_too_large"),
  ):
    if isinstance(error, kind):
      return RequestError(status, code, f"{what}: {error}")
  return RequestError(400, "undecodable_image", f"{what}: {error}")


async def _unexpected(request: Request, error: Exception) -> JSONResponse:
  # Starlette logs the traceback; the client gets no internals.
  return error_response(internal_error())


EXCEPTION_HANDLERS = {
  RequestError: _request_error,
  HTTPException: _http_exception,
  Exception: _unexpected,
}
