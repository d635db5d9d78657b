import io
import sys

import numpy as np
import pytest
from PIL import Image

from landmark_jax.data.config import ImageConfig
from landmark_jax.data.transforms import (
  ImageDecodeError,
  ImageTooLargeError,
  center_crop_box,
  color_jitter,
  decode_train_record,
  eval_image,
  open_image,
  open_photo,
  random_resized_crop_box,
  train_image,
)
from tests.helpers import encode, gradient_image, huge_png_header


def test_exif_orientation_is_applied():
  image = Image.new("RGB", (60, 20), "black")
  image.paste((255, 0, 0), (0, 0, 10, 20))  # red band on the left edge
  exif = Image.Exif()
  exif[0x0112] = 6  # "rotate 90° CW to display"
  decoded = np.asarray(open_image(encode(image, exif=exif.tobytes(), quality=95)))
  assert decoded.shape == (60, 20, 3)  # portrait once oriented
  assert decoded[2, 10, 0] > 200 and decoded[-3, 10, 0] < 50  # the band is now on top


@pytest.mark.parametrize(
  "mode, fmt, expected",
  [
    ("L", "PNG", [77, 77, 77]),
    ("RGBA", "PNG", [255, 0, 0]),
    ("CMYK", "JPEG", [255, 0, 0]),
    ("P", "PNG", [255, 0, 0]),
  ],
)
def test_any_mode_becomes_rgb(mode, fmt, expected):
  image = Image.new("RGB", (16, 16), (255, 0, 0)).convert(mode)
  decoded = np.asarray(open_image(encode(image, fmt)))
  assert decoded.dtype == np.uint8 and decoded.shape == (16, 16, 3)
  np.testing.assert_allclose(decoded[8, 8], expected, atol=3)


def test_16_bit_grayscale_is_scaled_not_clipped():
  pixels = np.full((8, 8), 32768, np.uint16)  # half of the 16-bit range
  decoded = np.asarray(open_image(encode(Image.fromarray(pixels), "PNG")))
  np.testing.assert_allclose(decoded[0, 0], [127, 127, 127], atol=1)


def test_transparent_areas_become_white():
  image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
  assert np.asarray(open_image(encode(image, "PNG")))[0, 0].tolist() == [255, 255, 255]


@pytest.mark.parametrize(
  "data, reason",
  [
    (b"", "empty file"),
    (b"this is a text file named .jpg", "not an image"),
    (encode(gradient_image())[:2000], "truncated"),
    (huge_png_header(), "decompression bomb"),
  ],
)
def test_bad_input_raises_a_named_error(data, reason):
  with pytest.raises(ImageDecodeError, match=reason):
    open_image(data)


def test_configured_pixel_limit_is_enforced_before_decoding():
  data = encode(gradient_image(100, 60), "PNG")
  with pytest.raises(ImageDecodeError, match="100×60 = 6,000 pixels exceeds the limit of 5,000"):
    open_image(data, max_pixels=5000)
  assert open_image(data, max_pixels=6000).size == (100, 60)


def test_decoded_pixel_budget_refuses_png_from_its_header_and_passes_a_drafted_jpeg():
  image = Image.new("RGB", (5000, 4000), (40, 90, 140))  # 20 Mpx: under max_pixels
  png, jpeg = encode(image, "PNG"), encode(image, "JPEG")
  decodes = []

  def watch(frame, event, arg):  # observes Pillow decoding pixels (ImageFile.load)
    if (
      event == "call"
      and frame.f_code.co_name == "load"
      and frame.f_code.co_filename.endswith("ImageFile.py")
    ):
      decodes.append(frame.f_code.co_filename)

  sys.setprofile(watch)
  try:
    with pytest.raises(ImageTooLargeError, match="PNG image of 5000×4000 = 20,000,000 pixels"):
      open_photo(png, max_decoded_pixels=4096 * 4096)
  finally:
    sys.setprofile(None)
  # Refused from the header: never decoded (Pillow decodes a whole PNG to look for EXIF
  # after its pixels, so the check must come before reading the location).
  assert decodes == []
  drafted, _ = open_photo(jpeg, draft_size=256, max_decoded_pixels=4096 * 4096)
  assert drafted.size == (625, 500)  # libjpeg's 1/8 scale, within the budget
  with pytest.raises(ImageTooLargeError):
    open_photo(jpeg, max_decoded_pixels=4096 * 4096)  # no draft: full size, refused


def test_jpeg_draft_decodes_downscaled_but_equivalent():
  data = encode(gradient_image(2000, 1600), quality=95)
  assert Image.open(io.BytesIO(data)).size == (2000, 1600)
  drafted = open_image(data, draft_size=256)
  assert drafted.size == (500, 400)  # libjpeg's 1/4 scale: the smallest still ≥ 256
  config = ImageConfig(crop_size=224)
  with_draft = eval_image(data, config).astype(np.float32)
  without = eval_image(data, ImageConfig(crop_size=224, jpeg_draft=False)).astype(np.float32)
  assert np.abs(with_draft - without).mean() < 2.0


def test_eval_image_equals_resize_then_center_crop():
  image = gradient_image(300, 200)
  data = encode(image, "PNG")
  config = ImageConfig(resize_size=256, crop_size=224)
  reference = np.asarray(image.resize((256, 256), Image.BILINEAR))[16:240, 16:240].astype(float)
  ours = eval_image(data, config).astype(float)
  assert ours.shape == (224, 224, 3)
  assert np.abs(ours - reference).mean() < 1.5  # one resample instead of two


def test_random_resized_crop_box_respects_scale_and_ratio():
  rng = np.random.default_rng(0)
  for _ in range(200):
    left, top, right, bottom = random_resized_crop_box(rng, 256, (0.25, 1.0), (3 / 4, 4 / 3))
    w, h = right - left, bottom - top
    assert 0 <= left and 0 <= top and right <= 256 and bottom <= 256
    assert 0.24 * 256**2 <= w * h <= 256**2
    assert 0.74 <= w / h <= 1.35
  assert center_crop_box(256, 224) == (16, 16, 240, 240)


def test_color_jitter_matches_hand_computation():
  pixels = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
  b, c, s = np.random.default_rng(1).uniform(0.6, 1.4, size=3)
  x = pixels.astype(np.float64) * b
  luma = np.array([0.299, 0.587, 0.114])
  x = (x - (x @ luma).mean()) * c + (x @ luma).mean()
  g = (x @ luma)[..., None]
  x = (x - g) * s + g
  expected = np.clip(np.rint(x), 0, 255)
  ours = color_jitter(pixels, np.random.default_rng(1), 0.4)
  np.testing.assert_allclose(ours, expected, atol=1)
  assert color_jitter(pixels, np.random.default_rng(1), 0.0) is pixels


def test_train_image_shape_determinism_and_variety():
  data = encode(gradient_image(), quality=95)
  config = ImageConfig(resize_size=64, crop_size=48)
  a = train_image(data, np.random.default_rng(5), config)
  b = train_image(data, np.random.default_rng(5), config)
  c = train_image(data, np.random.default_rng(6), config)
  assert a.shape == (48, 48, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_bad_record_is_marked_not_raised():
  record = {"id": "x", "label": 3, "encoded": b""}
  out = decode_train_record(record, np.random.default_rng(0), ImageConfig(crop_size=32))
  assert out["valid"] is False and "empty" in out["error"] and out["image"].shape == (32, 32, 3)
