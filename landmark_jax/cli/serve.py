"""``landmark-jax serve``: the HTTP recognition service."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import pathlib
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
from landmark_jax.cli.export import add_model_and_index_args
from landmark_jax.cli.recognize import add_verify_arg
from landmark_jax.errors import UsageError, UserError


def bundle_index_dir(bundle) -> pathlib.Path:
  from landmark_jax.bundle.manifest import INDEX_DIR

  return pathlib.Path(bundle) / INDEX_DIR


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
  from landmark_jax.bundle import check_model_args
  from landmark_jax.data.tables import read_landmark_table
  from landmark_jax.recognize import Recognizer
  from landmark_jax.serve.admin import admin_key
  from landmark_jax.serve.app import create_app
  from landmark_jax.serve.config import ServeConfig
  from landmark_jax.serve.reload import IndexSource, read_version
  from landmark_jax.serve.security import api_key
  from landmark_jax.serve.shutdown import serve_until_drained

  # Every argument and the port are checked before the model loads, not after.
  check_model_args(args.checkpoint, args.index, args.bundle)
  if args.max_decoded_pixels is not None:
    if args.max_decode_bytes is not None:
      raise UsageError("give --max-decode-mib, or the deprecated --max-decoded-pixels, not both")
    print("warning: --max-decoded-pixels is deprecated; use --max-decode-mib (8 bytes a pixel)")
  config = ServeConfig(
    **{
      field: tuple(value) if isinstance(value, list) else value  # repeated options
      for field in (f.name for f in dataclasses.fields(ServeConfig))
      # Every field with a command-line option of the same name, when given.
      if (value := getattr(args, field, None)) is not None
    }
  )
  _check_port_free(args.host, args.port)
  key = admin_key(args.admin_key_file)
  client_key = api_key(args.api_key_file)
  names = read_landmark_table(args.landmarks_csv, "name") if args.landmarks_csv else None
  use_compilation_cache(args)
  # A bundle's index is its `index/` folder, which `add-landmarks --bundle` and the other
  # edit commands save as they save any index: served live the same way.
  index_dir = pathlib.Path(args.index) if args.index else bundle_index_dir(args.bundle)
  try:  # read before the index loads: an edit meanwhile is then seen as one (`IndexSource`)
    version = read_version(index_dir)
  except Exception:  # no readable index: the load below says so in its own words
    version = None
  source = IndexSource(
    index_dir,
    version,
    {"names": names, "radius_km": args.radius_km},
    allow_other_model=args.allow_other_model,
    verify=args.verify,
  )
  recognizer = Recognizer.load(
    *([args.bundle] if args.bundle else [args.checkpoint, args.index]),
    allow_other_model=args.allow_other_model,
    names=names,
    batch_size=config.max_batch,
    radius_km=args.radius_km,
    verify=args.verify,
  )
  app = create_app(
    recognizer, config, source=source, admin_key=key, api_key=client_key, listen_host=args.host
  )
  try:  # here, so that a model and index that cannot answer stop the start with one line
    app.state.service.warm_up()
  except Exception as e:
    raise UserError(
      f"the model and index failed a warm-up recognition ({type(e).__name__}: {e}); not serving"
    ) from e
  if args.host not in ("127.0.0.1", "localhost", "::1"):
    print(f"warning: serving on {args.host}, reachable from other machines")
    if client_key is None:
      print("warning: no --api-key-file: whoever reaches the port may use the service")
  # Reloads and the drain say what they do at INFO (a refused reload: a warning).
  logging.getLogger("landmark_jax.serve").setLevel(logging.INFO)
  if not serve_until_drained(app, args.host, args.port):
    raise UserError(f"the service did not start on {args.host}:{args.port} (see above)")
  return 0


def register(commands, debug) -> None:
  srv = commands.add_parser(
    "serve", parents=[debug], help="the HTTP recognition service (loopback by default)"
  )
  add_model_and_index_args(srv)
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
    metavar="BYTES",
    help="request body limit of /v1/recognize in bytes, 413 above (default: 20 MiB, 20971520)",
  )
  srv.add_argument(
    "--max-batch-bytes",
    type=positive_int,
    default=64 * 2**20,
    metavar="BYTES",
    help="request body limit of /v1/recognize:batch in bytes (default: 64 MiB, 67108864)",
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
    default=None,
    help="deprecated, use --max-decode-mib: a decode budget of this many pixels × 8 bytes",
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
  srv.add_argument(
    "--reload-poll-s",
    type=non_negative_float,
    default=2.0,
    help="how often the index's manifest is checked for edits (add-landmarks, calibrate, …), "
    "which are then served without a restart; 0: only on SIGHUP or the admin route "
    "(default: 2)",
  )
  srv.add_argument(
    "--admin-key-file",
    help="a file whose first line is the admin key (else $LANDMARK_JAX_ADMIN_KEY): "
    "POST /v1/admin/reload exists only with a key, and wants 'Authorization: Bearer <key>' "
    "(default: no admin route)",
  )
  srv.add_argument(
    "--api-key-file",
    help="a file whose first line is the API key (else $LANDMARK_JAX_API_KEY; at least 16 "
    "characters): every route but /healthz and the upload page then wants "
    "'Authorization: Bearer <key>', else 401 (default: no key)",
  )
  add_hostile_client_args(srv)
  srv.add_argument(
    "--drain-timeout-s",
    type=positive_float,
    default=20.0,
    help="on SIGTERM, new requests get 503 and those in flight get this long to finish "
    "before the service exits (default: 20)",
  )
  add_allow_other_model_arg(srv)
  add_verify_arg(srv)
  add_compilation_cache_args(srv)
  srv.set_defaults(run=_serve)


def image_formats(text: str) -> tuple[str, ...]:
  """`--image-formats JPEG,PNG,WEBP`: Pillow's format names, upper case."""
  from PIL import Image

  Image.init()
  names = tuple(dict.fromkeys(n.strip().upper() for n in text.split(",") if n.strip()))
  unknown = [n for n in names if n not in Image.OPEN]
  if not names or unknown:
    raise argparse.ArgumentTypeError(
      f"unknown image format(s) {', '.join(unknown) or text!r}; Pillow reads "
      + ", ".join(sorted(Image.OPEN))
    )
  return names


