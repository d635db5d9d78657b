"""`landmark-jax benchmark device --smoke`: the accelerator check's code on CPU.

It runs the way the GPU machine runs it — through scripts/device_check.sh, in interpreters
where grain, ScaNN, TFDS, tensorboardX, Starlette, uvicorn, scikit-image and matplotlib
cannot be imported (that machine has none of them) — and its JSON is checked: every part
present, the MFU computed from the compiled program's FLOPs, and XLA's count for one
convolution equal to the hand count 2·N·H'·W'·C_out·C_in·k².
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

from landmark_jax.benchmarks import device_check

# Slow as a whole: runs the device check's train and inference steps.
pytestmark = pytest.mark.slow

# Our dependencies the GPU machine lacks (scripts/device_check.sh): it has jax, flax, optax,
# orbax, torch, torchvision, timm and what they depend on (NumPy, SciPy, Pillow, tqdm, …).
MISSING_THERE = (
  "grain",
  "array_record",
  "scann",
  "tensorflow_datasets",
  "tensorflow",
  "tensorboardX",
  "starlette",
  "uvicorn",
  "multipart",
  "python_multipart",
  "skimage",
  "matplotlib",
)

# Installed as sitecustomize.py, which every interpreter imports at start-up: the path finder
# no longer sees those packages, so `import` and `importlib.util.find_spec` behave as where
# they are not installed.
WITHOUT_THEM = textwrap.dedent(f"""
    from importlib.machinery import PathFinder

    _find_spec = PathFinder.find_spec

    def find_spec(name, path=None, target=None):
      if name.split(".")[0] in {MISSING_THERE!r}:
        return None
      return _find_spec(name, path, target)

    PathFinder.find_spec = staticmethod(find_spec)
""")
SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "device_check.sh"

PEAK = 0.5  # TFLOP/s, given on the command line: a CPU is in no datasheet table


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, demo_cache):
  site = tmp_path_factory.mktemp("without-them")
  (site / "sitecustomize.py").write_text(WITHOUT_THEM)
  out = tmp_path_factory.mktemp("device")
  # `python` in the script is this interpreter, as on the machine it is the only one.
  env = dict(
    os.environ,
    PYTHONPATH=str(site),
    PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
  )
  # OUT_DIR relative to where the command is typed (the script works from the checkout).
  result = subprocess.run(
    ["bash", str(SCRIPT), out.name, "--smoke", "--peak-tflops", str(PEAK)],
    capture_output=True,
    text=True,
    timeout=600,
    env=env,
    cwd=out.parent,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads((out / "device-check.json").read_text()), result.stdout


def test_every_part_is_measured(smoke):
  payload, stdout = smoke
  settings = device_check.SMOKE
  assert payload["machine"]["platform"] == "cpu"
  assert payload["peak bf16 TFLOP/s"] == PEAK and payload["peak source"] == "--peak-tflops"
  train = payload["train"]
  assert [(r["image"], r["loss"]) for r in train] == [
    (settings.image_sizes[0], "softmax_center"),
    (settings.image_sizes[0], "softmax"),
  ]
  for row in train:
    assert row["batch"] == settings.batch_size and row["seconds/step"] > 0
    assert row["images/s"] == pytest.approx(settings.batch_size / row["seconds/step"])
  center, softmax = train
  assert center["center loss overhead %"] == pytest.approx(
    100 * (center["seconds/step"] / softmax["seconds/step"] - 1)
  )
  (torch_row,) = payload["torch"]
  assert "AMP bf16, channels_last" in torch_row["framework"]
  assert torch_row["jax / torch"] == pytest.approx(center["images/s"] / torch_row["images/s"])
  inference = payload["inference"]
  assert inference["batch"] == settings.inference_batch and inference["images/s"] > 0
  assert inference["batch-1 latency ms"] > 0
  # grain could not be imported there: said, not measured.
  assert "grain is not installed" in payload["pipeline"]["skipped"]
  assert "| image | batch | loss |" in stdout and "MFU %" in stdout


def test_what_the_machine_lacks_cannot_be_imported_there(tmp_path):
  """The guard of the test above works: the script's interpreter fails on grain."""
  (tmp_path / "sitecustomize.py").write_text(WITHOUT_THEM)
  result = subprocess.run(
    [sys.executable, "-c", "import grain"],
    capture_output=True,
    text=True,
    env=dict(os.environ, PYTHONPATH=str(tmp_path)),
  )
  assert result.returncode != 0 and "No module named 'grain'" in result.stderr


