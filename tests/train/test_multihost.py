"""Two processes of 4 simulated CPU devices each, joined on loopback through JAX's distributed
runtime (gloo collectives), train and embed as one 8-device run does.

The scenario, run once: the two processes train the tiny config with the curriculum on
across its stage boundary; process 1 is killed after a checkpoint, so process 0 must stop
with an error naming it instead of waiting forever; both are started again and resume from
their multi-host checkpoint; the final state must equal a one-process, 8-device run's. The
runs are tests/train/conftest.py's chain, which the SIGTERM scenario shares: the SIGKILL
comes in the run resumed after its stop.
"""

import os
import re
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

from landmark_jax.config import load_config
from landmark_jax.errors import ConfigError
from landmark_jax.train.checkpoints import load_trained
from landmark_jax.train.loop import train
from tests.helpers import CURRICULUM_RUN, free_port

# The session's curriculum run's config (tests.helpers: the stage boundary after step 9,
# checkpoints every 2 steps, learning rates at which rounding differences do not grow).
CONFIG = list(CURRICULUM_RUN)
HEARTBEAT_TIMEOUT = 10


def start(command, workdir, port, process_id, *extra):
  """`landmark-jax <command>` as process `process_id` of 2, with 4 of the 8 devices."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
  return subprocess.Popen(
    [
      sys.executable,
      "-m",
      "landmark_jax.cli",
      command,
      *extra,
      "--coordinator-address",
      f"127.0.0.1:{port}",
      "--num-processes",
      "2",
      "--process-id",
      str(process_id),
      "--heartbeat-timeout",
      str(HEARTBEAT_TIMEOUT),
    ],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    env=env,
    cwd=workdir.parent,
  )


def finish(processes, timeout=400):
  out = []
  for process in processes:
    stdout, stderr = process.communicate(timeout=timeout)
    out.append((process.returncode, stdout.decode(), stderr.decode()))
  return out


def assert_close_variables(a, b):
  """Equal up to float32 rounding: each device holds the same photos in both runs, but gloo
  and XLA's in-process all-reduce add the per-device sums in their own order. Measured:
  at most 5.5e-6 apart after the 12 steps (tests.helpers.CURRICULUM_RUN); the tolerance
  leaves a margin of ten below what one wrong batch does."""
  leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(leaves_a) == len(leaves_b)
  for x, y in zip(leaves_a, leaves_b):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=5e-5)


@pytest.fixture(scope="module")
def runs(two_process_chain, curriculum_run):
  """The killed-and-resumed two-process run and the one-process reference."""
  return dict(two_process_chain, reference=curriculum_run[1])


def test_a_dead_process_stops_the_other_with_an_error_naming_it(runs):
  assert runs["killed"][0] == -signal.SIGKILL, runs["killed"][2][-3000:]
  status, _, stderr = runs["survivor"]
  assert status == 2, stderr[-3000:]
  last = stderr.strip().splitlines()[-1]
  assert "process 1 of 2 stopped sending heartbeats" in last and "resumes" in last, last
  assert "Traceback" not in stderr
  # Its heartbeat timeout (10 s) plus polling and leaving — loosely bounded, for a loaded
  # machine: the point is that it ends, where a collective would wait forever.
  assert runs["stopped_after"] < 120


def test_both_processes_resume_and_end_where_one_process_with_8_devices_ends(runs):
  for status, _, stderr in runs["resumed"]:
    assert status == 0, stderr[-3000:]
  log = runs["resumed"][0][2]
  resumed_from = int(re.search(r"resumed from step (\d+) \(stage \d\)", log).group(1))
  assert resumed_from >= runs["kill_step"] >= 6, log[-3000:]
  two = load_trained(runs["workdir"])
  reference = runs["reference"]
  assert two.step == reference.steps == 12 and int(reference.state.stage) == 1
  assert_close_variables(
    two.variables,
    {
      "params": jax.device_get(reference.state.params),
      "batch_stats": jax.device_get(reference.state.batch_stats),
    },
  )
  # The last checkpoint holds each process's data position.
  written = sorted(
    p.name
    for p in (runs["workdir"] / "checkpoints" / "12" / "data").iterdir()
    if p.suffix == ".json"
  )
  assert written == ["process_0-of-2.json", "process_1-of-2.json"]
  # Process 0 alone prints the summary (gloo prints its own connection lines on both).
  assert "trained 12 steps" in runs["resumed"][0][1] and "trained" not in runs["resumed"][1][1]


def test_resuming_with_another_process_count_is_refused(runs):
  with pytest.raises(ConfigError, match="written by 2 process.*--num-processes 2"):
    train(load_config("tiny_cpu", CONFIG), runs["workdir"], progress=False)


def test_two_processes_embed_what_one_process_embeds(runs, tmp_path):
  from landmark_jax.data import source_for
  from landmark_jax.stages.embed import embed_to_folder, load_embeddings

  trained = load_trained(runs["workdir"])
  source = source_for(trained.config.data, "train", trained.label_map)
  one = embed_to_folder(trained, source, tmp_path / "one", shard_size=64, progress=False)
  port = free_port()
  out = tmp_path / "two"
  results = finish(
    [
      start(
        "embed",
        tmp_path / "x",
        port,
        i,
        "--checkpoint",
        str(runs["workdir"]),
        "--out",
        str(out),
        "--shard-size",
        "64",
      )
      for i in (0, 1)
    ]
  )
  for status, _, stderr in results:
    assert status == 0, stderr[-3000:]
  two = load_embeddings(out)
  assert len(list(out.glob("shard-*"))) == -(-len(source) // 64)
  np.testing.assert_array_equal(two.ids, one.ids)
  np.testing.assert_allclose(two.embeddings, one.embeddings, atol=1e-5)
