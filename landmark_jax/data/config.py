"""The data sections of a run's config: where the photos come from (`DataConfig`), how
they become network inputs (`ImageConfig`) and how the input pipeline batches them
(`PipelineConfig`). Plain data: this module imports nothing of the package but its errors."""

from __future__ import annotations

import dataclasses

from landmark_jax.errors import ConfigError

SPLITS = ("train", "val", "test", "holdout")


DATA_KINDS = ("demo", "gldv2", "folder", "tfds")


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the photos come from."""

  kind: str = "demo"  # "demo" (embedded dataset), "gldv2", "folder" or "tfds"
  root: str = ""  # dataset folder (gldv2, folder)
  csv: str = "train.csv"  # gldv2: id,url,landmark_id
  image_dir: str = ""  # gldv2: folder of <a>/<b>/<c>/<id>.jpg ("" = images/ or train/)
  # landmark_id,images (GLDv2's train_clean.csv, or `landmark-jax clean`'s): train on these
  # landmark photos and every non-landmark one; in root or from the working directory (all
  # kinds but tfds)
  clean_csv: str = ""
  non_landmark_csv: str = ""  # gldv2: id[,url] of photos without a landmark
  regions_csv: str = ""  # landmark_id,region for curriculum learning ("" = one stage)
  categories_csv: str = ""  # landmark_id,category (train_label_to_category.csv)
  non_landmark_dir: str = "non_landmark"  # folder: the subfolder of non-landmark photos
  tfds_name: str = ""  # tfds: a prepared dataset's name
  tfds_split: str = "train"
  tfds_data_dir: str = ""
  tfds_image_key: str = "image"
  tfds_label_key: str = "label"
  tfds_non_landmark_value: int = -1  # tfds: the label value meaning non-landmark (-1: none)
  holdout_csv: str = ""  # gldv2-format held-out set, classified after training ("" = none)
  val_csv: str = ""  # gldv2-format validation set for calibrating η ("" = none)
  test_csv: str = ""  # gldv2-format test set for `evaluate` ("" = none)
  # demo, gldv2: read every split's photos from this folder of ArrayRecord shards
  # (`landmark-jax prepare gldv2 --pack` writes <root>/packed) instead of the JPEG files; in
  # root or from the working directory ("" = the files)
  packed_dir: str = ""

  def __post_init__(self):
    if self.kind not in DATA_KINDS:
      raise ConfigError(f"unknown data.kind {self.kind!r}: {', '.join(DATA_KINDS)}")
    if self.packed_dir and self.kind not in ("demo", "gldv2"):
      raise ConfigError(f"data.packed_dir works with data.kind=demo or gldv2, not {self.kind}")


# Pillow's own default (~89 Mpx, a 1 GB RGBA buffer); beyond it an image is refused before
# its pixels are decoded, so a decompression bomb costs a header read, not the machine.
DEFAULT_MAX_PIXELS = 89_478_485
# The formats a photo may come in unless a config names others (Pillow's names), read from
# the file's first bytes: what cameras, phones and browsers write. Pillow's 40 other
# decoders are attack surface a photo pipeline does not need.
DEFAULT_FORMATS = ("JPEG", "PNG", "WEBP")
# Scans of a progressive JPEG: libjpeg writes 10 (6 for grayscale), mozjpeg tens at most;
# each costs a pass over the full-size image, so a file of thousands is a CPU bomb.
DEFAULT_MAX_JPEG_SCANS = 64


@dataclasses.dataclass(frozen=True)
class ImageConfig:
  """How images become network inputs; the defaults are the paper's."""

  resize_size: int = 256  # both sides resized to this first (the paper: 256×256)
  crop_size: int = 224  # the network's input side
  crop_scale: tuple[float, float] = (0.25, 1.0)  # random-resized-crop area range (ours)
  crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # its aspect-ratio range (torchvision's)
  color_jitter: float = 0.4  # brightness/contrast/saturation factors in [1 - j, 1 + j]
  horizontal_flip: bool = True
  jpeg_draft: bool = True  # decode large JPEGs at a reduced DCT scale
  # Refuse larger images (decompression bombs) from their header. Pillow's own global
  # limit (`PIL.Image.MAX_IMAGE_PIXELS`) still applies above this one.
  max_pixels: int = DEFAULT_MAX_PIXELS
  # Deprecated (use max_decode_bytes): a budget of this many pixels × 8 bytes.
  max_decoded_pixels: int | None = None
  # Formats decoded, by their first bytes (Pillow's names; "JPEG" includes MPO).
  formats: tuple[str, ...] = DEFAULT_FORMATS
  # Peak bytes of memory one decode may take, counted from the header before decoding: the
  # pixels in the image's mode, the RGB conversion, a progressive JPEG's coefficients and
  # the resample to crop_size (`data.image_guard.decode_cost`). Checked after JPEG draft
  # mode has picked its scale, so a 48 Mpx phone JPEG decoded at 1/8 passes while a 48 Mpx
  # PNG, which has no reduced decode, is refused. None: no budget (training's default).
  max_decode_bytes: int | None = None
  max_jpeg_scans: int | None = DEFAULT_MAX_JPEG_SCANS  # more scans: refused before decoding

  def __post_init__(self):
    if not self.formats or not all(
      isinstance(name, str) and name.isalnum() and name == name.upper() for name in self.formats
    ):
      raise ConfigError(
        "image.formats must be a list of Pillow's format names, e.g. "
        f'["JPEG", "PNG", "WEBP", "TIFF"], got {self.formats!r}'
      )
    for name in ("max_decoded_pixels", "max_decode_bytes", "max_jpeg_scans"):
      value = getattr(self, name)
      if value is not None and not (isinstance(value, int) and value >= 1):
        raise ConfigError(f"image.{name} must be a positive integer or None, got {value!r}")

  @property
  def decode_budget(self) -> int | None:
    """The bytes one decode may take: max_decode_bytes, else the deprecated
    max_decoded_pixels at 8 bytes a pixel (what it promised), else none."""
    if self.max_decode_bytes is not None:
      return self.max_decode_bytes
    return None if self.max_decoded_pixels is None else 8 * self.max_decoded_pixels


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Input pipeline settings."""

  batch_size: int = 256  # global batch: split over processes, then over each one's devices
  num_workers: int = 8  # grain worker processes per host; 0 decodes in the main process
  worker_buffer_size: int = 2  # batches each worker prepares ahead
  seed: int = 0  # the one seed: shuffling and every augmentation derive from it
  image: ImageConfig = ImageConfig()

  def __post_init__(self):
    if self.batch_size < 1 or self.num_workers < 0 or self.worker_buffer_size < 1:
      raise ConfigError(
        f"pipeline.batch_size must be ≥ 1 (got {self.batch_size}), "
        f"num_workers ≥ 0 (got {self.num_workers}), worker_buffer_size ≥ 1"
      )
