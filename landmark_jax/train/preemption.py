"""Stopping `train` cleanly when the machine is taken away: SIGTERM or SIGINT asks for a
checkpoint at the next step boundary, after which `train` raises `TrainingStopped`.

Spot GPUs and TPU VMs give seconds of notice, with SIGTERM. One process: a Python handler
notes the signal and the loop stops at the step it is on. Several processes must stop at
the same step, or the checkpoint is torn (each process's data position from another step)
and the collectives of the step one of them skips wait forever. JAX's preemption sync
manager makes that agreement through the coordination service that
`jax.distributed.initialize` started: its own SIGTERM handler tells every process of the
notice, and ``multihost_utils.reached_preemption_sync_point(step)`` turns True on all of
them at the same step, one past the furthest any had reached. SIGINT (Ctrl-C) is handed to
it as a SIGTERM to this process.
"""

from __future__ import annotations

import logging
import os
import signal
import threading

import jax

logger = logging.getLogger(__name__)

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _sync_manager():
  from jax._src import distributed

  return distributed.global_state.preemption_sync_manager


class StopOnSignal:
  """A context in which SIGTERM and SIGINT ask `requested(step)` to say stop.

  Entered before training reads its data, so a signal during the start (compilation, the
  first batches) stops after the first step too, rather than interrupting JAX or the data
  workers mid-call. Called at every step boundary with the step just taken; on several
  processes it must be called at every step by every process (JAX's sync protocol counts
  the calls).

  A repeated signal: a second SIGTERM is ignored (a wrapper and a supervisor may both
  forward one notice, and the checkpoint is what the notice is for); a second SIGINT (Ctrl-C
  twice) ends the process at once, unless the stop's checkpoint is being written
  (`writing_checkpoint`), which it waits for.
  """

  def __init__(self):
    self.signal_number: int | None = None
    self._previous: dict[int, object] = {}
    self._shared = jax.process_count() > 1
    self._writing = False

  def __enter__(self) -> "StopOnSignal":
    if threading.current_thread() is not threading.main_thread():
      # Python handles signals in the main thread only: a `train` called from another
      # thread is stopped the way its caller stops that thread.
      logger.info("train runs outside the main thread: SIGTERM/SIGINT will not checkpoint")
      return self
    if self._shared:
      if _sync_manager() is None:
        logger.warning(
          "JAX's preemption service is off in this process group: a SIGTERM will not "
          "checkpoint before the run ends"
        )
        return self
      # SIGTERM is JAX's own handler's (installed when the group was joined); SIGINT joins it.
      self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._forward_to_sigterm)
    else:
      for number in _STOP_SIGNALS:
        self._previous[number] = signal.signal(number, self._note)
    return self

  def __exit__(self, *exc) -> None:
    for number, handler in self._previous.items():
      signal.signal(number, handler)
    self._previous.clear()

  def _note(self, number, frame) -> None:
    name = signal.Signals(number).name
    if self.signal_number is None:
      self.signal_number = number
      logger.warning(
        "%s: stopping after this step, with a checkpoint%s",
        name,
        " (Ctrl-C again to stop at once, without it)" if number == signal.SIGINT else "",
      )
    elif number == signal.SIGINT and not self._writing:  # Ctrl-C twice: the user means it
      self.__exit__()
      os.kill(os.getpid(), number)
    else:
      logger.warning("%s again: still stopping, the checkpoint comes first", name)

  def writing_checkpoint(self) -> None:
    """From now on a repeated signal waits for the stop's checkpoint."""
    self._writing = True

  def _forward_to_sigterm(self, number, frame) -> None:
    self.signal_number = number
    os.kill(os.getpid(), signal.SIGTERM)

  def requested(self, step: int) -> bool:
    """Whether to checkpoint and stop after `step`: at once on one process; on several,
    at the step they agree on."""
    if not self._shared:
      return self.signal_number is not None
    if _sync_manager() is None:
      return False
    from jax.experimental import multihost_utils

    if multihost_utils.reached_preemption_sync_point(step):
      if self.signal_number is None:  # another process got the notice
        self.signal_number = signal.SIGTERM
      return True
    return False

  @property
  def signal_name(self) -> str:
    return signal.Signals(self.signal_number or signal.SIGTERM).name
