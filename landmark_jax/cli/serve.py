"""``landmark-jax serve``: the HTTP recognition service."""

from __future__ import annotations

import socket

from landmark_jax.cli.common import non_negative_float, port, positive_int
from landmark_jax.errors import UsageError


def _check_port_free(host: str, port: int) -> None:
  family = socket.AF_INET6 if ":" in host else socket.AF_INET
  with socket.socket(family, socket.SOCK_STREAM) as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
    try:
      probe.bind((host, port))
    except OSError as e:
      raise UsageError(f"cannot listen on {host}:{port}: {e.strerror}; choose another "
                       "--port or --host") from None


def _serve(args) -> int:
  import uvicorn
  from landmark_jax.data.sources import read_landmark_table
  from landmark_jax.recognize import Recognizer
  from landmark_jax.serve.app import ServeConfig, create_app
  _check_port_free(args.host, args.port)  # before loading the model, not after
  config = ServeConfig(max_batch=args.max_batch, max_wait_ms=args.max_wait_ms,
                       max_bytes=args.max_bytes, max_pixels=args.max_pixels)
  names = read_landmark_table(args.landmarks_csv, "name") if args.landmarks_csv else None
  recognizer = Recognizer.load(args.checkpoint, args.index, names=names,
                               batch_size=config.max_batch, radius_km=args.radius_km)
  if args.host not in ("127.0.0.1", "localhost", "::1"):
    print(f"warning: serving on {args.host}, reachable from other machines")
  uvicorn.run(create_app(recognizer, config), host=args.host, port=args.port, log_level="info")
  return 0


def register(commands, debug) -> None:
  srv = commands.add_parser("serve", parents=[debug],
                            help="the HTTP recognition service (loopback by default)")
  srv.add_argument("--checkpoint", required=True, help="a training workdir")
  srv.add_argument("--index", required=True, help="its centroid index")
  srv.add_argument("--host", default="127.0.0.1")
  srv.add_argument("--port", type=port, default=8000)
  srv.add_argument("--landmarks-csv",
                   help="landmark_id,name,… : names (default: the index's landmarks.csv)")
  srv.add_argument("--radius-km", type=non_negative_float, default=50.0,
                   help="with a photo location, only landmarks this close stay candidates")
  srv.add_argument("--max-batch", type=positive_int, default=16)
  srv.add_argument("--max-wait-ms", type=non_negative_float, default=5.0)
  srv.add_argument("--max-bytes", type=positive_int, default=20 * 2**20)
  srv.add_argument("--max-pixels", type=positive_int, default=50_000_000)
  srv.set_defaults(run=_serve)
