"""A SIGTERM to one of two training processes (4 simulated CPU devices each, gloo): both
checkpoint at the same step, agreed through JAX's coordination service, and exit with one
line saying how to resume; started again, they end with the parameters of a two-process run
nobody interrupted, bit for bit.

Also: a SIGTERM still ends a two-process command that is not training (JAX's preemption
service, which takes SIGTERM, is on for `train` alone).
"""

import json
import signal
import time

import jax
import numpy as np
import pytest

from landmark_jax.train.checkpoints import Checkpointer, load_trained
from tests.helpers import CURRICULUM_RUN, free_port
from tests.train.test_multihost import finish, start

pytestmark = pytest.mark.slow

# The session's curriculum run (12 steps across the stage boundary after step 9) without
# periodic checkpoints: the latest checkpoint is the one the stop wrote.
CONFIG = [*CURRICULUM_RUN, "checkpoint_every_steps=1000"]
TOTAL_STEPS = 12


def train_both(workdir, port=None):
  port = port or free_port()
  command = ["--config", "tiny_cpu", "--workdir", str(workdir), *CONFIG]
  return [start("train", workdir, port, i, *command) for i in (0, 1)]


def logged_step(workdir) -> int:
  try:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["step"] if lines else 0
  except (OSError, ValueError, KeyError):
    return 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  folder = tmp_path_factory.mktemp("preempted")
  uninterrupted = folder / "uninterrupted"
  reference = finish(train_both(uninterrupted))

  workdir = folder / "preempted"
  processes = train_both(workdir)
  deadline = time.monotonic() + 400
  while time.monotonic() < deadline and processes[1].poll() is None:
    if logged_step(workdir) >= 2:  # compiled and stepping
      processes[1].send_signal(signal.SIGTERM)
      break
    time.sleep(0.05)
  stopped = finish(processes)
  stop_step = Checkpointer(workdir / "checkpoints").latest_step()
  resumed = finish(train_both(workdir))
  return dict(
    reference=(uninterrupted, reference),
    stopped=stopped,
    stop_step=stop_step,
    resumed=resumed,
    workdir=workdir,
  )


def test_both_processes_stop_at_the_same_step_with_a_checkpoint(runs):
  step = runs["stop_step"]
  for status, _, stderr in runs["stopped"]:
    assert status == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr
  assert 2 < step < TOTAL_STEPS, step
  data = sorted(
    p.name for p in (runs["workdir"] / "checkpoints" / str(step) / "data").glob("*.json")
  )
  assert data == ["process_0-of-2.json", "process_1-of-2.json"]
  # Process 0 says it, in one line, though the signal went to process 1.
  last = runs["stopped"][0][2].strip().splitlines()[-1]
  assert last == (
    f"landmark-jax train: stopped by SIGTERM at step {step} of {TOTAL_STEPS}, after writing "
    f"its checkpoint in {runs['workdir'] / 'checkpoints'}; run the same command again to "
    f"resume from step {step}"
  )
  assert "stopped by" not in runs["stopped"][1][2]


def test_the_resumed_run_ends_with_the_uninterrupted_runs_parameters(runs):
  for status, _, stderr in runs["resumed"] + runs["reference"][1]:
    assert status == 0, stderr[-3000:]
  assert f"resumed from step {runs['stop_step']}" in runs["resumed"][0][2]
  resumed, reference = load_trained(runs["workdir"]), load_trained(runs["reference"][0])
  assert resumed.step == reference.step == TOTAL_STEPS
  for x, y in zip(
    jax.tree.leaves(resumed.variables), jax.tree.leaves(reference.variables), strict=True
  ):
    np.testing.assert_array_equal(x, y)


def test_a_sigterm_ends_a_two_process_command_that_is_not_training(runs, tmp_path):
  port = free_port()
  command = ["--checkpoint", str(runs["reference"][0]), "--out", str(tmp_path / "emb")]
  processes = [start("embed", tmp_path / "x", port, i, *command) for i in (0, 1)]
  # Once the output folder exists, the processes have joined (a SIGTERM before that would
  # end them whatever the preemption service did).
  deadline = time.monotonic() + 300
  while not (tmp_path / "emb").exists() and time.monotonic() < deadline:
    time.sleep(0.02)
  processes[1].send_signal(signal.SIGTERM)
  (_, _, _), (status, _, stderr) = finish(processes)
  assert status == -signal.SIGTERM, stderr[-3000:]
