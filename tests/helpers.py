"""Plain helpers shared by several test modules: photos made or found for a test.

Test modules import helpers from here (and fixtures from a conftest), never from one another:
a test module is free to change without breaking another one, and `pytest tests/x` collects
nothing it does not run.
"""

import csv
import io
import pathlib
import socket
import struct
import zlib
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from landmark_jax.data.labels import LabelMap
from landmark_jax.index import CentroidIndex, IndexConfig
from landmark_jax.models import get_backbone

# The session's tiny model (conftest's `tiny_trained`): `tiny_cpu` at half the demo's 30
# epochs. The tests need a model that learned (held-out views far above chance, held-out
# non-landmarks among the non-landmark class), not the demo's figures, and this halves the
# session's longest setup (3.8 → ~2 min on 2 cores).
TINY_TRAINED_OVERRIDES = ("num_epochs=15",)

# The session's curriculum run (conftest's `curriculum_run`), the reference of the resume
# and multi-host tests: the curriculum on, num_epochs=2, so stage 0 (4 landmarks, 63 + 240
# images) is steps 1–9 and stage 1 (366 images) begins at step 10; the run stops at 12.
# Checkpoints at 2, 4, 6, 8, 9 (the transition, with an empty data position) and 10, 12.
# The learning rates are a tenth of tiny_cpu's: at 0.1, training from scratch on batches of
# 32 is chaotic, so a float32 rounding difference of 1e-7 at step 1 (an all-reduce adding
# in another order) grows to 1e-3 by step 12 (measured); at 0.01 runs that differ only in
# rounding stay within 6e-6, while one wrong batch moves parameters by ~1e-3.
CURRICULUM_RUN = (
  "num_epochs=2",
  "curriculum.enabled=True",
  "max_steps=12",
  "checkpoint_every_steps=2",
  "async_checkpointing=False",
  "log_every_steps=1",
  "optim.lr_backbone=0.01",
  "optim.lr_embedding=0.01",
  "optim.lr_classifier=0.01",
)


# Encoded photos -------------------------------------------------------------------------


def encode(image, fmt="JPEG", **kwargs):
  """A PIL image as the bytes of a `fmt` file."""
  buffer = io.BytesIO()
  image.save(buffer, format=fmt, **kwargs)
  return buffer.getvalue()


def gradient_image(width=300, height=200):
  """Red rises left to right, green top to bottom: every crop and resample is visible."""
  x = np.linspace(0, 255, width, dtype=np.float32)
  y = np.linspace(0, 255, height, dtype=np.float32)
  pixels = np.stack(
    [
      np.broadcast_to(x, (height, width)),
      np.broadcast_to(y[:, None], (height, width)),
      np.full((height, width), 128, np.float32),
    ],
    axis=-1,
  )
  return Image.fromarray(pixels.astype(np.uint8))


def png_chunk(kind: bytes, payload: bytes) -> bytes:
  return (
    struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
  )


def huge_png_header(width=100_000, height=100_000) -> bytes:
  """A well-formed PNG whose header claims `width`×`height` but carries almost no pixels:
  decoding it would allocate 30 GB."""
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  return (
    b"\x89PNG\r\n\x1a\n"
    + png_chunk(b"IHDR", ihdr)
    + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    + png_chunk(b"IEND", b"")
  )


def exif_gps_jpeg(*, latitude_type: int = 5) -> bytes:
  """A 16×8 JPEG whose EXIF says "rotate 90°" (orientation 6) and holds a GPS latitude
  entry. `latitude_type` 5 (RATIONAL) is the valid one; 2 (ASCII) is the malformed entry
  that makes Pillow's `ImageOps.exif_transpose` raise TypeError when it rewrites the EXIF,
  while the pixels are fine."""
  exif = Image.Exif()
  exif[0x0112] = 6
  exif[0x8825] = {1: "N", 2: (1.0, 2.0, 3.0)}
  data = encode(gradient_image(16, 8), exif=exif)
  tiff = data.find(b"MM\x00*")
  order = ">"
  if tiff < 0:
    tiff, order = data.find(b"II*\x00"), "<"
  entry = data.find(struct.pack(order + "HH", 2, 5), tiff)  # GPSLatitude, RATIONAL
  return data[:entry] + struct.pack(order + "HH", 2, latitude_type) + data[entry + 4 :]