def mebibytes(text: str) -> int:
  return positive_int(text) * 2**20


def add_hostile_client_args(srv) -> None:
  """The limits that keep the service answering hostile clients and files (issue 33)."""
  srv.add_argument(
    "--image-formats",
    type=image_formats,
    default=None,
    help="formats decoded, recognised by their first bytes, whatever the Content-Type; "
    "others get 415 (default: JPEG,PNG,WEBP)",
  )
  srv.add_argument(
    "--max-decode-mib",
    dest="max_decode_bytes",
    metavar="MIB",
    type=mebibytes,
    default=None,
    help="memory one decode may take, counted from the header for the image's mode and "
    "size before decoding; 413 above (default: 128)",
  )
  srv.add_argument(
    "--max-jpeg-scans",
    type=positive_int,
    default=None,
    help="scans of a progressive JPEG, counted before decoding; 413 above (default: 64)",
  )
  srv.add_argument(
    "--request-timeout-s",
    type=positive_float,
    default=None,
    help="a whole request, upload to answer, gets this long; 408 after (default: 60)",
  )
  srv.add_argument(
    "--header-timeout-s",
    type=positive_float,
    default=None,
    help="a connection must send a request's headers this soon after it opens or after "
    "its last answer, or it is closed (default: 10)",
  )
  srv.add_argument(
    "--keep-alive-s",
    type=positive_float,
    default=None,
    help="an idle kept-alive connection is closed after this long (default: 5)",
  )
  srv.add_argument(
    "--max-connections",
    type=positive_int,
    default=None,
    help="connections open at once; past it the oldest still sending headers is closed "
    "(default: 1000, or fewer when the process may open fewer files)",
  )
  srv.add_argument(
    "--max-mib-in-flight",
    dest="max_bytes_in_flight",
    metavar="MIB",
    type=mebibytes,
    default=None,
    help="request bodies held at once, every connection together; a stalled upload is cut "
    "first, else 503 (default: 256)",
  )
  srv.add_argument(
    "--allowed-host",
    dest="allowed_hosts",
    action="append",
    default=None,
    help="a Host name the service answers besides localhost, 127.0.0.1, ::1 and --host "
    "(repeat; '*': any). Others get 403, which stops DNS rebinding",
  )
  srv.add_argument(
    "--allowed-origin",
    dest="allowed_origins",
    action="append",
    default=None,
    help="a web page origin (https://example.org) allowed to call the API from a browser "
    "(repeat); default: only the service's own page",
  )