def test_mfu_comes_from_the_compiled_programs_flops(smoke):
  payload, _ = smoke
  for row in payload["train"]:
    flops = row["compiled GFLOP/step"] * 1e9
    assert row["TFLOP/s"] == pytest.approx(flops / row["seconds/step"] / 1e12)
    assert row["MFU %"] == pytest.approx(100 * flops / row["seconds/step"] / 1e12 / PEAK)
    # A train step is a forward and a backward pass (about twice the forward): three
    # forwards by the textbook, not one (a count of the forward alone would be ~1/3).
    assert 0.8 < flops / (row["3×forward GFLOP/step"] * 1e9) < 1.5


def test_a_convolutions_compiled_flops_are_its_hand_count(smoke):
  payload, _ = smoke
  conv = payload["convolution"]
  n, h, w, c_in = conv["input"]
  k, _, _, c_out = conv["kernel"]
  hand = 2 * n * (h - k + 1) * (w - k + 1) * c_out * c_in * k * k  # VALID padding
  assert conv["hand_count_flops"] == hand
  # XLA:CPU computes a bf16 convolution in float32 and counts the conversions of its input,
  # kernel and output (one per element: 0.09 % here); nothing else differs.
  converted = n * h * w * c_in + k * k * c_in * c_out + n * (h - k + 1) * (w - k + 1) * c_out
  assert conv["compiled_flops"] in (hand, hand + converted)


@pytest.mark.parametrize(
  "kind, peak",
  [
    ("NVIDIA H100 80GB HBM3", 989.4),
    ("NVIDIA H100 PCIe", 756.0),
    ("NVIDIA H200", 989.4),
    ("NVIDIA A100-SXM4-80GB", 312.0),
    ("NVIDIA L4", 121.0),
    ("NVIDIA L40S", 362.1),
    ("TPU v5 lite", 197.0),
    ("TPU v4", 275.0),
  ],
)
def test_the_peak_is_the_named_chips(kind, peak):
  assert device_check.chip_peak_tflops(kind, None)[0] == peak
  assert device_check.chip_peak_tflops(kind, 123.0) == (123.0, "--peak-tflops")


def test_an_unknown_chip_has_no_mfu_without_a_peak():
  peak, source = device_check.chip_peak_tflops("cpu", None)
  assert peak is None and "--peak-tflops" in source
  row = device_check._train_row(device_check.SMOKE, 32, "softmax", 0.5, 2e9, 6e8, None)
  assert row["TFLOP/s"] == pytest.approx(4e-3) and row["MFU %"] is None


def test_the_input_pipeline_against_the_device(demo_cache):
  """The part the GPU machine skips (no grain): here grain is installed."""
  rows = device_check.pipeline_rows(device_check.SMOKE, device_images_per_second=100.0)
  (row,) = rows
  assert row["workers"] == 0 and row["images/s"] > 0
  assert row["pipeline / device"] == pytest.approx(row["images/s"] / 100.0)


def test_the_pytorch_reference_is_the_same_network_at_full_size():
  """torchvision's WRN-50-2 (the reference of the real check) has exactly our backbone's
  parameters; `--smoke`'s tiny backbone has no torchvision twin, and its row says so."""
  import jax
  import jax.numpy as jnp
  import numpy as np

  from landmark_jax.benchmarks.torch_reference import torch_backbone
  from landmark_jax.models import get_backbone

  ours = get_backbone("wide_resnet50_2")
  shapes = jax.eval_shape(
    ours.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
  )["params"]
  reference = torch_backbone("wide_resnet50_2", ours.stage_sizes, ours.width_per_group)
  assert (
    sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
    == sum(p.numel() for p in reference.parameters())
    == 66_834_240
  )


def test_the_smoke_rows_say_the_networks_differ(smoke):
  payload, _ = smoke
  assert payload["torch"][0]["same network"] is False
