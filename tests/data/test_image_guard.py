"""What a photo costs, read before it is decoded (issue 33, findings 1 and 5): a progressive
JPEG's scans counted from its markers (the scan bomb refused before Pillow opens it), the
format allowlist by first bytes, MPO photos drafted as JPEGs are, and `to_rgb` with fewer
copies giving the same pixels."""

import io
import types

import numpy as np
import pytest
from PIL import Image, ImageOps

from landmark_jax.baselines.delf.config import DelfConfig
from landmark_jax.baselines.delf.features import LocalFeatureExtractor
from landmark_jax.data.config import ImageConfig
from landmark_jax.data.image_guard import jpeg_structure
from landmark_jax.data.transforms import (
  ImageDecodeError,
  ImageTooCostlyError,
  ImageTooLargeError,
  UnsupportedImageFormatError,
  open_image,
  to_rgb,
)
from tests.hostile_images import (
  OTHER_FORMATS,
  other_format,
  saved,
  scan_bomb,
  scan_count,
  smooth_image,
)


def noise(shape, seed=0):
  return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize(
  "mode, options, scans",
  [
    ("RGB", {}, 1),
    ("RGB", {"progressive": True}, 10),  # libjpeg's simple progression: 10 for colour
    ("L", {"progressive": True}, 6),  # and 6 for grayscale
    ("RGB", {"restart_marker_blocks": 1}, 1),  # RST markers inside the scan
    ("RGB", {"progressive": True, "restart_marker_blocks": 2}, 10),
  ],
)
def test_the_walk_counts_the_scans_a_plain_byte_walk_counts(mode, options, scans):
  image = Image.fromarray(noise((96, 128, 3))).convert(mode)  # noise: FF00 stuffed bytes
  data = saved(image, "JPEG", quality=100, **options)
  assert b"\xff\x00" in data
  if "restart_marker_blocks" in options:
    assert b"\xff\xd0" in data
  found = jpeg_structure(data)
  assert found.scans == scan_count(data) == scans
  assert found.progressive == bool(options.get("progressive"))
  assert (found.width, found.height) == image.size


def test_the_scan_bomb_is_refused_before_pillow_opens_it(monkeypatch):
  bomb = scan_bomb(256, 500)
  assert scan_count(bomb) == 510  # the reference: the file we built
  assert jpeg_structure(bomb, max_segments=10**6).scans == 510
  Image.open(io.BytesIO(bomb)).load()  # Pillow decodes it: nothing else refuses it

  def no_open(*args, **kwargs):
    raise AssertionError("Image.open called on a refused file")

  monkeypatch.setattr(Image, "open", no_open)
  with pytest.raises(ImageTooCostlyError, match="more than 64 scans"):
    open_image(bomb)
  with pytest.raises(ImageTooCostlyError, match="more than 8 scans"):
    open_image(saved(smooth_image(64, 64), "JPEG", progressive=True), max_jpeg_scans=8)


def test_a_file_of_tiny_segments_is_refused_after_the_segment_limit(monkeypatch):
  photo = saved(smooth_image(64, 64), "JPEG")
  comments = b"\xff\xfe\x00\x02" * 300_000  # 1.2 MB of empty comment segments
  monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("Image.open called"))
  with pytest.raises(ImageTooCostlyError, match="segments"):
    open_image(photo[:2] + comments + photo[2:])
  assert photo[2:4] == b"\xff\xe0"  # SOI, then the 16-byte APP0 segment
  junk = b"\x00" * 200_000  # junk between segments, which Pillow skips a byte at a time
  with pytest.raises(ImageTooCostlyError, match="outside its segments"):
    open_image(photo[:20] + junk + photo[20:])


