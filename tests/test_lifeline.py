"""`lifeline.stop_with_parent`: a recipe's step ends when the recipe is SIGKILLed (it cannot
pass on a signal), so a rerun never meets a `train` of the dead run still writing."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from landmark_jax.recipe.run import Place, child_environment
from landmark_jax.recipe.steps import Step

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

# The child: arms the lifeline as `landmark-jax` does first, then says whether it is armed
# and whether a process it would start still sees the variable, and waits.
CHILD = textwrap.dedent(
  """
  import os, time
  from landmark_jax.lifeline import STOP_WITH_PARENT, stop_with_parent
  armed = stop_with_parent()
  print(armed, STOP_WITH_PARENT in os.environ, flush=True)
  time.sleep(120)
  """
)

# The parent: starts the child with a recipe step's environment (or without the variable),
# prints the child's pid and its line, and waits to be killed.
PARENT = textwrap.dedent(
  """
  import os, subprocess, sys, time
  from landmark_jax.lifeline import STOP_WITH_PARENT
  from landmark_jax.recipe.run import Place, child_environment
  from landmark_jax.recipe.steps import Step
  step = Step(1, "train", True, ("train",), lambda: False, "")
  env = child_environment(step, Place(0, 1, "alone", "a"), None)
  if sys.argv[1] == "without":
    env.pop(STOP_WITH_PARENT)
  argv = [sys.executable, "-c", sys.argv[2]]
  child = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
  print(child.pid, child.stdout.readline().strip(), flush=True)
  time.sleep(120)
  """
)


def _alive(pid: int) -> bool:
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
  except FileNotFoundError:
    return False


def _kill_parent_and_watch(mode: str, watch_s: float) -> tuple[str, bool]:
  """Starts the parent, SIGKILLs it once its child has spoken, and watches the child for
  up to `watch_s`: (what the child said, whether it is still alive)."""
  parent = subprocess.Popen(
    [sys.executable, "-c", PARENT, mode, CHILD], stdout=subprocess.PIPE, text=True
  )
  pid, said = parent.stdout.readline().split(" ", 1)
  child = int(pid)
  parent.send_signal(signal.SIGKILL)
  parent.wait()
  deadline = time.monotonic() + watch_s
  while _alive(child) and time.monotonic() < deadline:
    time.sleep(0.05)
  alive = _alive(child)
  if alive:
    os.kill(child, signal.SIGKILL)
  return said.strip(), alive


def test_a_step_ends_with_its_sigkilled_recipe_and_passes_nothing_on():
  said, alive = _kill_parent_and_watch("with", watch_s=10)
  assert said == "True False"  # armed; a process it starts would not take the parent for its own
  assert not alive


def test_without_the_lifeline_the_step_outlives_its_recipe():
  # The armed child ends at once with its parent (the test above): 2 s alive is plenty.
  said, alive = _kill_parent_and_watch("without", watch_s=2)
  assert said == "False False" and alive  # what the recipe's steps did before


def test_every_step_names_the_recipe_as_its_parent():
  for every_process in (True, False):
    step = Step(1, "x", every_process, ("x",), lambda: False, "")
    env = child_environment(step, Place(0, 2, "SLURM", "a", port_base=20000), None, base={})
    assert env["LANDMARK_JAX_STOP_WITH_PARENT"] == str(os.getpid())
    assert env["LANDMARK_JAX_RECIPE_STEP"] == "x"  # the step leaves "what next" to the recipe


def test_the_command_line_arms_it_first():
  # Named a parent that is not its own (one that died before the child could ask), the
  # program stops at once, before it does anything: so `landmark-jax` did arm it.
  env = {**os.environ, "LANDMARK_JAX_STOP_WITH_PARENT": str(os.getpid() + 1_000_000)}
  done = subprocess.run([sys.executable, "-m", "landmark_jax", "--version"], env=env)
  assert done.returncode == -signal.SIGTERM
  env["LANDMARK_JAX_STOP_WITH_PARENT"] = str(os.getpid())
  done = subprocess.run([sys.executable, "-m", "landmark_jax", "--version"], env=env)
  assert done.returncode == 0
