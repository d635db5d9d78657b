"""The decode budget is counted in bytes for the image's mode and what decoding it allocates
(issue 33, finding 5), checked against the memory a decode really takes: each case decodes
in a fresh process, which reports its peak resident memory (Linux's VmHWM, reset just
before the decode) over its resident memory before. The estimate must cover the measured
peak, by at most 1.6×, and a budget refuses exactly the photos estimated above it, so an
accepted photo stays within it."""

import concurrent.futures
import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from landmark_jax.data.transforms import ImageTooLargeError, decode_estimate, open_photo
from tests.hostile_images import png, saved, smooth_image

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUDGET = 24 * 2**20
CROP = 224  # the eval crop resampled after the decode: its tables are counted too

# Decode one photo as the eval path does (draft, decode, RGB, the crop) and print the peak.
MEASURE = """
import json, sys
from landmark_jax.data.config import ImageConfig
from landmark_jax.data.transforms import eval_crop, open_photo

def status(key):
  for line in open("/proc/self/status"):
    if line.startswith(key):
      return int(line.split()[1]) * 1024

data = open(sys.argv[1], "rb").read()
formats = tuple(sys.argv[2].split(","))
with open("/proc/self/clear_refs", "w") as f:
  f.write("5")  # VmHWM := VmRSS
before = status("VmRSS")
image, _ = open_photo(data, formats=formats, draft_size=256, resample_to=224)
eval_crop(image, ImageConfig())
print(json.dumps({"peak": status("VmHWM") - before}))
"""


CASES = (
  "1 × 2 M pixels PNG",
  "16-bit RGBA PNG 1536²",
  "float TIFF 1536²",
  "progressive 4:4:4 JPEG 2304²",
  "RGB PNG 2200²",
  "WebP 1100²",
)


def cases():
  float_pixels = (np.arange(1536 * 1536, dtype=np.float32).reshape(1536, 1536) % 300) * 7
  return {
    # (the file, formats allowed)
    "1 × 2 M pixels PNG": (png(2**21, 1, color_type=0), "PNG"),
    "16-bit RGBA PNG 1536²": (png(1536, 1536, bit_depth=16, color_type=6), "PNG"),
    "float TIFF 1536²": (saved(Image.fromarray(float_pixels, "F"), "TIFF"), "TIFF"),
    "progressive 4:4:4 JPEG 2304²": (
      saved(smooth_image(2304, 2304), "JPEG", progressive=True, subsampling=0),
      "JPEG",
    ),
    "RGB PNG 2200²": (saved(smooth_image(2200, 2200), "PNG"), "PNG"),
    "WebP 1100²": (saved(smooth_image(1100, 1100), "WEBP", quality=50), "WEBP"),
  }


def measured_peak(path: pathlib.Path, formats: str) -> int:
  done = subprocess.run(
    [sys.executable, "-c", MEASURE, str(path), formats],
    cwd=ROOT,
    capture_output=True,
    text=True,
    timeout=120,
  )
  assert done.returncode == 0, done.stderr
  return json.loads(done.stdout)["peak"]


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
  """name → (file, formats, the peak bytes measured in its own process)."""
  folder = tmp_path_factory.mktemp("budget")
  files = {}
  built = cases()
  assert tuple(built) == CASES
  for i, (name, (data, formats)) in enumerate(built.items()):
    files[name] = (folder / f"case{i}", formats)
    files[name][0].write_bytes(data)
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    peaks = dict(zip(files, pool.map(lambda f: measured_peak(*f), files.values())))
  return {name: (path.read_bytes(), kind, peaks[name]) for name, (path, kind) in files.items()}


@pytest.mark.parametrize("name", CASES)
def test_the_estimate_covers_the_measured_peak_closely(measured, name):
  data, formats, peak = measured[name]
  estimate = decode_estimate(data, formats=(formats,), draft_size=256, resample_to=CROP)
  assert peak <= estimate <= 1.6 * peak, (peak / 2**20, estimate / 2**20)


@pytest.mark.parametrize("name", CASES)
def test_a_budget_refuses_what_would_exceed_it_and_only_that(measured, name):
  data, formats, peak = measured[name]
  estimate = decode_estimate(data, formats=(formats,), draft_size=256, resample_to=CROP)
  options = dict(formats=(formats,), draft_size=256, resample_to=CROP, max_decode_bytes=BUDGET)
  if estimate > BUDGET:
    with pytest.raises(ImageTooLargeError, match="MiB to decode, over the limit of 24 MiB"):
      open_photo(data, **options)
  else:
    assert peak <= BUDGET  # accepted: the real peak is within the budget
    open_photo(data, **options)


def test_the_cases_straddle_the_budget(measured):
  """Each side of the budget is exercised: refused cases whose real peak is over it (the
  old pixel budget, 8 bytes a pixel, let all of them through) and accepted ones under it."""
  peaks = {name: peak for name, (_, _, peak) in measured.items()}
  assert peaks["1 × 2 M pixels PNG"] > BUDGET  # the resample's tables: 224 × 18,700 doubles
  assert peaks["progressive 4:4:4 JPEG 2304²"] > BUDGET  # full-size coefficients at 1/8
  assert peaks["RGB PNG 2200²"] < BUDGET < 2 * peaks["RGB PNG 2200²"]
