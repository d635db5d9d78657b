"""The embedded default dataset: real photographs shipped inside scikit-image, turned into
"landmarks" seen from several simulated viewpoints, in the Google Landmarks v2 layout.

Each landmark is one photo with three shooting "angles" (a perspective quadrilateral on
the photo); every view perturbs one angle's corners and adds scale, lighting, blur and
occlusion changes. The motorcycle's third angle comes from `motorcycle_right.png`, a real
second viewpoint (a stereo pair). Held-out test views come from their own random stream.
Non-landmarks are crops of other real photos and textures (tinted, warped); a few source
photos appear only among the test non-landmarks, so specificity is measured on unseen kinds.

Deterministic from the seed; written once to a cache folder (atomically) and reused.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import pathlib

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from landmark_jax.folders import atomic_folder
from landmark_jax.runtime import default_cache_dir
from landmark_jax.text import spreadsheet_row

DEMO_FORMAT = 2  # bump when the generated files change: caches are keyed on it

# (name, photo(s) per angle, region, latitude, longitude). Placements are fictional — they
# only give the curriculum two parts and the geo filter something to work with.
LANDMARKS = (
  ("astronaut", ("astronaut.png",) * 3, "europe_russia", 48.8584, 2.2945),
  ("chelsea", ("chelsea.png",) * 3, "europe_russia", 51.5007, -0.1246),
  ("coffee", ("coffee.png",) * 3, "europe_russia", 41.8902, 12.4922),
  ("rocket", ("rocket.jpg",) * 3, "europe_russia", 55.7539, 37.6208),
  (
    "motorcycle",
    ("motorcycle_left.png", "motorcycle_left.png", "motorcycle_right.png"),
    "north_america_oceania",
    40.6892,
    -74.0445,
  ),
  ("hubble", ("hubble_deep_field.jpg",) * 3, "north_america_oceania", 37.8199, -122.4783),
  ("retina", ("retina.jpg",) * 3, "north_america_oceania", -33.8568, 151.2153),
  ("ihc", ("ihc.png",) * 3, "north_america_oceania", 43.6426, -79.3871),
)
# Landmarks with few training photos, so that the rare/frequent breakdown has both kinds.
RARE_LANDMARKS = ("rocket", "ihc")
NON_LANDMARK_PHOTOS = (
  "brick.png",
  "grass.png",
  "gravel.png",
  "camera.png",
  "coins.png",
  "moon.png",
  "cell.png",
  "clock_motion.png",
  "color.png",
  "horse.png",
  "logo.png",
  "chessboard_RGB.png",
  "phantom.png",
)
TEST_ONLY_NON_LANDMARK_PHOTOS = ("page.png", "text.png", "microaneurysms.png")

# Three angles per landmark: quad center (fractions of the photo), side (fraction of the
# shorter side), and perspective skew (how much the far edge shrinks, signed).
ANGLES = ((0.5, 0.5, 0.95, 0.0), (0.38, 0.45, 0.62, 0.18), (0.62, 0.55, 0.62, -0.18))


@dataclasses.dataclass(frozen=True)
class DemoDatasetConfig:
  seed: int = 0
  image_size: int = 128  # side of the written JPEGs
  train_views: int = 18  # training views per landmark
  rare_train_views: int = 9  # training views of the RARE_LANDMARKS (3 per angle)
  test_views: int = 6  # held-out views per landmark, for evaluation
  val_views: int = 4  # more held-out views per landmark, for calibrating η
  # Many crops of the non-landmark photos: with 60 the network learned those crops, not
  # "non-landmark", and unseen crops of the same scenes scored as landmarks
  # (docs/decisions.md, "Why the demo rejected most landmarks").
  train_non_landmarks: int = 240
  test_non_landmarks: int = 120
  val_non_landmarks: int = 80


def _photo(name: str) -> Image.Image:
  import skimage.data

  path = pathlib.Path(skimage.data.__file__).parent / name
  with Image.open(path) as image:
    if image.mode in ("RGBA", "LA", "P"):
      rgba = image.convert("RGBA")
      return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")
    return image.convert("RGB") if image.mode == "RGB" else image.convert("L")


def _quad(width, height, cx, cy, side, skew, rng, jitter):
  """Source quadrilateral (UL, LL, LR, UR) for Pillow's QUAD transform."""
  s = side * min(width, height)
  half = s / 2
  shrink = skew * half  # the right edge (skew > 0) or left edge (< 0) recedes
  corners = np.array(
    [
      [cx * width - half, cy * height - half + max(-shrink, 0)],
      [cx * width - half, cy * height + half - max(-shrink, 0)],
      [cx * width + half, cy * height + half - max(shrink, 0)],
      [cx * width + half, cy * height - half + max(shrink, 0)],
    ]
  )
  corners += rng.uniform(-jitter, jitter, corners.shape) * s
  return tuple(corners.reshape(-1))


