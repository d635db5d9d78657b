"""The admin key: ``POST /v1/admin/reload`` exists only when the service has one.

The key comes from a file (``--admin-key-file``) or ``LANDMARK_JAX_ADMIN_KEY``; a request
must carry ``Authorization: Bearer <key>``, compared in constant time
(`security.bearer_matches`), so that the time of a refusal tells nothing of how much of a
guess was right. It is apart from the API key (`security.ApiKeyGate`), which the admin
route does not want: one Authorization header cannot carry two keys.
"""

from __future__ import annotations

import os

from starlette.requests import Request

from landmark_jax.serve.errors import RequestError
from landmark_jax.serve.security import bearer_matches, read_key

ADMIN_KEY_ENV = "LANDMARK_JAX_ADMIN_KEY"


def admin_key(key_file: str | os.PathLike | None) -> str | None:
  """The admin key from `key_file` (its first line), else the environment, else None."""
  return read_key(key_file, ADMIN_KEY_ENV, "--admin-key-file", "admin key")


def check_bearer(request: Request, key: str) -> None:
  """Raises 401 ``unauthorized`` unless the request carries ``Bearer <key>``."""
  if not bearer_matches(request.headers, key):
    raise RequestError(
      401,
      "unauthorized",
      "send the admin key as 'Authorization: Bearer <key>'",
      headers={"www-authenticate": "Bearer"},
    )
