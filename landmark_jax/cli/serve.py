"""``landmark-jax serve``: the HTTP recognition service."""

from __future__ import annotations

import socket

from landmark_jax.cli.common import (
  add_allow_other_model_arg,
  add_compilation_cache_args,
  non_negative_float,
  port,
  positive_float,
  positive_int,
  use_compilation_cache,
)
from landmark_jax.errors import UsageError, UserError


def _check_port_free(host: str, port: int) -> None:
  family = socket.AF_INET6 if ":" in host else socket.AF_INET
  with socket.socket(family, socket.SOCK_STREAM) as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
      probe.bind((host, port))
    except OSError as e:
      raise UsageError(
        f"cannot listen on {host}:{port}: {e.strerror}; choose another --port or --host"
      ) from None


def _serve(args) -> int:
  import uvicorn

  from landmark_jax.data.tables import read_landmark_table
  from landmark_jax.recognize import Recognizer
  from landmark_jax.serve.app import ServeConfig, create_app

  # Every argument and the port are checked before the model loads, not after.
  config = ServeConfig(
    **{field: getattr(args, field) for field in SERVE_OPTIONS if getattr(args, field) is not None}
  )
  _check_port_free(args.host, args.port)
  names = read_landmark_table(args.landmarks_csv, "name") if args.landmarks_csv else None
  use_compilation_cache(args)
  recognizer = Recognizer.load(
    args.checkpoint,
    args.index,
    allow_other_model=args.allow_other_model,
    names=names,
    batch_size=config.max_batch,
    radius_km=args.radius_km,
  )
  app = create_app(recognizer, config)
  try:  # here, so that a model and index that cannot answer stop the start with one line
    app.state.service.warm_up()
  except Exception as e:
    raise UserError(
      f"the model and index failed a warm-up recognition ({type(e).__name__}: {e}); not serving"
    ) from e
  if args.host not in ("127.0.0.1", "localhost", "::1"):
    print(f"warning: serving on {args.host}, reachable from other machines")
  uvicorn.run(app, host=args.host, port=args.port, log_level="info")
  return 0


# ServeConfig fields set by a command-line option of the same name.
SERVE_OPTIONS = (
  "max_batch",
  "max_wait_ms",
  "max_bytes",
  "max_batch_bytes",
  "max_pixels",
  "max_decoded_pixels",
  "decode_workers",
  "read_timeout_s",
)


def register(commands, debug) -> None:
  srv = commands.add_parser(
    "serve", parents=[debug], help="the HTTP recognition service (loopback by default)"
  )
  srv.add_argument("--checkpoint", required=True, help="a training workdir")
  srv.add_argument("--index", required=True, help="its centroid index")
  srv.add_argument(
    "--host",
    default="127.0.0.1",
    help="the address to listen on; another than loopback makes the service "
    "reachable from other machines (default: 127.0.0.1)",
  )
  srv.add_argument("--port", type=port, default=8000, help="TCP port, 1–65535 (default: 8000)")
  srv.add_argument(
    "--landmarks-csv", help="landmark_id,name,… : names (default: the index's landmarks.csv)"
  )
  srv.add_argument(
    "--radius-km",
    type=non_negative_float,
    default=50.0,
    help="with a photo location, only landmarks this close stay candidates (default: 50)",
  )
  srv.add_argument(
    "--max-batch", type=positive_int, default=16, help="photos per device call (default: 16)"
  )
  srv.add_argument(
    "--max-wait-ms",
    type=non_negative_float,
    default=5.0,
    help="how long a photo waits for others to share its device call (default: 5)",
  )
  srv.add_argument(
    "--max-bytes",
    type=positive_int,
    default=20 * 2**20,
    help="request body limit of /v1/recognize, 413 above (default: 20 MiB)",
  )
  srv.add_argument(
    "--max-batch-bytes",
    type=positive_int,
    default=64 * 2**20,
    help="request body limit of /v1/recognize:batch (default: 64 MiB)",
  )
  srv.add_argument(
    "--max-pixels",
    type=positive_int,
    default=50_000_000,
    help="images larger in their header are refused, 413 (default: 50 Mpx)",
  )
  srv.add_argument(
    "--max-decoded-pixels",
    type=positive_int,
    default=4096 * 4096,
    help="PNG/WebP decoded at full size above this are refused from their "
    "header; JPEGs decode at reduced size (~8 bytes/pixel while decoding; "
    "default: 4096²)",
  )
  srv.add_argument(
    "--decode-workers",
    type=positive_int,
    default=None,
    help="photos decoded at once (default: the cores, at most 8)",
  )
  srv.add_argument(
    "--read-timeout-s",
    type=positive_float,
    default=30.0,
    help="an upload that sends nothing for this long gets a 408 (default: 30)",
  )
  add_allow_other_model_arg(srv)
  add_compilation_cache_args(srv)
  srv.set_defaults(run=_serve)
