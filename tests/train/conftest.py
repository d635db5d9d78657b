"""The two-process scenarios of test_preemption_multihost.py (a SIGTERM) and test_multihost.py
(a SIGKILL) as one chain of runs, once for the session: each two-process start costs about
25 s on 2 cores, and one chain needs one start fewer than the two scenarios apart."""

import json
import signal
import time

import pytest

from tests.helpers import CURRICULUM_RUN, free_port
from tests.train.test_multihost import finish, start

# The session's curriculum run (tests.helpers: 12 steps, the stage boundary after step 9,
# checkpoints every 2 steps). The SIGTERM's runs write no periodic checkpoint, so the latest
# checkpoint after the stop is the one the stop wrote; the resume after it takes the
# checkpoints every 2 steps back (a setting a resumed run may change), so the SIGKILL comes
# after a checkpoint the multi-host run wrote.
EVERY_2_STEPS = list(CURRICULUM_RUN)
NO_PERIODIC = [*CURRICULUM_RUN, "checkpoint_every_steps=1000"]
# The SIGKILL comes once the resumed run has written a checkpoint at this step or later:
# past the stage's first steps, as in the SIGKILL scenario alone.
KILL_AFTER_STEP = 6


def train_both(workdir, config):
  port = free_port()
  command = ["--config", "tiny_cpu", "--workdir", str(workdir), *config]
  return [start("train", workdir, port, i, *command) for i in (0, 1)]


def logged_step(workdir) -> int:
  try:
    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    return json.loads(lines[-1])["step"] if lines else 0
  except (OSError, ValueError, KeyError):
    return 0


@pytest.fixture(scope="session")
def two_process_chain(tmp_path_factory):
  """Two processes × 4 devices: a run nobody interrupted (`uninterrupted`), and in `workdir`
  one run stopped and resumed three times: a SIGTERM to process 1 once it steps (`stopped`,
  at `stop_step`, with `stop_data` the data positions of that checkpoint), resumed with
  checkpoints every 2 steps until a SIGKILL to process 1 after the checkpoint at
  `kill_step` (`survivor`, `killed`, and `stopped_after` the seconds process 0 took to stop),
  then resumed to the end (`resumed`). Each entry: (status, stdout, stderr) per process."""
  from landmark_jax.train.checkpoints import Checkpointer

  folder = tmp_path_factory.mktemp("two-processes")
  uninterrupted, workdir = folder / "uninterrupted", folder / "run"
  reference = finish(train_both(uninterrupted, NO_PERIODIC))

  processes = train_both(workdir, NO_PERIODIC)
  deadline = time.monotonic() + 400
  while time.monotonic() < deadline and processes[1].poll() is None:
    if logged_step(workdir) >= 2:  # compiled and stepping
      processes[1].send_signal(signal.SIGTERM)
      break
    time.sleep(0.05)
  stopped = finish(processes)
  checkpoints = workdir / "checkpoints"
  stop_step = Checkpointer(checkpoints).latest_step()
  # Read now: the later runs keep only their last 3 checkpoints.
  stop_data = sorted(p.name for p in (checkpoints / str(stop_step) / "data").glob("*.json"))

  # The stop comes one step past the furthest either process had reached when the signal
  # came (step 3 to 5 measured), so the next even step from 6 is a checkpoint of this run.
  kill_step = max(KILL_AFTER_STEP, stop_step + 2 - stop_step % 2)
  processes = train_both(workdir, EVERY_2_STEPS)
  deadline = time.monotonic() + 400
  while time.monotonic() < deadline and processes[1].poll() is None:
    if (checkpoints / str(kill_step)).is_dir():
      processes[1].send_signal(signal.SIGKILL)
      break
    time.sleep(0.05)
  killed_at = time.monotonic()
  survivor, killed = finish(processes)
  stopped_after = time.monotonic() - killed_at

  resumed = finish(train_both(workdir, EVERY_2_STEPS))
  return dict(
    uninterrupted=(uninterrupted, reference),
    workdir=workdir,
    stopped=stopped,
    stop_step=stop_step,
    stop_data=stop_data,
    kill_step=kill_step,
    survivor=survivor,
    killed=killed,
    stopped_after=stopped_after,
    resumed=resumed,
  )
