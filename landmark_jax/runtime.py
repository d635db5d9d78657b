"""How the library sets up JAX's runtime: XLA:CPU's convolution kernels for inference, and
the persistent compilation cache.

Both act only before JAX starts its backend (the first computation), and both give way to
what the user set.
"""

from __future__ import annotations

import os
import pathlib
import platform

# XLA:CPU (jaxlib 0.10) hands convolutions and dots to YNNPACK by default. On x86 (measured
# on AVX-512 Xeons) its convolutions make WRN-50-2's forward pass 1.4× slower than XLA's own
# Eigen kernels, while its dots are 5× faster than Eigen's. Keeping YNNPACK for dots only is
# the fastest inference of the settings measured (docs/benchmarks.md, "CPU serving"); but
# YNNPACK's convolution gradients are the faster ones (a small model's train step: 1.35×),
# so the setting is for processes that only infer: the CLI sets it for its inference
# commands (`cli.main.INFERENCE_COMMANDS`), a serving program of one's own calls
# `set_cpu_kernel_flag()` before its first JAX computation. The flag is experimental, so it
# is set only on the jaxlib versions and processors where it was measured: an XLA that does
# not know a flag aborts.
CPU_KERNEL_FLAG = "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"
CPU_KERNEL_FLAG_VERSIONS = ("0.10.",)
CPU_KERNEL_FLAG_MACHINES = ("x86_64", "AMD64")
# Set to 1 to leave XLA's own choice (what `benchmark cpu-kernels` compares against).
KEEP_XLA_DEFAULTS = "LANDMARK_JAX_XLA_DEFAULTS"


def _jaxlib_version() -> str | None:
  from importlib import metadata

  try:
    return metadata.version("jaxlib")
  except metadata.PackageNotFoundError:
    return None


# Set in the environment when `set_cpu_kernel_flag` added the flag (not the user).
KERNEL_FLAG_ADDED = "LANDMARK_JAX_CPU_KERNEL_FLAG_ADDED"


def set_cpu_kernel_flag(environ=os.environ) -> bool:
  """Adds `CPU_KERNEL_FLAG` to XLA_FLAGS unless the user chose this setting themselves, asked
  for XLA's defaults (``LANDMARK_JAX_XLA_DEFAULTS=1``), or this is a jaxlib version or a
  processor where it was not measured. True if it was added."""
  flags = environ.get("XLA_FLAGS", "")
  name = CPU_KERNEL_FLAG.split("=")[0]
  if name in flags or environ.get(KEEP_XLA_DEFAULTS) == "1":
    return False
  version = _jaxlib_version()
  if (
    version is None
    or not version.startswith(CPU_KERNEL_FLAG_VERSIONS)
    or platform.machine() not in CPU_KERNEL_FLAG_MACHINES
  ):
    return False
  environ["XLA_FLAGS"] = f"{flags} {CPU_KERNEL_FLAG}".strip()
  environ[KERNEL_FLAG_ADDED] = "1"  # so a training run started from here can take it out
  return True


def default_cache_dir() -> pathlib.Path:
  """The user cache: the demo dataset, compiled programs (``$LANDMARK_JAX_CACHE``, else
  ``~/.cache/landmark_jax``)."""
  return pathlib.Path(
    os.environ.get("LANDMARK_JAX_CACHE", pathlib.Path.home() / ".cache" / "landmark_jax")
  )


def enable_compilation_cache(path: str | os.PathLike | None = None) -> pathlib.Path | None:
  """Keeps every compiled program in `path` (default: ``xla/`` in the user cache, beside the
  demo dataset), so that the next start of `serve` or `recognize` loads its programs instead
  of compiling them.

  JAX's own setting (``JAX_COMPILATION_CACHE_DIR`` or ``jax_compilation_cache_dir``) wins.
  Returns the folder in use, or None if it cannot be created (the run goes on, compiling).
  """
  import jax

  chosen = jax.config.jax_compilation_cache_dir
  if not chosen:
    chosen = pathlib.Path(path) if path is not None else default_cache_dir() / "xla"
    try:
      pathlib.Path(chosen).mkdir(parents=True, exist_ok=True)
    except OSError:
      return None
    jax.config.update("jax_compilation_cache_dir", str(chosen))
  if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
    # Every program, however fast it compiles: start-up is the sum of many small ones.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  return pathlib.Path(chosen)


def usable_cpus() -> int:
  """The CPUs this process may run on: its affinity, which is SLURM's or a container's
  share of the machine (``os.cpu_count`` counts them all); the count where there is none."""
  if hasattr(os, "sched_getaffinity"):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1
