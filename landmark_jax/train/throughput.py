"""How fast training runs: images per second and, where the chip's peak is known, the model
FLOPs utilisation (MFU).

MFU is the step's FLOPs (XLA's cost analysis of the whole step, forward and backward, over
the global batch) per second, over the peak of every device taking part. The peak is the
chip's dense bfloat16 figure from its vendor, the convention MFU is reported in (PaLM,
MaxText), whatever ``model.dtype`` is; ``peak_tflops_per_device`` gives it for a chip the
table lacks. A CPU has no published peak: no MFU.
"""

from __future__ import annotations

import logging

import jax

logger = logging.getLogger(__name__)

# Dense bfloat16 FLOP/s by JAX's `device_kind`, longest prefix first (vendors' data sheets;
# the H100 and H200 figures are the SXM parts').
PEAK_FLOPS = (
  ("NVIDIA H100 PCIe", 756e12),
  ("NVIDIA H100 NVL", 835e12),
  ("NVIDIA H100", 989e12),
  ("NVIDIA H200", 989e12),
  ("NVIDIA GH200", 989e12),
  ("NVIDIA A100", 312e12),
  ("NVIDIA L4", 121e12),
  ("Tesla V100", 125e12),
  ("TPU v6 lite", 918e12),
  ("TPU v5 lite", 197e12),
  ("TPU v5p", 459e12),
  ("TPU v5", 459e12),
  ("TPU v4", 275e12),
  ("TPU v3", 123e12),
)


def peak_flops_per_device(device_kind: str, given_tflops: float = 0.0) -> float | None:
  """The peak FLOP/s of one device: `given_tflops` (× 1e12) when set, else the table's
  entry for `device_kind`; None when neither knows it."""
  if given_tflops > 0:
    return given_tflops * 1e12
  for prefix, peak in PEAK_FLOPS:
    if device_kind.startswith(prefix):
      return peak
  return None


def step_flops(step_fn, *args) -> float | None:
  """The FLOPs of one call of the jitted `step_fn` on `args`, over all devices: the cost
  analysis of the lowered (not yet partitioned) program, so the global batch's. Lowering
  traces once more but compiles nothing. None when XLA gives no estimate."""
  try:
    analysis = step_fn.lower(*args).cost_analysis()
  except Exception as error:  # an estimate only: training goes on without it
    logger.info("no FLOPs estimate for the train step: %s", error)
    return None
  if isinstance(analysis, (list, tuple)):  # older JAX: one dict per computation
    analysis = analysis[0] if analysis else {}
  flops = (analysis or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


def model_flops_utilization(
  flops_per_step: float, steps_per_second: float, peak_per_device: float, devices: int
) -> float:
  """The fraction of the devices' peak that the step's FLOPs use."""
  return flops_per_step * steps_per_second / (peak_per_device * devices)


def run_peak(given_tflops: float) -> float | None:
  """The peak of this run's devices (all the same kind in a data-parallel mesh)."""
  return peak_flops_per_device(jax.devices()[0].device_kind, given_tflops)
