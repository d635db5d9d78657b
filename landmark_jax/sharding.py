"""Device-mesh helpers for data parallelism over a one-dimensional ``('data',)`` mesh.

This is what ``jax.pmap`` has become: a `jit` whose inputs carry shardings. The global batch
is split along its leading axis over the ``data`` axis, parameters and optimizer state are
replicated, and XLA (GSPMD) inserts the all-reduces — including for BatchNorm, whose
statistics are therefore computed over the global batch, exactly as on one device.
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def make_data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A ``('data',)`` mesh over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over ``data``; all other axes whole."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Places this process's part of a global batch (a pytree of host arrays) on the mesh.

  Each process passes its own slice; the result is one global array per leaf whose leading
  dimension is the sum over processes. The local batch must divide evenly over the local
  devices.
  """
  sharding = batch_sharding(mesh)
  num_local = len(mesh.local_devices)

  def put(x):
    x = np.asarray(x)
    if x.shape[0] % num_local:
      raise ValueError(
        f"a per-process batch of {x.shape[0]} does not split over {num_local} local devices; "
        "use a batch size divisible by the device count"
      )
    return jax.make_array_from_process_local_data(sharding, x)

  return jax.tree.map(put, batch)


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Copies a pytree onto every device of the mesh."""
  return jax.device_put(tree, replicated_sharding(mesh))


def divisible_batch_size(batch_size: int, mesh: Mesh, *, round_up: bool = False) -> int:
  """`batch_size` rounded to a multiple of the mesh's local devices (down, or up with
  `round_up`), and at least one photo per device: what `shard_batch` accepts."""
  devices = len(mesh.local_devices)
  rounded = -(-batch_size // devices) * devices if round_up else batch_size // devices * devices
  return max(devices, rounded)