def unknown_dds() -> bytes:
  """A DDS file (a format Pillow opens) with a pixel format it does not implement: its
  decoder raises NotImplementedError, not one of the usual decode errors."""
  header = struct.pack("<7I", 124, 0x1007, 4, 4, 16, 0, 1) + b"\0" * 44
  pixel_format = struct.pack("<2I4s5I", 32, 0x4, b"ZZZZ", 0, 0, 0, 0, 0)
  return b"DDS " + header + pixel_format + struct.pack("<5I", 0x1000, 0, 0, 0, 0) + b"\0" * 64


def write_bad_folder(root):
  """An image folder with landmark 7: 6 good photos and 5 unreadable files (truncated,
  empty, text named .jpg, a decompression bomb, a DDS named .jpg whose decoder raises
  NotImplementedError)."""
  good = root / "7"
  good.mkdir(parents=True)
  for i in range(6):
    gradient_image(80 + 10 * i, 60).save(good / f"good{i}.jpg")
  (good / "truncated.jpg").write_bytes(encode(gradient_image(400, 300), quality=95)[:3000])
  (good / "empty.jpg").write_bytes(b"")
  (good / "text.jpg").write_text("this is a text file named .jpg\n")
  (good / "bomb.png").write_bytes(huge_png_header())
  (good / "odd.jpg").write_bytes(unknown_dds())


# EXIF GPS ------------------------------------------------------------------------------


def dms(value):
  """Decimal degrees → EXIF's (degrees, minutes, seconds) rationals."""
  value = abs(value)
  degrees = int(value)
  minutes = int((value - degrees) * 60)
  seconds = Fraction((value - degrees - minutes / 60) * 3600).limit_denominator(10**9)
  return (Fraction(degrees), Fraction(minutes), seconds)


def with_gps(photo_bytes, latitude, longitude, refs=None):
  """The photo re-encoded as JPEG with EXIF GPS tags written by Pillow (`refs`: the N/S, E/W
  references, to write malformed ones)."""
  image = Image.open(io.BytesIO(photo_bytes))
  exif = image.getexif()
  gps = exif.get_ifd(0x8825)
  gps.clear()
  gps[1], gps[3] = refs or ("N" if latitude >= 0 else "S", "E" if longitude >= 0 else "W")
  gps[2], gps[4] = dms(latitude), dms(longitude)
  out = io.BytesIO()
  image.convert("RGB").save(out, format="JPEG", exif=exif, quality=90)
  return out.getvalue()


# landmarks-mini ------------------------------------------------------------------------


def mini_photos(landmarks_mini, n=3) -> list[pathlib.Path]:
  """The first `n` landmark photos of landmarks-mini's train.csv."""
  rows = list(csv.DictReader(open(landmarks_mini / "train.csv")))[:n]
  return [
    landmarks_mini / "images" / r["id"][0] / r["id"][1] / r["id"][2] / f"{r['id']}.jpg"
    for r in rows
  ]


# Models and indexes --------------------------------------------------------------------


def count_params(name: str) -> int:
  """Parameters of a backbone (batch statistics excluded), from shapes alone."""
  backbone = get_backbone(name)
  shapes = jax.eval_shape(lambda: backbone.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3))))
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes["params"]))


def clustered_vectors(n, dim=512, clusters=1000, noise=0.5, seed=0):
  """`n` unit vectors around `clusters` random centers, and the generator that made them."""
  rng = np.random.default_rng(seed)
  centers = rng.standard_normal((clusters, dim)).astype(np.float32)
  x = centers[rng.integers(0, clusters, n)] + noise * rng.standard_normal((n, dim)).astype(
    np.float32
  )
  return x / np.linalg.norm(x, axis=1, keepdims=True), rng


def small_index(backend="auto", n=500, dim=32, seed=1):
  """A built `CentroidIndex` of `n` centroids, 10 per landmark, with sizes, a label map and
  a checkpoint in its metadata."""
  vectors, _ = clustered_vectors(n, dim, clusters=50, seed=seed)
  return CentroidIndex.build(
    vectors,
    np.arange(n) // 10,
    IndexConfig(backend=backend),
    cluster_sizes=np.arange(n) % 7 + 3,
    label_map=LabelMap.from_ids(range(n // 10)),
    metadata={"checkpoint": "run/step_100"},
  )


def run_in_process(argv, capsys):
  """`landmark-jax …` in this process: (status, stdout lines, stderr lines)."""
  from landmark_jax.cli.main import main

  try:
    status = main([str(a) for a in argv])
  except SystemExit as e:  # argparse's refusals
    status = e.code
  out, err = capsys.readouterr()
  return status, out.splitlines(), err.splitlines()


# Several processes ---------------------------------------------------------------------


def free_port() -> int:
  """A loopback port free now: the coordinator address of a multi-process run."""
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]
