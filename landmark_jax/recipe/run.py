"""Runs the recipe's steps as child processes, on every process of a multi-process launch.

`train` and `embed` run on every process; each child inherits the launcher's variables (or
gets the explicit flags), so the library's own detection joins them, and each gets a
coordinator port of its own (base + its step number), so that a step never meets the
previous step's coordinator still shutting down. The one-process steps run on process 0;
the others wait for their output, and stop when process 0 records a failure of this
attempt (``recipe/failed.json``) or stops writing its heartbeat. A SIGTERM or Ctrl-C is
passed to the running child, and the recipe exits with its status (143 when `train`
checkpointed and stopped): running the same command again resumes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from typing import Callable

from landmark_jax.folders import atomic_write_text
from landmark_jax.lifeline import RECIPE_STEP, STOP_WITH_PARENT
from landmark_jax.recipe.layout import Layout
from landmark_jax.recipe.steps import Step, last_joint_step, read_json

POLL_SECONDS = 2.0  # how often a waiting process looks for a step's output (a stat)
HEARTBEAT_SECONDS = 30.0  # how often process 0 says it is alive while a step runs
SILENCE_LIMIT = 600.0  # a waiting process gives up after this long without a heartbeat
START_TIMEOUT = 300.0  # for process 0's attempt file to appear (JAX's own join timeout)
STOPPED = 143  # 128 + SIGTERM: what `train` returns when it checkpointed on a signal

# The variables by which a child would take itself for one of several processes: removed
# from the one-process steps, which must not wait for peers that run nothing.
LAUNCH_MARKERS = ("SLURM_STEP_ID", "SLURM_STEPID", "OMPI_COMM_WORLD_RANK")


@dataclasses.dataclass(frozen=True)
class Place:
  """This process among the recipe's processes."""

  rank: int
  count: int
  launcher: str  # "flags", "SLURM", "Open MPI" or "alone"
  attempt: str  # the same on every process, new at each start (a requeue, a rerun)
  coordinator: str | None = None  # HOST:PORT, with the explicit flags
  port_base: int | None = None  # SLURM / Open MPI: JAX_COORDINATOR_PORT = base + step

  def joint_flags(self, step: Step) -> tuple[str, ...]:
    if self.coordinator is None:
      return ()
    host, port = self.coordinator.rsplit(":", 1)
    return (
      "--coordinator-address",
      f"{host}:{int(port) + step.number}",
      "--num-processes",
      str(self.count),
      "--process-id",
      str(self.rank),
    )


def child_environment(
  step: Step, place: Place, single_steps_platform: str | None, base: dict | None = None
) -> dict[str, str]:
  env = dict(os.environ if base is None else base)
  env[STOP_WITH_PARENT] = str(os.getpid())  # a SIGKILLed recipe leaves no step running
  env[RECIPE_STEP] = step.name  # its advice on the next commands is the recipe's to give
  if step.every_process:
    if place.port_base is not None and place.count > 1:
      env["JAX_COORDINATOR_PORT"] = str(place.port_base + step.number)
  else:
    for name in LAUNCH_MARKERS:
      env.pop(name, None)
    if single_steps_platform:
      env["JAX_PLATFORMS"] = single_steps_platform
  return env


def exit_status(returncode: int) -> int:
  """A child's status as a shell reports it: killed by signal N → 128 + N."""
  return 128 - returncode if returncode < 0 else returncode