def _lighting(image: Image.Image, rng: np.random.Generator) -> Image.Image:
  pixels = np.asarray(image, np.float32)
  pixels = pixels * rng.uniform(0.7, 1.3) + rng.uniform(-20, 20)
  mean = pixels.mean()
  pixels = (pixels - mean) * rng.uniform(0.8, 1.2) + mean
  image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
  if rng.random() < 0.25:
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
  return image


def _occlude(image: Image.Image, rng: np.random.Generator) -> Image.Image:
  if rng.random() >= 0.3:
    return image
  size = image.size[0]
  w, h = (rng.uniform(0.2, 0.45, 2) * size).astype(int)
  x, y = rng.integers(0, size - w), rng.integers(0, size - h)
  ImageDraw.Draw(image).rectangle([x, y, x + w, y + h], fill=tuple(rng.integers(0, 256, 3)))
  return image


def landmark_view(photos, angle: int, rng: np.random.Generator, size: int) -> Image.Image:
  image = photos[angle]
  cx, cy, side, skew = ANGLES[angle]
  scale = rng.uniform(0.85, 1.1)
  quad = _quad(
    image.width,
    image.height,
    cx + rng.uniform(-0.04, 0.04),
    cy + rng.uniform(-0.04, 0.04),
    min(side * scale, 0.98),
    skew,
    rng,
    jitter=0.05,
  )
  view = image.transform((size, size), Image.QUAD, quad, Image.BICUBIC, fillcolor="gray")
  return _occlude(_lighting(view, rng), rng)


def non_landmark_view(photo: Image.Image, rng: np.random.Generator, size: int) -> Image.Image:
  side = rng.uniform(0.3, 0.8)
  quad = _quad(
    photo.width,
    photo.height,
    rng.uniform(0.3, 0.7),
    rng.uniform(0.3, 0.7),
    side,
    rng.uniform(-0.2, 0.2),
    rng,
    jitter=0.08,
  )
  view = photo.transform((size, size), Image.QUAD, quad, Image.BICUBIC, fillcolor="gray")
  if view.mode == "L":  # tint grayscale textures with a random color ramp
    gray = np.asarray(view, np.float32)[..., None] / 255.0
    low, high = rng.uniform(0, 120, 3), rng.uniform(135, 255, 3)
    view = Image.fromarray((low + gray * (high - low)).astype(np.uint8))
  return _lighting(view, rng)


def _write_jpeg(image: Image.Image, images_dir: pathlib.Path) -> str:
  buffer = io.BytesIO()
  image.convert("RGB").save(buffer, format="JPEG", quality=90)
  data = buffer.getvalue()
  image_id = hashlib.sha1(data).hexdigest()[:16]  # as GLDv2 and landmarks-mini name files
  folder = images_dir / image_id[0] / image_id[1] / image_id[2]
  folder.mkdir(parents=True, exist_ok=True)
  (folder / f"{image_id}.jpg").write_bytes(data)
  return image_id


