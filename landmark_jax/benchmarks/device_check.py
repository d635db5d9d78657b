"""`landmark-jax benchmark device`: what one accelerator does with the paper's model, in
minutes.

On the first device (a one-device mesh, so every figure is per chip):
1. the train step — WRN-50-2 computing in bfloat16 on float32 parameters, SGD with momentum
   in three learning-rate groups, softmax + center loss and Wen et al.'s center update — at
   each image size: images/s, and MFU = the compiled program's FLOPs per step (XLA's cost
   analysis of the very executable that is timed) / step time / the chip's dense bf16 peak;
2. the same step with softmax only, interleaved with it: the center loss's overhead;
3. torchvision's network under the same heads, the same loss and the same SGD step, with
   AMP (bf16) and channels_last, in the same process: JAX's images/s over PyTorch's;
4. inference: embeddings/s at a large batch, and one photo's latency through `Embedder` (the
   serving path: host → device → host);
5. the input pipeline, where grain is installed: the images/s the host's training pipeline
   delivers with N worker processes against the images/s the step consumes.

A single convolution's compiled FLOPs are reported beside its hand count
(2·N·H'·W'·C_out·C_in·k²), so a reader sees what the MFU's numerator counts.

JAX, Flax, optax and NumPy are imported here; PyTorch and grain only where used, so the check
runs on a machine with jax, flax, optax, orbax, torch and torchvision alone
(scripts/device_check.sh). `--smoke` runs the same code on tiny sizes, on CPU, in a test.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import statistics
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from landmark_jax import sharding
from landmark_jax.benchmarks.timing import compiled_flops
from landmark_jax.benchmarks.train_speed import TrainStepRunner
from landmark_jax.models import LandmarkNet, get_backbone

# Dense bfloat16 peak per chip, TFLOP/s, from the vendors' datasheets (no sparsity). Matched
# against `device_kind` in this order, so that "H100 PCIe" is found before "H100" and "H200"
# before "H20".
PEAK_BF16_TFLOPS = (
  ("B200", 2250.0),
  ("H200", 989.4),
  ("H100 PCIe", 756.0),
  ("H100 NVL", 835.0),
  ("H100", 989.4),
  ("A100", 312.0),
  ("L40S", 362.1),
  ("L4", 121.0),
  ("TPU v6 lite", 918.0),
  ("TPU v5 lite", 197.0),
  ("TPU v5", 459.0),
  ("TPU v4", 275.0),
)


@dataclasses.dataclass(frozen=True)
class DeviceCheckSettings:
  backbone: str = "wide_resnet50_2"
  image_sizes: tuple[int, ...] = (224, 256)
  batch_size: int = 128
  # GLDv2-clean's landmarks: the classifier, its momentum and the centers at the real size.
  num_classes: int = 81_313
  inference_batch: int = 256
  steps: int = 10  # consecutive steps per timed run
  repeats: int = 3  # timed runs per figure, after a warm-up run; the median is reported
  compare_torch: bool = True
  pipeline_workers: tuple[int, ...] = (8,)
  pipeline_root: str | None = None  # a GLDv2-layout folder; default: the embedded demo photos
  pipeline_images: int = 512
  peak_tflops: float | None = None  # overrides the datasheet table


# The same code on sizes a CPU runs in seconds: what the test runs.
SMOKE = DeviceCheckSettings(
  backbone="resnet_tiny",
  image_sizes=(32,),
  batch_size=8,
  num_classes=10,
  inference_batch=8,
  steps=2,
  repeats=1,
  pipeline_workers=(0,),
  pipeline_images=16,
)


def chip_peak_tflops(device_kind: str, override: float | None) -> tuple[float | None, str]:
  """(dense bf16 TFLOP/s of one chip, where the figure comes from)."""
  if override is not None:
    return override, "--peak-tflops"
  for name, tflops in PEAK_BF16_TFLOPS:
    if name.lower() in device_kind.lower():
      return tflops, f"datasheet ({name})"
  return None, "unknown chip: give --peak-tflops for an MFU"


def convolution_flops(
  dtype, batch: int = 8, size: int = 58, channels: int = 128, kernel: int = 3
) -> dict[str, Any]:
  """One VALID convolution compiled for the device: its FLOPs by XLA's count and by hand
  (VALID, so no padded position blurs the count)."""
  x = jax.ShapeDtypeStruct((batch, size, size, channels), dtype)
  w = jax.ShapeDtypeStruct((kernel, kernel, channels, channels), dtype)
  convolve = jax.jit(
    lambda x, w: jax.lax.conv_general_dilated(
      x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
  )
  out = size - kernel + 1
  hand = 2 * batch * out * out * channels * channels * kernel * kernel
  flops = compiled_flops(convolve.lower(x, w).compile())
  return {
    "input": [batch, size, size, channels],
    "kernel": [kernel, kernel, channels, channels],
    "padding": "VALID",
    "compiled_flops": flops,
    "hand_count_flops": hand,
    "compiled / hand": flops / hand if flops else None,
  }


def forward_flops(
  backbone: str, num_classes: int, image_size: int, batch_size: int, dtype
) -> float | None:
  """The model's forward FLOPs (the lowered, unoptimised program's count): 3× this is the
  textbook cost of a train step, a cross-check of the compiled count."""
  model = LandmarkNet(backbone, num_classes, dtype=dtype)
  images = jax.ShapeDtypeStruct((batch_size, image_size, image_size, 3), jnp.uint8)
  variables = jax.eval_shape(model.init, jax.random.key(0), images)
  return compiled_flops(
    jax.jit(lambda v, x: model.apply(v, x, train=False)).lower(variables, images)
  )


def median_run(run: Callable[[int], float], steps: int, repeats: int) -> float:
  """Median seconds per step over `repeats` runs of `steps` steps, after one warm-up run."""
  run(1)
  return statistics.median(run(steps) / steps for _ in range(repeats))


def _interleaved(runners: dict[str, Any], steps: int, repeats: int) -> dict[str, float]:
  """Seconds per step of each runner, timed in turns so that drift touches all alike."""
  for runner in runners.values():
    runner.run(1)
  samples = {name: [] for name in runners}
  for _ in range(repeats):
    for name, runner in runners.items():
      samples[name].append(runner.run(steps) / steps)
  return {name: statistics.median(times) for name, times in samples.items()}


def _train_row(settings, image_size, kind, seconds, flops, model_flops, peak) -> dict:
  row = {
    "image": image_size,
    "batch": settings.batch_size,
    "loss": kind,
    "seconds/step": seconds,
    "images/s": settings.batch_size / seconds,
    "compiled GFLOP/step": flops / 1e9 if flops else None,
    "3×forward GFLOP/step": 3 * model_flops / 1e9 if model_flops else None,
  }
  achieved = flops / seconds / 1e12 if flops else None
  row["TFLOP/s"] = achieved
  row["MFU %"] = 100 * achieved / peak if achieved and peak else None
  return row


def train_rows(settings: DeviceCheckSettings, mesh, peak: float | None) -> list[dict]:
  """The bf16 train step at every image size; at the first, softmax alone beside it."""
  rows = []
  for i, image_size in enumerate(settings.image_sizes):
    kinds = ("softmax_center", "softmax") if i == 0 else ("softmax_center",)
    runners = {
      kind: TrainStepRunner(
        settings.backbone,
        image_size,
        settings.batch_size,
        settings.num_classes,
        kind,
        "bfloat16",
        mesh,
      )
      for kind in kinds
    }
    seconds = _interleaved(runners, settings.steps, settings.repeats)
    model_flops = forward_flops(
      settings.backbone, settings.num_classes, image_size, settings.batch_size, jnp.bfloat16
    )
    for kind, runner in runners.items():
      rows.append(
        _train_row(settings, image_size, kind, seconds[kind], runner.flops, model_flops, peak)
      )
    if len(runners) == 2:
      rows[-2]["center loss overhead %"] = 100 * (
        seconds["softmax_center"] / seconds["softmax"] - 1
      )
    del runners  # the next size's state and executables replace these on the device
  return rows


def torch_rows(settings: DeviceCheckSettings) -> list[dict] | dict[str, str]:
  """PyTorch's images/s of the same step at each size, or why it was not measured."""
  try:
    import torch  # noqa: F401
    import torchvision  # noqa: F401  (the reference's models)
  except ImportError as e:
    return {"skipped": f"PyTorch/torchvision not importable ({e})"}
  from landmark_jax.benchmarks.torch_reference import TorchTrainStep, torch_backbone

  backbone = get_backbone(settings.backbone)
  shapes = jax.eval_shape(
    backbone.init,
    jax.random.key(0),
    jax.ShapeDtypeStruct((1, settings.image_sizes[0], settings.image_sizes[0], 3), jnp.float32),
  )["params"]
  jax_parameters = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))
  rows = []
  for image_size in settings.image_sizes:
    step = TorchTrainStep(
      torch_backbone(settings.backbone, backbone.stage_sizes, backbone.width_per_group),
      settings.num_classes,
      image_size,
      settings.batch_size,
    )
    seconds = median_run(step.run, settings.steps, settings.repeats)
    rows.append(
      {
        "image": image_size,
        "batch": settings.batch_size,
        "loss": "softmax_center",
        "framework": f"torch {torch.__version__} (AMP bf16, channels_last)",
        "backbone parameters": step.backbone_parameters,
        # torchvision has no tiny ResNet: `--smoke` compares different networks.
        "same network": step.backbone_parameters == jax_parameters,
        "seconds/step": seconds,
        "images/s": settings.batch_size / seconds,
      }
    )
    step.release()
  return rows


