"""Writing EXIF GPS tags into photos with Pillow (shared by geo tests)."""

import io
from fractions import Fraction

from PIL import Image


def dms(value):
  value = abs(value)
  degrees = int(value)
  minutes = int((value - degrees) * 60)
  seconds = Fraction((value - degrees - minutes / 60) * 3600).limit_denominator(10**9)
  return (Fraction(degrees), Fraction(minutes), seconds)


def with_gps(photo_bytes, latitude, longitude, refs=None):
  image = Image.open(io.BytesIO(photo_bytes))
  exif = image.getexif()
  gps = exif.get_ifd(0x8825)
  gps.clear()
  gps[1], gps[3] = refs or ("N" if latitude >= 0 else "S", "E" if longitude >= 0 else "W")
  gps[2], gps[4] = dms(latitude), dms(longitude)
  out = io.BytesIO()
  image.convert("RGB").save(out, format="JPEG", exif=exif, quality=90)
  return out.getvalue()
