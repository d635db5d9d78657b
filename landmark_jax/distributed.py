"""Several processes as one JAX program: start-up, and a watchdog that ends a run whose peer died.

JAX is multi-controller: every host runs the same program, one process each, and
`jax.distributed.initialize` joins them (process 0 hosts the coordination service). Given
``--coordinator-address HOST:PORT --num-processes N --process-id I`` a process joins that
group; without them it joins the cluster JAX detects itself (SLURM, Open MPI, TPU pods) when
that cluster has more than one process (or with the config's ``distributed=True``), and
otherwise runs alone. On CPU the processes
exchange collectives through gloo.

Why a watchdog: when a process dies, its peers wait inside the next collective (gloo has no
useful timeout), and JAX only notices after its heartbeat timeout, then aborts the process
with a C++ stack trace. Here every process publishes a heartbeat in the coordination
service's key-value store each second; when a peer's heartbeat stops for
``heartbeat_timeout`` seconds, the watchdog prints one line naming that process and exits
with status 2. JAX's own timeout is set longer, so the watchdog speaks first.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import time

import jax
import numpy as np

from landmark_jax.errors import UsageError

logger = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_TIMEOUT = 60  # seconds without a peer's heartbeat before the run stops
JOIN_TIMEOUT = 300  # seconds the processes wait for each other to start (JAX's default)
_HEARTBEAT_KEY = "landmark_jax/heartbeat/"
_DONE_KEY = "landmark_jax/done/"
# The exit status of a run stopped because a peer died: the CLI's "user-level" status,
# since the fix is outside this process (restart every process; each resumes).
PEER_LOST_STATUS = 2


@dataclasses.dataclass(frozen=True)
class ProcessGroup:
  """How this process joins the others (all None: auto-detect, else run alone)."""

  coordinator_address: str | None = None
  num_processes: int | None = None
  process_id: int | None = None
  heartbeat_timeout: int = DEFAULT_HEARTBEAT_TIMEOUT

  def __post_init__(self):
    given = {
      "--coordinator-address": self.coordinator_address,
      "--num-processes": self.num_processes,
      "--process-id": self.process_id,
    }
    missing = [flag for flag, value in given.items() if value is None]
    if len(missing) not in (0, 3):
      raise UsageError(
        f"{', '.join(f for f in given if f not in missing)} given without "
        f"{' and '.join(missing)}: a process needs all three to join the others"
      )
    if self.num_processes is not None:
      if self.num_processes < 1:
        raise UsageError(f"--num-processes must be ≥ 1, got {self.num_processes}")
      if not 0 <= self.process_id < self.num_processes:
        raise UsageError(f"--process-id {self.process_id} is not in 0…{self.num_processes - 1}")
      if ":" not in self.coordinator_address:
        raise UsageError(
          f"--coordinator-address {self.coordinator_address!r} needs a port: "
          "HOST:PORT (process 0's host, a free port)"
        )
    if self.heartbeat_timeout < 1:
      raise UsageError(f"the heartbeat timeout must be ≥ 1 second, got {self.heartbeat_timeout}")

  @property
  def explicit(self) -> bool:
    return self.coordinator_address is not None


# Launchers whose processes JAX joins without flags, and the variable holding their count.
# Read here from the environment alone: JAX's own detection may query cloud metadata or
# warn about Kubernetes, too much for every single-process run to pay. Other clusters (TPU
# pods, Kubernetes) are joined with ``distributed=True``.
# SLURM's step variables, not the job's: a command typed inside an `salloc -n 4` allocation
# (not started by `srun`) is one process, and must not wait for three others.
_LAUNCHERS = {
  "SLURM": ("SLURM_STEP_ID", "SLURM_STEP_NUM_TASKS"),
  "Open MPI": ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
}


def _launched_processes() -> int:
  """How many processes a SLURM or Open MPI launcher started this one among; 1 if none."""
  for marker, count in _LAUNCHERS.values():
    if marker in os.environ:
      try:
        return max(1, int(os.environ.get(count, "1")))
      except ValueError:
        return 1
  return 1


def launched_rank(group: ProcessGroup) -> tuple[int, int, str]:
  """This process's index, the number of processes and who said so (``flags``, ``SLURM``,
  ``Open MPI`` or ``alone``), read from the flags and the launcher's step variables without
  starting JAX: a driver that starts JAX commands as children (`landmark-jax recipe`) must
  leave the accelerators to them."""
  if group.explicit:
    return group.process_id, group.num_processes, "flags"
  ranks = {"SLURM": "SLURM_PROCID", "Open MPI": "OMPI_COMM_WORLD_RANK"}
  for launcher, (marker, _) in _LAUNCHERS.items():
    if marker in os.environ:
      try:
        return int(os.environ.get(ranks[launcher], "0")), _launched_processes(), launcher
      except ValueError:
        break
  return 0, 1, "alone"


_watchdog: "Watchdog | None" = None


def initialize(
  group: ProcessGroup, *, force: bool = False, preemption_notices: bool = False
) -> bool:
  """Joins the process group `group` describes; returns whether this run is distributed.

  `force` (the config's ``distributed=True``) calls JAX's auto-detection even when it finds
  one process. `preemption_notices` (training): JAX's preemption service takes SIGTERM, so
  that the processes agree on a step to checkpoint at (`train.preemption`); without it a
  SIGTERM ends the process, as it does any other command. Must run before anything touches
  a JAX device.
  """
  global _watchdog
  if _watchdog is not None or jax.distributed.is_initialized():
    return jax.process_count() > 1
  if not group.explicit and not force and _launched_processes() <= 1:
    return False
  # CPU collectives between processes; ignored by accelerator backends.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  # JAX's service, on by default, swallows SIGTERM: `kill` would not stop an `embed`.
  jax.config.update("jax_enable_preemption_service", preemption_notices)
  kwargs = {}
  if group.explicit:
    kwargs = dict(
      coordinator_address=group.coordinator_address,
      num_processes=group.num_processes,
      process_id=group.process_id,
    )
    # Joining waits for every process (JAX gives up after 5 minutes): say for what.
    print(
      f"landmark-jax: process {group.process_id} waits for all {group.num_processes} "
      f"processes at {group.coordinator_address} (up to {JOIN_TIMEOUT} s)",
      file=sys.stderr,
      flush=True,
    )
  # JAX's heartbeat is the backstop; the watchdog's, shorter, gives the readable error.
  jax.distributed.initialize(
    **kwargs,
    initialization_timeout=JOIN_TIMEOUT,
    heartbeat_timeout_seconds=2 * group.heartbeat_timeout + 30,
  )
  logger.info(
    "process %d of %d joined (%d local devices, %d in all)",
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )
  if jax.process_count() > 1:
    _watchdog = Watchdog(group.heartbeat_timeout)
    _watchdog.start()
  return jax.process_count() > 1


def is_main_process() -> bool:
  """Process 0: the one that prints, logs and writes the run's shared files."""
  return jax.process_index() == 0


def finish() -> None:
  """Says this process ended normally, so the others do not take its silence for a death."""
  if _watchdog is not None:
    _watchdog.finish()


def await_verdict_on_peers() -> None:
  """After an unexpected error in a multi-process run: a peer's death often surfaces first
  as a failed collective here (gloo sees the closed socket). Wait for the watchdog, which
  names the dead process and exits; if every peer is still alive after its timeout, the
  error was this process's own, and the caller raises it."""
  if _watchdog is not None and _watchdog.is_alive():
    logger.info("waiting up to %d s to learn whether another process died", _watchdog.timeout)
    _watchdog.join(timeout=_watchdog.timeout + 5 * _watchdog.interval)


def _client():
  from jax._src import distributed

  return distributed.global_state.client


class Watchdog(threading.Thread):
  """Publishes this process's heartbeat and stops the process when a peer's stops.

  A peer that said it finished (`finish`) is not waited for. When the coordinator (process
  0) dies, the key-value store itself becomes unreachable: that names process 0.
  """

  def __init__(self, timeout: float, *, interval: float = 1.0):
    super().__init__(name="landmark-jax-watchdog", daemon=True)
    self.timeout, self.interval = timeout, interval
    self.me, self.count = jax.process_index(), jax.process_count()
    self._finished = threading.Event()

  def finish(self) -> None:
    self._finished.set()
    try:
      _client().key_value_set(f"{_DONE_KEY}{self.me}", "1", allow_overwrite=True)
    except Exception:  # the coordinator is gone: nothing left to tell
      pass

  def run(self) -> None:
    client = _client()
    # A peer gets `timeout` from this watchdog's start to send its first heartbeat.
    beat, last_seen = 0, {}
    last_change = dict.fromkeys(range(self.count), time.monotonic())
    while not self._finished.is_set():
      beat += 1
      now = time.monotonic()
      try:
        client.key_value_set(f"{_HEARTBEAT_KEY}{self.me}", str(beat), allow_overwrite=True)
        for peer in range(self.count):
          if peer == self.me or _try_get(client, f"{_DONE_KEY}{peer}") == "1":
            continue
          value = _try_get(client, f"{_HEARTBEAT_KEY}{peer}")
          if value is not None and value != last_seen.get(peer):
            last_seen[peer], last_change[peer] = value, now
          elif now - last_change[peer] > self.timeout and not self._finished.is_set():
            self._stop(
              f"process {peer} of {self.count} stopped sending heartbeats "
              f"{now - last_change[peer]:.0f} s ago (it died or hangs)"
            )
      except Exception as error:  # the coordination service (on process 0) is unreachable
        if self._finished.is_set():
          return
        if self.me != 0:
          self._stop(
            f"process 0 of {self.count}, the coordinator, is unreachable "
            f"({' '.join(str(error).split())[:200]})"
          )
      self._finished.wait(self.interval)

  def _stop(self, reason: str) -> None:
    print(
      f"landmark-jax: error: {reason}; process {self.me} stops too. Start every process "
      "again with the same command: each resumes from the last checkpoint",
      file=sys.stderr,
      flush=True,
    )
    logging.shutdown()
    # The main thread may sit in a collective that will never complete: leave at once.
    os._exit(PEER_LOST_STATUS)


def _try_get(client, key: str) -> str | None:
  try:
    return client.key_value_try_get(key)
  except Exception as error:  # not yet written: the peer has not started its watchdog
    if "NOT_FOUND" in str(error) or "not found" in str(error).lower():
      return None
    raise


# Work that each process does on its own devices (inference between and after stages),
# then combines: no collective runs over batches whose count differs between processes.


def local_mesh() -> jax.sharding.Mesh:
  """A ``('data',)`` mesh over this process's devices only."""
  from landmark_jax import sharding

  return sharding.make_data_mesh(jax.local_devices())


def this_process_part(n: int) -> np.ndarray:
  """Indices of this process's share of `n` records: every P-th, from its index."""
  return np.arange(jax.process_index(), n, jax.process_count())


def sum_over_processes(array: np.ndarray) -> np.ndarray:
  """The element-wise sum of `array` over every process (each passes its own), exact in
  float64: the values travel as raw bytes, since JAX would round float64 to float32."""
  array = np.ascontiguousarray(array, dtype=np.float64)
  if jax.process_count() == 1:
    return array
  from jax.experimental import multihost_utils

  gathered = np.asarray(multihost_utils.process_allgather(array.view(np.int32)))
  return np.ascontiguousarray(gathered).view(np.float64).sum(axis=0)


def barrier(name: str) -> None:
  """Waits until every process gets here (a no-op alone)."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils

    multihost_utils.sync_global_devices(name)
