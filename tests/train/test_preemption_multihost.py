"""A SIGTERM to one of two training processes (4 simulated CPU devices each, gloo): both
checkpoint at the same step, agreed through JAX's coordination service, and exit with one
line saying how to resume; started again, they end with the parameters of a two-process run
nobody interrupted, bit for bit. The runs are tests/train/conftest.py's chain, which the
SIGKILL scenario of test_multihost.py shares: after the stop, the run is resumed, killed
and resumed again before it ends, so the end depends on the stop's checkpoint as before.

Also: a SIGTERM still ends a two-process command that is not training (JAX's preemption
service, which takes SIGTERM, is on for `train` alone).
"""

import signal
import time

import jax
import numpy as np
import pytest

from landmark_jax.train.checkpoints import load_trained
from tests.helpers import free_port
from tests.train.test_multihost import finish, start

pytestmark = pytest.mark.slow

TOTAL_STEPS = 12  # the session's curriculum run's (tests.helpers.CURRICULUM_RUN)


@pytest.fixture(scope="module")
def runs(two_process_chain):
  """tests/train/conftest.py's chain: the SIGTERM, then the runs resumed after it (the one
  its SIGKILL stopped, then the one that ends), and the run nobody interrupted."""
  chain = two_process_chain
  return dict(
    reference=chain["uninterrupted"],
    stopped=chain["stopped"],
    stop_step=chain["stop_step"],
    stop_data=chain["stop_data"],
    resumed_first=[chain["survivor"], chain["killed"]],
    resumed=chain["resumed"],
    workdir=chain["workdir"],
  )


def test_both_processes_stop_at_the_same_step_with_a_checkpoint(runs):
  step = runs["stop_step"]
  for status, _, stderr in runs["stopped"]:
    assert status == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr
  assert 2 < step < TOTAL_STEPS, step
  assert runs["stop_data"] == ["process_0-of-2.json", "process_1-of-2.json"]
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
  assert f"resumed from step {runs['stop_step']}" in runs["resumed_first"][0][2]
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
