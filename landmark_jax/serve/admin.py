"""The admin key: ``POST /v1/admin/reload`` exists only when the service has one.

The key comes from a file (``--admin-key-file``) or ``LANDMARK_JAX_ADMIN_KEY``; a request
must carry ``Authorization: Bearer <key>``, compared in constant time (`hmac.compare_digest`),
so that the time of a refusal tells nothing of how much of a guess was right.
"""

from __future__ import annotations

import hmac
import os
import pathlib

from starlette.requests import Request

from landmark_jax.errors import UsageError
from landmark_jax.serve.errors import RequestError

ADMIN_KEY_ENV = "LANDMARK_JAX_ADMIN_KEY"
MIN_KEY_LENGTH = 16  # a short key is guessed; `openssl rand -hex 32` gives 64 characters


def admin_key(key_file: str | os.PathLike | None) -> str | None:
  """The admin key from `key_file` (its first line), else the environment, else None."""
  if key_file is not None:
    try:
      text = pathlib.Path(key_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
      raise UsageError(f"--admin-key-file {key_file}: cannot read it ({e})") from None
    key, origin = (text.splitlines() or [""])[0].strip(), f"--admin-key-file {key_file}"
  elif os.environ.get(ADMIN_KEY_ENV):
    key, origin = os.environ[ADMIN_KEY_ENV].strip(), ADMIN_KEY_ENV
  else:
    return None
  if len(key) < MIN_KEY_LENGTH:
    raise UsageError(
      f"{origin}: the admin key has {len(key)} characters; use at least {MIN_KEY_LENGTH} "
      "random ones (e.g. `openssl rand -hex 32`)"
    )
  return key


def check_bearer(request: Request, key: str) -> None:
  """Raises 401 ``unauthorized`` unless the request carries ``Bearer <key>``."""
  scheme, _, given = request.headers.get("authorization", "").partition(" ")
  if scheme.lower() != "bearer" or not hmac.compare_digest(
    given.strip().encode("utf-8"), key.encode("utf-8")
  ):
    raise RequestError(
      401,
      "unauthorized",
      "send the admin key as 'Authorization: Bearer <key>'",
      headers={"www-authenticate": "Bearer"},
    )
