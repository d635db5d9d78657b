"""Test-wide setup: eight simulated CPU devices, so every data-parallel path is exercised.

XLA reads the flag once, when JAX initialises its backends, so it is set here, before any
test module imports JAX.
"""

import os
import pathlib

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()

import tempfile  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

# Tests are dominated by compilation of small programs: skip XLA's slower optimisation
# passes, and share compiled programs between tests that build the same computation.
jax.config.update("jax_disable_most_optimizations", True)
jax.config.update("jax_compilation_cache_dir", tempfile.mkdtemp(prefix="landmark-jax-xla-cache-"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)

# ../shared beside the checkout: present on every developer machine and in CI, absent in a
# user's clone. Tests that need it skip with this reason when it is missing.
SHARED_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data"
LANDMARKS_MINI = SHARED_DATA / "landmarks-mini"


@pytest.fixture(scope="session")
def landmarks_mini() -> pathlib.Path:
  if not LANDMARKS_MINI.is_dir():
    pytest.skip(f"{LANDMARKS_MINI} is absent: ../shared/ exists beside CI checkouts only")
  return LANDMARKS_MINI