def inference_row(settings: DeviceCheckSettings, mesh) -> dict[str, Any]:
  """Embeddings/s at `inference_batch` (the batch already on the device) and one photo's
  latency through `Embedder.embed_pixels` (from host pixels to host embedding)."""
  from landmark_jax.embedding import Embedder

  image_size = settings.image_sizes[0]
  model = LandmarkNet(settings.backbone, settings.num_classes, dtype=jnp.bfloat16)
  variables = jax.jit(model.init)(
    jax.random.key(0), jnp.zeros((1, image_size, image_size, 3), jnp.uint8)
  )
  embedder = Embedder(model, variables, mesh, buckets=(1, settings.inference_batch))
  rng = np.random.default_rng(0)
  batch = sharding.shard_batch(
    rng.integers(0, 256, (settings.inference_batch, image_size, image_size, 3), dtype=np.uint8),
    mesh,
  )

  def run_batch(steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
      out = embedder._forward(embedder._variables, batch)
    jax.block_until_ready(out)
    return time.perf_counter() - start

  batch_seconds = median_run(run_batch, settings.steps, settings.repeats)
  photo = rng.integers(0, 256, (1, image_size, image_size, 3), dtype=np.uint8)

  def run_one(steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
      embedder.embed_pixels(photo)
    return time.perf_counter() - start

  one_seconds = median_run(run_one, settings.steps, settings.repeats)
  return {
    "image": image_size,
    "dtype": "bfloat16",
    "batch": settings.inference_batch,
    "images/s": settings.inference_batch / batch_seconds,
    "batch-1 latency ms": 1000 * one_seconds,
  }


def pipeline_rows(
  settings: DeviceCheckSettings, device_images_per_second: float
) -> list[dict] | dict[str, str]:
  """The training pipeline's images/s per worker count against what the device consumes."""
  try:
    import grain  # noqa: F401
  except ImportError:
    return {"skipped": "grain is not installed: the host pipeline was not measured"}
  from landmark_jax.benchmarks.data_speed import pipeline_images_per_second
  from landmark_jax.data import GLDv2Source, ImageConfig, PipelineConfig
  from landmark_jax.data.demo_dataset import demo_dataset

  root = settings.pipeline_root or demo_dataset()
  source = GLDv2Source(root)
  batch = min(settings.batch_size, settings.pipeline_images)
  rows = []
  for workers in settings.pipeline_workers:
    config = PipelineConfig(
      batch_size=batch,
      num_workers=workers,
      image=ImageConfig(
        resize_size=settings.image_sizes[0] * 8 // 7, crop_size=settings.image_sizes[0]
      ),
    )
    rate = pipeline_images_per_second(source, config, settings.pipeline_images)
    rows.append(
      {
        "workers": workers,
        "photos": str(root),
        "images/s": rate,
        "device images/s": device_images_per_second,
        "pipeline / device": rate / device_images_per_second,
      }
    )
  return rows


def machine() -> dict[str, Any]:
  device = jax.devices()[0]
  return {
    "device": device.device_kind,
    "platform": device.platform,
    "devices": jax.device_count(),
    "host": platform.processor() or platform.machine(),
    "host cores": os.cpu_count(),
    "jax": jax.__version__,
  }


def run_device_check(
  settings: DeviceCheckSettings, report: Callable[[str], None] = print
) -> dict[str, Any]:
  """Every measurement above; the JSON payload. `report` hears each part as it starts."""
  start = time.perf_counter()
  mesh = sharding.make_data_mesh(jax.devices()[:1])
  info = machine()
  peak, peak_source = chip_peak_tflops(info["device"], settings.peak_tflops)
  payload: dict[str, Any] = {
    "machine": info,
    "settings": dataclasses.asdict(settings),
    "peak bf16 TFLOP/s": peak,
    "peak source": peak_source,
  }
  # PyTorch first: it returns its memory (`release`), whereas JAX's allocator keeps its own.
  if settings.compare_torch:
    report("PyTorch reference step")
    payload["torch"] = torch_rows(settings)
  report("one convolution's FLOPs")
  payload["convolution"] = convolution_flops(jnp.bfloat16)
  report("train steps")
  payload["train"] = train_rows(settings, mesh, peak)
  if isinstance(payload.get("torch"), list):
    jax_rate = {(r["image"], r["loss"]): r["images/s"] for r in payload["train"]}
    for row in payload["torch"]:
      row["jax / torch"] = jax_rate[row["image"], row["loss"]] / row["images/s"]
  report("inference")
  payload["inference"] = inference_row(settings, mesh)
  consumed = next(r["images/s"] for r in payload["train"] if r["loss"] == "softmax_center")
  report("input pipeline")
  try:  # the last part, and optional: its failure must not lose the figures above
    payload["pipeline"] = pipeline_rows(settings, consumed)
  except (ImportError, OSError) as e:  # e.g. the demo photos need scikit-image; give --root
    payload["pipeline"] = {
      "skipped": f"the input pipeline could not run ({e}); give --root with photos of your own"
    }
  payload["wall seconds"] = time.perf_counter() - start
  return payload


def format_report(payload: dict[str, Any]) -> str:
  """The tables of `payload`, Markdown, for docs/benchmarks.md."""
  from landmark_jax.benchmarks.timing import format_table

  info = payload["machine"]
  peak = payload["peak bf16 TFLOP/s"]
  peak_text = f"dense bf16 peak {peak} TFLOP/s" if peak else "no known peak, so no MFU"
  lines = [
    f"# {info['device']} ({info['platform']}), JAX {info['jax']}; {peak_text} "
    f"({payload['peak source']}); MFU = compiled FLOPs per step / step time / peak",
    "",
    "## train step (bf16 compute, f32 parameters, SGD momentum)",
    format_table(
      payload["train"],
      [
        "image",
        "batch",
        "loss",
        "seconds/step",
        "images/s",
        "compiled GFLOP/step",
        "3×forward GFLOP/step",
        "TFLOP/s",
        "MFU %",
        "center loss overhead %",
      ],
    ),
  ]
  torch = payload.get("torch")
  if isinstance(torch, list):
    lines += [
      "",
      "## torchvision, same heads and SGD step",
      format_table(
        torch,
        ["image", "batch", "framework", "same network", "seconds/step", "images/s", "jax / torch"],
      ),
    ]
  elif torch:
    lines += ["", f"torchvision: {torch['skipped']}"]
  conv = payload["convolution"]
  compiled = f"{conv['compiled_flops']:,.0f}" if conv["compiled_flops"] else "not counted"
  lines += [
    "",
    f"What MFU counts — one convolution {conv['input']} * {conv['kernel']} "
    f"(VALID): {compiled} FLOPs by XLA's cost analysis, "
    f"{conv['hand_count_flops']:,} by hand (2·N·H'·W'·C_out·C_in·k²)",
  ]
  lines += [
    "",
    "## inference (Embedder)",
    format_table(
      [payload["inference"]], ["image", "dtype", "batch", "images/s", "batch-1 latency ms"]
    ),
  ]
  pipeline = payload["pipeline"]
  if isinstance(pipeline, list):
    lines += [
      "",
      "## input pipeline vs the device",
      format_table(pipeline, ["workers", "images/s", "device images/s", "pipeline / device"]),
    ]
  else:
    lines += ["", f"input pipeline: {pipeline['skipped']}"]
  lines += ["", f"wall time {payload['wall seconds']:.0f} s"]
  return "\n".join(lines)


def settings_from(smoke: bool, **overrides: Any) -> DeviceCheckSettings:
  """The full check or the smoke one, with the command line's values replacing the
  defaults (a None leaves the default)."""
  base = SMOKE if smoke else DeviceCheckSettings()
  return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
