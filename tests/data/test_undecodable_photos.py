"""Photos Pillow cannot read the usual way (issue 33, finding 4): a malformed EXIF entry is
no reason to refuse a photo, and whatever a decoder raises is a named `ImageDecodeError`,
never a crash of the caller."""

import numpy as np
import pytest
from PIL import Image, ImageOps

from landmark_jax.data.transforms import ImageDecodeError, open_image, open_photo
from tests.helpers import exif_gps_jpeg, unknown_dds


def test_a_malformed_exif_gps_entry_still_gives_the_upright_photo():
  valid, broken = exif_gps_jpeg(), exif_gps_jpeg(latitude_type=2)
  import io

  with pytest.raises(TypeError):  # the reproducer: Pillow's own transpose gives up
    ImageOps.exif_transpose(Image.open(io.BytesIO(broken)))
  # The reference: Pillow's transpose of the same pixels with a valid entry (orientation 6:
  # the 16×8 photo stands 8×16).
  expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(valid))).convert("RGB"))
  assert expected.shape == (16, 8, 3)
  np.testing.assert_array_equal(np.asarray(open_image(broken)), expected)
  image, location = open_photo(broken)
  assert location is None  # the GPS entry is unreadable: no location, no refusal
  np.testing.assert_array_equal(np.asarray(image), expected)


def test_whatever_a_decoder_raises_is_an_image_decode_error_naming_it():
  import io

  with pytest.raises(NotImplementedError):  # the reproducer: Pillow's DDS plugin
    Image.open(io.BytesIO(unknown_dds())).load()
  with pytest.raises(ImageDecodeError, match=r"undecodable image \(NotImplementedError: "):
    open_image(unknown_dds(), formats=("DDS",))  # DDS is outside the default formats
