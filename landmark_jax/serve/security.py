"""The service on the web: an API key, the Host and Origin a browser sends, security headers.

Three ASGI middlewares, outermost first in `app.create_app`:

- `SecurityHeaders` on every response, errors and 500s included: no sniffing, no framing,
  no referrer, no caching of answers, and a Content-Security-Policy; the upload page's
  allows only its own inline script and style, by their sha256 (`page_policy`).
- `HostOriginGate`: a Host the service does not answer to is refused (403
  ``forbidden_host``): a DNS-rebinding page, whose own name now resolves to this service,
  sends its own name. A request from another web page is refused (403
  ``forbidden_origin``) unless that page's origin is allowed: a multipart POST needs no CORS
  preflight, so without this any page could make a visitor's browser upload to a local
  service.
- `ApiKeyGate`: with a key, every route but ``/healthz``, the upload page and the admin
  route (its own key) wants ``Authorization: Bearer <key>``, else 401 ``unauthorized``.

All three answer from the request's headers, before any of its body is read.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html.parser
import ipaddress
import os
import pathlib

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from landmark_jax.errors import UsageError
from landmark_jax.serve.errors import RequestError, error_response, internal_error

API_KEY_ENV = "LANDMARK_JAX_API_KEY"
MIN_KEY_LENGTH = 16  # a short key is guessed; `openssl rand -hex 32` gives 64 characters
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
# Addresses that mean "every interface": the machine is reached by any of its addresses.
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"
# What every answer carries (`SecurityHeaders`; the protocol's own answers too), but the
# page's policy, which names the page's inline blocks.
COMMON_HEADERS = (
  (b"x-content-type-options", b"nosniff"),
  (b"x-frame-options", b"DENY"),
  (b"referrer-policy", b"no-referrer"),
)


def read_key(key_file: str | os.PathLike | None, env: str, flag: str, what: str) -> str | None:
  """A key from `key_file` (its first line, named `flag` in errors), else the environment
  variable `env`, else None; at least `MIN_KEY_LENGTH` characters."""
  if key_file is not None:
    try:
      text = pathlib.Path(key_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
      raise UsageError(f"{flag} {key_file}: cannot read it ({e})") from None
    key, origin = (text.splitlines() or [""])[0].strip(), f"{flag} {key_file}"
  elif os.environ.get(env):
    key, origin = os.environ[env].strip(), env
  else:
    return None
  if len(key) < MIN_KEY_LENGTH:
    raise UsageError(
      f"{origin}: the {what} has {len(key)} characters; use at least {MIN_KEY_LENGTH} "
      "random ones (e.g. `openssl rand -hex 32`)"
    )
  return key


def api_key(key_file: str | os.PathLike | None) -> str | None:
  """``--api-key-file`` else ``LANDMARK_JAX_API_KEY`` else None (no key wanted)."""
  return read_key(key_file, API_KEY_ENV, "--api-key-file", "API key")


def bearer_matches(headers, key: str) -> bool:
  """Whether `headers` (a `Headers` mapping) carry ``Authorization: Bearer <key>``. The
  digests are compared, not the keys: equal lengths, so a refusal's time tells neither how
  much of a guess was right nor how long the key is."""
  scheme, _, given = headers.get("authorization", "").partition(" ")
  return scheme.lower() == "bearer" and hmac.compare_digest(
    hashlib.sha256(given.strip().encode("utf-8")).digest(),
    hashlib.sha256(key.encode("utf-8")).digest(),
  )


def _header(scope, name: bytes) -> str | None:
  for key, value in scope["headers"]:
    if key == name:
      return value.decode("latin-1")
  return None


class _Headers:
  """The few lookups the gates need, without building a Starlette `Request`."""

  def __init__(self, scope):
    self.scope = scope

  def get(self, name: str, default: str = "") -> str:
    value = _header(self.scope, name.encode("latin-1"))
    return default if value is None else value


class ApiKeyGate:
  """ASGI middleware: requests on any path but `public_paths` must carry the key."""

  def __init__(self, app, key: str | None, public_paths: tuple[str, ...]):
    self.app = app
    self.key = key
    self.public_paths = frozenset(public_paths)

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http" or self.key is None or scope["path"] in self.public_paths:
      return await self.app(scope, receive, send)
    headers = _Headers(scope)
    if not bearer_matches(headers, self.key):
      sent = "a wrong key" if headers.get("authorization") else "no key"
      error = RequestError(
        401,
        "unauthorized",
        f"this service wants an API key, and the request sent {sent}: send "
        "'Authorization: Bearer <key>'",
        headers={"www-authenticate": 'Bearer realm="landmark_jax"'},
      )
      return await error_response(error)(scope, receive, send)
    await self.app(scope, receive, send)


def cors_middleware(allowed_origins) -> list[Middleware]:
  """CORS for the web pages of `allowed_origins` (none: nothing, the service's own page needs
  none): their browsers may then read the answers, and send the key (a preflight, which
  carries no key, is answered before `ApiKeyGate`)."""
  if not allowed_origins:
    return []
  return [
    Middleware(
      CORSMiddleware,
      allow_origins=[o.strip().rstrip("/") for o in allowed_origins],
      allow_methods=["GET", "POST"],
      allow_headers=["authorization", "content-type"],
      max_age=600,
    )
  ]


def host_name(authority: str) -> str:
  """``example.org:8000`` → ``example.org``; ``[::1]:8000`` → ``::1``; lower case."""
  authority = authority.strip().lower()
  if authority.startswith("["):
    return authority[1:].partition("]")[0]
  name, colon, port = authority.rpartition(":")
  if colon and port.isdigit() and ":" not in name:
    return name.rstrip(".")
  return authority.rstrip(".")


def _is_ip(name: str) -> bool:
  try:
    ipaddress.ip_address(name)
  except ValueError:
    return False
  return True


class HostOriginGate:
  """ASGI middleware: the Host must be one the service answers to, and a request from a web
  page must come from the service's own page or an allowed origin.

  The loopback names, `listen_host` and `allowed_hosts` (``--allowed-host``; ``*``: any)
  are answered, whatever the port: a loopback name cannot point a browser elsewhere. With
  a wildcard `listen_host` (0.0.0.0) any IP address is answered too: an address cannot be
  rebound, only a name can.
  """

  def __init__(self, app, allowed_hosts=(), allowed_origins=(), listen_host: str | None = None):
    self.app = app
    names = {host_name(h) for h in (*LOOPBACK_NAMES, *allowed_hosts)}
    self.any_host = "*" in names
    self.any_ip = listen_host is not None and listen_host in WILDCARD_HOSTS
    if listen_host is not None and not self.any_ip:
      names.add(host_name(listen_host if ":" not in listen_host else f"[{listen_host}]"))
    self.hosts = frozenset(names)
    self.origins = frozenset(o.strip().rstrip("/").lower() for o in allowed_origins)

  def host_allowed(self, host: str | None) -> bool:
    if host is None or self.any_host:  # no Host: HTTP/1.0, never a browser
      return True
    name = host_name(host)
    return name in self.hosts or (self.any_ip and _is_ip(name))

  def origin_allowed(self, scope, origin: str | None, host: str | None) -> bool:
    if origin is None:
      # No Origin: a browser leaves it out only on same-origin GETs and navigations; a
      # cross-site request without one is a no-cors subresource or a navigation, and only
      # a navigation (a link to the page) has any business here.
      site = _header(scope, b"sec-fetch-site")
      navigation = _header(scope, b"sec-fetch-mode") == "navigate"
      return site != "cross-site" or (navigation and scope["method"] in ("GET", "HEAD"))
    origin = origin.strip().rstrip("/").lower()
    if "*" in self.origins or origin in self.origins:
      return True
    # The service's own page: the scheme is not compared, since behind a TLS proxy the
    # service itself is spoken to in plain HTTP.
    _, sep, authority = origin.partition("://")
    return bool(sep) and host is not None and authority == host.strip().lower()

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    host, origin = _header(scope, b"host"), _header(scope, b"origin")
    if not self.host_allowed(host):
      error = RequestError(
        403,
        "forbidden_host",
        f"this service does not answer to the name {host_name(host)!r}; if it is this "
        f"service's, start it with --allowed-host {host_name(host)} (a browser sent here "
        "under another name may be a DNS-rebinding attack)",
      )
      return await error_response(error)(scope, receive, send)
    if not self.origin_allowed(scope, origin, host):
      if origin is not None and origin.strip().lower() == "null":
        # Never to be allowed: any sandboxed frame or local file sends `null`.
        message = (
          "a sandboxed page or a local file (Origin: null) may not call this service; "
          "serve the page from a web origin and allow that with --allowed-origin"
        )
      else:
        message = (
          f"a web page from {origin or 'another site'} may not call this service; start the "
          f"service with --allowed-origin {origin or 'ORIGIN'} to allow that page"
        )
      error = RequestError(403, "forbidden_origin", message)
      return await error_response(error)(scope, receive, send)
    await self.app(scope, receive, send)


class _InlineBlocks(html.parser.HTMLParser):
  """The text of each inline ``<script>`` and ``<style>`` element, as a browser hashes it."""

  def __init__(self):
    super().__init__(convert_charrefs=False)
    self.blocks: list[tuple[str, str]] = []
    self._open: tuple[str, list[str]] | None = None

  def handle_starttag(self, tag, attrs):
    if tag in ("script", "style") and not (tag == "script" and dict(attrs).get("src")):
      self._open = (tag, [])

  def handle_data(self, data):
    if self._open is not None:
      self._open[1].append(data)

  def handle_endtag(self, tag):
    if self._open is not None and self._open[0] == tag:
      self.blocks.append((tag, "".join(self._open[1])))
      self._open = None


def _sha256_source(text: str) -> str:
  return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def page_policy(page: str) -> str:
  """The upload page's Content-Security-Policy: its own inline script and style (by their
  hashes, taken from `page` as served, so an edit of the page never needs an edit here),
  its own API, thumbnails from the photos chosen, and nothing else."""
  parser = _InlineBlocks()
  parser.feed(page)
  parser.close()
  sources = {
    tag: " ".join(_sha256_source(text) for kind, text in parser.blocks if kind == tag) or "'none'"
    for tag in ("script", "style")
  }
  return (
    f"default-src 'none'; script-src {sources['script']}; style-src {sources['style']}; "
    "img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
  )


class SecurityHeaders:
  """ASGI middleware, outermost: the headers every response gets.

  Starlette answers an unexpected exception outside every middleware, without them; so
  such an exception is answered here, with them, before Starlette sees it.
  """

  def __init__(self, app, page_csp: str):
    self.app = app
    self.page_csp = page_csp.encode("latin-1")

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    answers = scope["path"].startswith("/v1/")
    started = False

    async def send_with_headers(message):
      nonlocal started
      if message["type"] == "http.response.start":
        started = True
        headers = list(message.get("headers", []))
        present = {name.lower() for name, _ in headers}
        html_page = any(
          n.lower() == b"content-type" and v.startswith(b"text/html") for n, v in headers
        )
        wanted = [
          *COMMON_HEADERS,
          (b"content-security-policy", self.page_csp if html_page else JSON_POLICY.encode()),
        ]
        if answers:  # answers name what a user photographed: no cache keeps them
          wanted.append((b"cache-control", b"no-store"))
        headers += [(name, value) for name, value in wanted if name not in present]
        message = {**message, "headers": headers}
      await send(message)

    try:
      await self.app(scope, receive, send_with_headers)
    except RequestError as error:  # a refusal raised outside a route, e.g. by a middleware
      if started:
        raise
      await error_response(error)(scope, receive, send_with_headers)
    except Exception:
      if not started:
        await error_response(internal_error())(scope, receive, send_with_headers)
      raise  # for the server's log
