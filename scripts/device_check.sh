#!/usr/bin/env bash
# The accelerator check, `landmark-jax benchmark device`, on a GPU (or TPU) machine that has
# only jax (with its CUDA plugin), flax, optax, orbax, torch, torchvision and timm installed,
# and no package registry. Nothing is installed into that Python: the library runs from this
# checkout (PYTHONPATH), and the few wheels below go to a folder of their own.
#
# 1. Here, where a registry is reachable (optional: without these wheels the input-pipeline
#    rows say "skipped: grain is not installed"; every other figure is measured). Use the GPU
#    machine's Python version and platform:
#
#      pip download --only-binary=:all: --no-deps --python-version 3.11 \
#          --platform manylinux2014_x86_64 --dest wheels \
#          grain array-record cloudpickle portpicker psutil
#
#    (jax, flax, optax and orbax already bring NumPy, absl-py, etils and protobuf;
#    torchvision brings Pillow.)
# 2. Carry this checkout, with wheels/ if you made it, to the machine.
# 3. There, from the checkout, one command:
#
#      bash scripts/device_check.sh [OUT_DIR]
#
#    It prints the tables (Markdown, for docs/benchmarks.md) and writes
#    OUT_DIR/device-check.json (default OUT_DIR: $OUT if set, else ./workdir/device-check).
#    Expect 5–8 minutes on one H100 or H200, most of it compiling; a second run on the same
#    machine reuses the compiled programs (OUT_DIR/xla-cache).
#
# Extra arguments after OUT_DIR go to `landmark-jax benchmark device` (see its --help), e.g.
#   bash scripts/device_check.sh out --no-torch --image-sizes 224
set -euo pipefail
out="${1:-${OUT:-workdir/device-check}}"
shift || true
mkdir -p "$out"
out="$(cd "$out" && pwd)"  # relative to where the command was typed, not to the checkout
cd "$(dirname "$0")/.."

python_path="$PWD"
if compgen -G "wheels/*.whl" > /dev/null; then
  python -m pip install --quiet --no-index --no-deps --target "$out/wheels" wheels/*.whl
  python_path="$PWD:$out/wheels"
fi

export PYTHONPATH="$python_path${PYTHONPATH:+:$PYTHONPATH}"
export JAX_COMPILATION_CACHE_DIR="${JAX_COMPILATION_CACHE_DIR:-$out/xla-cache}"
python -c 'import jax; print("devices:", jax.devices(), "| jax", jax.__version__)'
exec python -m landmark_jax.cli benchmark device --json "$out/device-check.json" "$@"