class Runner:
  """Runs `steps` as this process's part (see the module)."""

  def __init__(
    self,
    steps: list[Step],
    place: Place,
    layout: Layout,
    *,
    run_in_recipe: Callable[[Step], None],
    single_steps_platform: str | None = None,
    say: Callable[[str], None] = lambda text: print(text, flush=True),
  ):
    self.steps, self.place, self.layout = steps, place, layout
    self.run_in_recipe = run_in_recipe
    self.single_steps_platform = single_steps_platform
    self.say = say if place.rank == 0 else (lambda _text: None)
    self.child: subprocess.Popen | None = None
    self.stop_signal: int | None = None
    self.timings: dict[str, float] = {}
    # No PATH or virtual environment assumed: the children run in this interpreter.
    self.command: tuple[str, ...] = (sys.executable, "-m", "landmark_jax")

  # Files in <workdir>/recipe/ through which process 0 speaks to the waiting processes.

  def _file(self, name: str):
    return self.layout.own / name

  def _write(self, name: str, payload: dict) -> None:
    self.layout.own.mkdir(parents=True, exist_ok=True)
    atomic_write_text(self._file(name), json.dumps({"attempt": self.place.attempt, **payload}))

  def _ours(self, name: str) -> dict | None:
    found = read_json(self._file(name))
    return found if found and found.get("attempt") == self.place.attempt else None

  def run(self) -> int:
    previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
      return self._run()
    finally:
      for sig, handler in previous.items():
        signal.signal(sig, handler)

  def _on_signal(self, signum, _frame) -> None:
    self.stop_signal = signum
    if self.child is not None and self.child.poll() is None:
      self.child.send_signal(signal.SIGTERM)  # `train` checkpoints at an agreed step

  def _run(self) -> int:
    status = self._start()
    if status:
      return status
    last_joint = last_joint_step(self.steps)
    for step in self.steps:
      if self.place.rank != 0 and step.number > last_joint > 0:
        return 0  # the rest runs on process 0
      if self.stop_signal is not None:
        self.say(f"landmark-jax recipe: stopped before step {step.number} ({step.name})")
        return 128 + self.stop_signal
      if step.is_done():
        self.say(f"\n== {step.number}. {step.name} (done before: reused)")
        continue
      if step.every_process or self.place.rank == 0:
        status = self._run_step(step)
      else:
        status = self._wait_for(step)
      if status:
        if self.place.rank == 0:
          self._write("failed.json", {"step": step.name, "status": status})
          print(
            f"landmark-jax recipe: step {step.number} ({step.name}) "
            + (
              "stopped; run the same command again to resume"
              if status in (STOPPED, 130)
              else f"failed with status {status}; its output is above"
            ),
            file=sys.stderr,
            flush=True,
          )
        return status
    return 0

  def _start(self) -> int:
    """Process 0 names this attempt; the others must see it, which also proves that the
    workdir is on storage every host sees."""
    if self.place.rank == 0:
      self._write("attempt.json", {"processes": self.place.count, "time": time.time()})
      self._file("failed.json").unlink(missing_ok=True)
      return 0
    deadline = time.monotonic() + START_TIMEOUT
    while self._ours("attempt.json") is None:
      if self.stop_signal is not None:
        return 128 + self.stop_signal
      if time.monotonic() > deadline:
        print(
          f"landmark-jax recipe: error: process {self.place.rank} does not see "
          f"{self._file('attempt.json')} of attempt {self.place.attempt} after "
          f"{START_TIMEOUT:.0f} s: the workdir must be on storage every host sees, and every "
          "process needs the same --attempt (or process 0 did not start)",
          file=sys.stderr,
          flush=True,
        )
        return 2
      time.sleep(POLL_SECONDS)
    return 0

  def _run_step(self, step: Step) -> int:
    self.say(
      f"\n== {step.number}. {step.name}: {step.what}"
      + (f" (every process: {self.place.count})" if step.every_process else "")
    )
    self._write("heartbeat.json", {"step": step.name, "time": time.time()})
    started = time.perf_counter()
    if not step.args:
      self.run_in_recipe(step)
      status = 0
    else:
      extra = self.place.joint_flags(step) if step.every_process else ()
      self.say(f"   {step.command_line(extra)}")
      status = self._run_child(step, extra)
    if status in (0, STOPPED, 130):  # a stopped step's part is added to its resumption's
      self.timings[step.name] = time.perf_counter() - started
    return status

  def _run_child(self, step: Step, extra: tuple[str, ...]) -> int:
    env = child_environment(step, self.place, self.single_steps_platform)
    self.child = subprocess.Popen([*self.command, *step.args, *extra], env=env)
    if self.stop_signal is not None:  # a signal came while it started
      self.child.send_signal(signal.SIGTERM)
    beat = time.monotonic()
    while True:
      try:
        returncode = self.child.wait(timeout=POLL_SECONDS)
        break
      except subprocess.TimeoutExpired:
        if self.place.rank == 0 and time.monotonic() - beat > HEARTBEAT_SECONDS:
          self._write("heartbeat.json", {"step": step.name, "time": time.time()})
          beat = time.monotonic()
    self.child = None
    return exit_status(returncode)

  def _wait_for(self, step: Step) -> int:
    """A process other than 0 waits for process 0's one-process `step`."""
    last_beat, last_change = None, time.monotonic()
    while not step.is_done():
      if self.stop_signal is not None:
        return 128 + self.stop_signal
      failed = self._ours("failed.json")
      if failed is not None:
        return int(failed.get("status", 1))
      beat = self._ours("heartbeat.json")
      if beat != last_beat:
        last_beat, last_change = beat, time.monotonic()
      elif time.monotonic() - last_change > SILENCE_LIMIT:
        print(
          f"landmark-jax recipe: error: process 0 stopped reporting during {step.name} "
          f"({SILENCE_LIMIT:.0f} s without a heartbeat in {self._file('heartbeat.json')}); "
          "start every process again with the same command",
          file=sys.stderr,
          flush=True,
        )
        return 1
      time.sleep(POLL_SECONDS)
    return 0