@pytest.mark.parametrize("fmt, mode", OTHER_FORMATS)
def test_formats_outside_the_allowlist_are_refused_by_their_first_bytes(fmt, mode):
  data = other_format(fmt, mode)
  if data is None:
    pytest.skip(f"this Pillow cannot write {fmt}")
  reference = np.asarray(to_rgb(Image.open(io.BytesIO(data))))  # Pillow reads it
  with pytest.raises(UnsupportedImageFormatError, match=f"{fmt} images are not accepted"):
    open_image(data)
  np.testing.assert_array_equal(np.asarray(open_image(data, formats=(fmt,))), reference)


def test_unknown_bytes_are_still_undecodable_and_allowed_formats_open():
  with pytest.raises(ImageDecodeError, match="not an image file") as refused:
    open_image(b"hello, this is text")
  assert not isinstance(refused.value, UnsupportedImageFormatError)
  for fmt in ("JPEG", "PNG", "WEBP"):
    assert open_image(saved(smooth_image(40, 30), fmt)).size == (40, 30)


def test_an_mpo_photo_is_drafted_like_the_jpeg_it_is():
  image = smooth_image(1024, 1024)
  mpo = saved(image, "MPO", save_all=True, append_images=[image])
  jpeg = saved(image, "JPEG")
  assert Image.open(io.BytesIO(mpo)).format == "MPO"
  drafted = open_image(mpo, draft_size=256)
  assert drafted.size == open_image(jpeg, draft_size=256).size == (256, 256)  # 1/4 scale


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA"])
def test_alpha_is_composited_over_white_as_before(mode):
  rgba = Image.fromarray(noise((48, 64, 4)), "RGBA")
  image = rgba.convert(mode)
  white = Image.new("RGBA", image.size, (255, 255, 255, 255))
  reference = Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")
  np.testing.assert_array_equal(np.asarray(to_rgb(image)), np.asarray(reference))


@pytest.mark.parametrize("mode", ["I;16", "I", "F"])
def test_high_depth_gray_is_scaled_as_before_block_by_block(mode):
  values = noise((700, 300), 1).astype(np.float32) * 250  # over 255: scaled by 65535
  image = Image.fromarray(values.astype(np.uint16) if mode == "I;16" else values).convert(mode)
  whole = np.asarray(image, np.float32)  # the former whole-image formula, the reference
  top = 65535.0 if mode == "I;16" or whole.max() > 255 else 255.0
  expected = np.clip(whole * (255.0 / top), 0, 255).astype(np.uint8)
  np.testing.assert_array_equal(np.asarray(to_rgb(image))[:, :, 1], expected)


def test_an_rgb_image_is_not_copied_and_an_unturned_photo_not_transposed():
  image = smooth_image(32, 16)
  assert to_rgb(image) is image
  turned = Image.Exif()
  turned[0x0112] = 6
  upright = ImageOps.exif_transpose(Image.open(io.BytesIO(saved(image, "JPEG", exif=turned))))
  assert open_image(saved(image, "JPEG", exif=turned)).size == upright.size == (16, 32)


def test_the_verifiers_second_decode_takes_the_services_limits():
  # `prepare` of an extractor whose model is never used: only its image size matters here.
  extractor = types.SimpleNamespace(config=DelfConfig(image_size=64))
  prepare = LocalFeatureExtractor.prepare
  assert prepare(extractor, saved(smooth_image(80, 60), "PNG"))[0].shape == (64, 64, 3)
  with pytest.raises(ImageTooCostlyError):
    prepare(extractor, scan_bomb(128, 100))
  tiff = saved(smooth_image(80, 60), "TIFF")
  with pytest.raises(UnsupportedImageFormatError):
    prepare(extractor, tiff)
  assert prepare(extractor, tiff, ImageConfig(formats=("TIFF",)))[1] == (48, 64)
  big = saved(smooth_image(1000, 1000), "PNG")
  prepare(extractor, big)  # no budget by default (the library's)
  with pytest.raises(ImageTooLargeError, match="over the limit of 1 MiB"):
    prepare(extractor, big, ImageConfig(max_decode_bytes=2**20))
