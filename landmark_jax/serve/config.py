"""The service's settings: batching, the limits that bound what a request may cost, and
the names it answers to. A module of its own so that the server's start-up (`shutdown`)
and the routes (`app`) read the same settings without importing each other."""

from __future__ import annotations

import dataclasses
import math
import re

from landmark_jax.data.config import ImageConfig
from landmark_jax.errors import ConfigError
from landmark_jax.runtime import usable_cpus

BATCH_PATH = "/v1/recognize:batch"


def default_decode_workers() -> int:
  """One decode per core this process may run on, at most 8."""
  return max(1, min(8, usable_cpus()))


@dataclasses.dataclass(frozen=True)
class ServeConfig:
  max_batch: int = 16  # photos per device call
  max_wait_ms: float = 5.0  # how long the first photo of a batch waits for company
  max_bytes: int = 20 * 2**20  # request body limit of /v1/recognize (413)
  max_batch_bytes: int = 64 * 2**20  # request body limit of /v1/recognize:batch (413)
  max_pixels: int = 50_000_000  # images larger in their header are refused (413)
  # Deprecated (use max_decode_bytes): when given, the decode budget is this many pixels ×
  # 8 bytes, what it promised.
  max_decoded_pixels: int | None = None
  decode_workers: int = dataclasses.field(default_factory=default_decode_workers)
  max_batch_request: int = 32  # photos in one /v1/recognize:batch request
  read_timeout_s: float = 30.0  # a body that stalls this long is answered 408
  reload_poll_s: float = 2.0  # how often the index's manifest is checked for edits; 0: never
  drain_timeout_s: float = 20.0  # on SIGTERM, how long requests in flight may still take
  # Against hostile clients and files (issue 33; docs/decisions.md says why each default).
  # Decoding: formats by magic bytes, a budget of bytes for a decode, a progressive JPEG's
  # scans (each walks the full-size coefficients whatever the draft scale).
  image_formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP")
  max_decode_bytes: int = 128 * 2**20
  max_jpeg_scans: int = 64
  # Connections: a whole request's deadline, the time to send a request's headers (and
  # the idle time of a new connection), keep-alive between requests, open connections at
  # once (None: 1000, or fewer when the process may open fewer files), request bodies
  # held at once across every connection.
  request_timeout_s: float = 60.0
  header_timeout_s: float = 10.0
  keep_alive_s: float = 5.0
  max_connections: int | None = None
  max_bytes_in_flight: int = 256 * 2**20
  # Browsers: the Host names answered (empty: loopback names and the --host), and the
  # origins of other web pages allowed to call the API (empty: none but the service's own).
  allowed_hosts: tuple[str, ...] = ()
  allowed_origins: tuple[str, ...] = ()

  def __post_init__(self):
    for name in (
      "max_batch",
      "max_bytes",
      "max_batch_bytes",
      "max_pixels",
      "decode_workers",
      "max_batch_request",
      "max_decode_bytes",
      "max_jpeg_scans",
      "max_bytes_in_flight",
    ):
      if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 1):
        raise ConfigError(f"serve: {name} must be a positive integer, got {getattr(self, name)!r}")
    if not (math.isfinite(self.max_wait_ms) and self.max_wait_ms >= 0):
      raise ConfigError(f"serve: max_wait_ms must be ≥ 0, got {self.max_wait_ms!r}")
    if self.max_decoded_pixels is not None and not (
      isinstance(self.max_decoded_pixels, int) and self.max_decoded_pixels >= 1
    ):
      raise ConfigError(
        f"serve: max_decoded_pixels must be a positive integer, got {self.max_decoded_pixels!r}"
      )
    if self.max_connections is not None and not (
      isinstance(self.max_connections, int) and self.max_connections >= 1
    ):
      raise ConfigError(
        f"serve: max_connections must be a positive integer, got {self.max_connections!r}"
      )
    if self.max_bytes_in_flight < max(self.max_bytes, self.max_batch_bytes):
      raise ConfigError(
        f"serve: max_bytes_in_flight ({self.max_bytes_in_flight}) must be at least the "
        f"largest request body allowed ({max(self.max_bytes, self.max_batch_bytes)}), "
        "or that request could never be read"
      )
    for origin in self.allowed_origins:
      # scheme://host[:port], or '*'. Never `null`: every sandboxed frame and local file
      # sends it, so allowing it would allow any page.
      if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin.strip().rstrip("/")):
        raise ConfigError(
          f"serve: allowed origin {origin!r} is not a web origin; give it as "
          "https://host[:port] (a page's scheme, name and port, no path)"
        )
    if not self.image_formats:
      raise ConfigError("serve: image_formats must name at least one format")
    for name in (
      "read_timeout_s",
      "drain_timeout_s",
      "request_timeout_s",
      "header_timeout_s",
      "keep_alive_s",
    ):
      if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
        raise ConfigError(f"serve: {name} must be > 0, got {getattr(self, name)!r}")
    if not (math.isfinite(self.reload_poll_s) and self.reload_poll_s >= 0):
      raise ConfigError(f"serve: reload_poll_s must be ≥ 0, got {self.reload_poll_s!r}")

  @property
  def decode_budget(self) -> int:
    """Bytes one decode may take: max_decode_bytes, or the deprecated max_decoded_pixels
    × 8 when that is given."""
    if self.max_decoded_pixels is not None:
      return 8 * self.max_decoded_pixels
    return self.max_decode_bytes

  def image_config(self, image: ImageConfig) -> ImageConfig:
    """The model's `image` settings with this service's decode limits."""
    return dataclasses.replace(
      image,
      max_pixels=self.max_pixels,
      max_decoded_pixels=None,
      formats=self.image_formats,
      max_decode_bytes=self.decode_budget,
      max_jpeg_scans=self.max_jpeg_scans,
    )

  def body_limit(self, path: str) -> int:
    return self.max_batch_bytes if path == BATCH_PATH else self.max_bytes