def _write_csv(path: pathlib.Path, header, rows) -> None:
  with open(path, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(header)
    writer.writerows(map(spreadsheet_row, rows))


def _photo_locations(rows, seed: int) -> list[tuple[str, float, float]]:
  """Where the held-out photos were "taken": a landmark photo within ~3 km of its landmark,
  a non-landmark photo in a random one of the landmarks' cities (people photograph streets
  where landmarks are too), so geo-information helps without giving answers away."""
  rng = np.random.default_rng([seed, 99])
  cities = [(lat, lon) for *_, lat, lon in LANDMARKS]
  out = []
  for image_id, _, landmark_id in rows:
    lat, lon = cities[int(landmark_id)] if landmark_id != "" else cities[rng.integers(len(cities))]
    out.append(
      (image_id, round(lat + rng.uniform(-0.02, 0.02), 6), round(lon + rng.uniform(-0.02, 0.02), 6))
    )
  return out


def generate(directory: pathlib.Path, config: DemoDatasetConfig) -> None:
  """Writes the dataset into `directory` (which must not exist yet)."""
  images = directory / "images"
  # Each stream seeded by (seed, stream, landmark): adding a landmark or changing a count
  # never changes the other streams' images.
  (
    train_stream,
    test_stream,
    non_landmark_stream,
    test_non_landmark_stream,
    val_stream,
    val_non_landmark_stream,
  ) = range(6)
  train_rows, test_rows, val_rows, non_landmark_rows = [], [], [], []
  for landmark_id, (name, files, *_rest) in enumerate(LANDMARKS):
    photos = [_photo(f).convert("RGB") for f in files]
    train_views = config.rare_train_views if name in RARE_LANDMARKS else config.train_views
    for stream, count, rows, split in (
      (train_stream, train_views, train_rows, "train"),
      (test_stream, config.test_views, test_rows, "test"),
      (val_stream, config.val_views, val_rows, "val"),
    ):
      rng = np.random.default_rng([config.seed, stream, landmark_id])
      for view in range(count):
        angle = view % len(ANGLES)
        image_id = _write_jpeg(landmark_view(photos, angle, rng, config.image_size), images)
        rows.append((image_id, f"skimage:{files[angle]}#{split}-angle{angle}-{view}", landmark_id))

  pool = [(f, _photo(f)) for f in NON_LANDMARK_PHOTOS]
  test_pool = pool + [(f, _photo(f)) for f in TEST_ONLY_NON_LANDMARK_PHOTOS]
  for stream, count, sources, split, rows in (
    (non_landmark_stream, config.train_non_landmarks, pool, "train", None),
    (test_non_landmark_stream, config.test_non_landmarks, test_pool, "test", test_rows),
    (val_non_landmark_stream, config.val_non_landmarks, test_pool, "val", val_rows),
  ):
    rng = np.random.default_rng([config.seed, stream])
    for i in range(count):
      name, photo = sources[i % len(sources)]
      image_id = _write_jpeg(non_landmark_view(photo, rng, config.image_size), images)
      if rows is None:
        non_landmark_rows.append((image_id, f"skimage:{name}#non-landmark-{i}"))
      else:
        rows.append((image_id, f"skimage:{name}#{split}-non-landmark-{i}", ""))

  _write_csv(directory / "train.csv", ("id", "url", "landmark_id"), train_rows)
  _write_csv(directory / "non_landmark.csv", ("id", "url"), non_landmark_rows)
  _write_csv(directory / "test.csv", ("id", "url", "landmark_id"), test_rows)
  _write_csv(directory / "val.csv", ("id", "url", "landmark_id"), val_rows)
  _write_csv(
    directory / "locations.csv",
    ("id", "latitude", "longitude"),
    _photo_locations(test_rows + val_rows, config.seed),
  )
  _write_csv(
    directory / "landmarks.csv",
    ("landmark_id", "name", "region", "latitude", "longitude"),
    [(i, name, region, lat, lon) for i, (name, _, region, lat, lon) in enumerate(LANDMARKS)],
  )
  (directory / "demo.json").write_text(
    json.dumps({"format": DEMO_FORMAT, **dataclasses.asdict(config)}, indent=2)
  )


def demo_dataset(
  config: DemoDatasetConfig = DemoDatasetConfig(), cache_dir: str | os.PathLike | None = None
) -> pathlib.Path:
  """The dataset's folder, generating it on first use.

  Layout (GLDv2): ``train.csv`` and ``non_landmark.csv`` (training), ``test.csv``
  (held-out views and unseen non-landmarks; empty ``landmark_id`` = non-landmark),
  ``val.csv`` (the same kind, from other random streams: for calibrating η),
  ``locations.csv`` (``id,latitude,longitude`` of the test and validation photos),
  ``landmarks.csv`` (``landmark_id,name,region,latitude,longitude``), ``images/a/b/c/id.jpg``.
  """
  cache_dir = pathlib.Path(cache_dir) if cache_dir else default_cache_dir()
  key = hashlib.sha1(json.dumps(dataclasses.asdict(config), sort_keys=True).encode())
  directory = cache_dir / f"demo-v{DEMO_FORMAT}-{key.hexdigest()[:10]}"
  if (directory / "demo.json").is_file():
    return directory
  # Generated beside the final place and renamed: a killed run leaves no half dataset, and
  # two concurrent runs both end with a complete one. A cache, so no fsync.
  with atomic_folder(directory, sync=False) as staging:
    generate(staging, config)
  return directory
