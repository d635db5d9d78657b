"""SIGTERM / SIGINT during `train`: a checkpoint at the next step boundary, `TrainingStopped`,
and a resume that ends where the uninterrupted run ends, bit for bit.

One process here, signalled from a hook at a chosen step; two processes, with a SIGTERM to
one of them, in tests/train/test_preemption_multihost.py.
"""

import gzip
import json
import logging
import signal

import jax
import numpy as np
import pytest

from landmark_jax.config import load_config
from landmark_jax.errors import ConfigError, TrainingStopped, UsageError
from landmark_jax.train import throughput
from landmark_jax.train.checkpoints import Checkpointer
from landmark_jax.train.loop import train
from landmark_jax.train.profiling import parse_profile_steps
from tests.helpers import CURRICULUM_RUN, run_in_process


def assert_same_state(a, b):
  a, b = jax.device_get((a, b))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(x, y)


def signal_at(step_to_signal, number, times=1):
  """A hook that sends `number` to this process `times` times right after step
  `step_to_signal`."""
  import os

  def hook(step, state, metrics):
    if step == step_to_signal:
      for _ in range(times):
        os.kill(os.getpid(), number)

  return hook


@pytest.mark.slow
def test_signals_checkpoint_at_the_step_and_the_resumes_are_exact(curriculum_run, tmp_path):
  """Stopped twice and resumed twice, the run ends where the uninterrupted one does."""
  config = load_config("tiny_cpu", list(CURRICULUM_RUN))
  for number, at_step, times, stage in [
    # Inside stage 0, between the checkpoints every 2 steps: the stop writes its own. Sent
    # twice (a wrapper and a supervisor both forwarding the notice): the second waits.
    (signal.SIGTERM, 5, 2, 0),
    # Resumed, then the stage's last step (the boundary is after step 9): the stop writes
    # the boundary's checkpoint, stage 1's, with the grown classifier.
    (signal.SIGINT, 9, 1, 1),
  ]:
    with pytest.raises(TrainingStopped) as stopped:
      train(config, tmp_path, hooks=[signal_at(at_step, number, times)], progress=False)
    assert stopped.value.step == at_step and stopped.value.exit_status == 128 + number
    name = signal.Signals(number).name
    assert f"stopped by {name} at step {at_step} of 12" in str(stopped.value)
    # The handlers are the caller's again once `train` returns.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    checkpoints = Checkpointer(tmp_path / "checkpoints")  # reads the folder when made
    assert checkpoints.latest_step() == at_step
    assert checkpoints.restore_meta(at_step)["stage"] == stage

  resumed = train(config, tmp_path, progress=False)
  assert resumed.steps == 12
  assert_same_state(resumed.state, curriculum_run[1].state)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [row["step"] for row in rows] == list(range(1, 13))


@pytest.mark.slow
def test_ctrl_c_during_the_start_stops_after_the_first_step(tmp_path, monkeypatch):
  """A SIGINT while the data is read and the step compiled: not a KeyboardInterrupt inside
  JAX or the data workers (which ended in a segmentation fault at exit), but a stop with
  a checkpoint after step 1."""
  import os

  from landmark_jax.train import curriculum

  original = curriculum.plan_stages

  def interrupted_plan(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    return original(*args, **kwargs)

  monkeypatch.setattr(curriculum, "plan_stages", interrupted_plan)
  with pytest.raises(TrainingStopped) as stopped:
    train(load_config("tiny_cpu", list(CURRICULUM_RUN)), tmp_path, progress=False)
  assert stopped.value.step == 1 and stopped.value.signal_number == signal.SIGINT
  assert Checkpointer(tmp_path / "checkpoints").latest_step() == 1
  assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.slow
def test_the_command_line_says_how_to_resume_in_one_line(tmp_path, monkeypatch, capsys):
  """SIGTERM through `landmark-jax train`: status 128 + 15 and one line naming the step."""
  import os

  from landmark_jax.train import loop

  original = loop._run_stage

  def signalled_run_stage(run, *args):  # the CLI takes no hooks: give the run one
    run.hooks = [signal_at(3, signal.SIGTERM)]
    return original(run, *args)

  monkeypatch.setattr(loop, "_run_stage", signalled_run_stage)
  workdir = tmp_path / "run"
  status, out, err = run_in_process(
    ["train", "--config", "tiny_cpu", "--workdir", workdir, *CURRICULUM_RUN], capsys
  )
  assert status == 128 + signal.SIGTERM, err
  last = err[-1]
  assert last == (
    f"landmark-jax train: stopped by SIGTERM at step 3 of 12, after writing its checkpoint in "
    f"{workdir / 'checkpoints'}; run the same command again to resume from step 3"
  )
  assert not any("Traceback" in line for line in err) and not any("trained" in l for l in out)
  assert os.path.isdir(workdir / "checkpoints" / "3")


def test_profile_steps_are_parsed_or_refused_in_one_line(capsys):
  assert parse_profile_steps("10:20") == (10, 20)
  assert parse_profile_steps("7") == (7, 7)
  for bad in ("0:3", "5:2", "a:b", ":", "3:"):
    with pytest.raises(UsageError, match="give A:B"):
      parse_profile_steps(bad)
  status, _, err = run_in_process(
    ["train", "--config", "tiny_cpu", "--workdir", "w", "--profile-steps", "4:2"], capsys
  )
  assert status == 2 and len(err) == 1 and "give A:B" in err[0], err


@pytest.mark.slow
def test_profile_and_mfu_in_the_train_log(tmp_path, caplog, capsys):
  """`train --profile-steps 2:3`: a trace that Perfetto reads (its JSON names the train
  step's XLA program), named in the summary; and the MFU the log derives from a given peak,
  recomputed here from the logged images/s and the step's FLOPs."""
  peak_tflops = 0.5
  overrides = ["max_steps=4", "log_every_steps=1", f"peak_tflops_per_device={peak_tflops}"]
  config = load_config("tiny_cpu", overrides)
  status, out, err = run_in_process(
    ["train", "--config", "tiny_cpu", "--workdir", tmp_path, *overrides, "--profile-steps", "2:3"],
    capsys,
  )
  assert status == 0, err[-20:]
  assert (
    f"profile of steps 2:3: tensorboard --logdir {tmp_path / 'profile'}, or its "
    "perfetto_trace.json.gz at ui.perfetto.dev"
  ) in out
  traces = list((tmp_path / "profile" / "process_0").rglob("perfetto_trace.json.gz"))
  assert len(traces) == 1, list((tmp_path / "profile").rglob("*"))
  events = json.loads(gzip.decompress(traces[0].read_bytes()))
  names = {e.get("name", "") for e in events.get("traceEvents", events)}
  assert any("train_step" in name for name in names), sorted(names)[:50]
  assert list((tmp_path / "profile" / "process_0").rglob("*.xplane.pb"))  # TensorBoard's

  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [row["step"] for row in rows] == [1, 2, 3, 4]
  batch, flops = config.pipeline.batch_size, rows[0]["flops_per_step"]
  assert flops > 0 and all(row["flops_per_step"] == flops for row in rows)
  for row in rows:
    steps_per_second = row["images_per_second"] / batch
    np.testing.assert_allclose(
      row["mfu"], flops * steps_per_second / (peak_tflops * 1e12 * jax.device_count()), rtol=1e-6
    )

  # A window the run does not reach is said, not passed over.
  with caplog.at_level(logging.WARNING, logger="landmark_jax.train.profiling"):
    train(config, tmp_path, progress=False, profile_steps=(6, 8))
  assert "--profile-steps 6:8: step 6 did not run in this call (it ended at step 4" in caplog.text


def test_step_flops_are_the_global_batchs():
  """XLA's count for a matmul sharded over 8 devices is the whole product's, 2·m·n·k, not
  one device's share."""
  from landmark_jax import sharding

  mesh = sharding.make_data_mesh()
  step = jax.jit(
    lambda a, b: a @ b,
    in_shardings=(sharding.batch_sharding(mesh), sharding.replicated_sharding(mesh)),
  )
  a, b = np.ones((64, 32), np.float32), np.ones((32, 16), np.float32)
  assert throughput.step_flops(step, a, b) == 2 * 64 * 32 * 16


def test_mfu_and_the_peak_table():
  # 1e12 FLOPs a step, 2 steps/s, on 4 devices of 1e12 FLOP/s: half of the peak.
  assert throughput.model_flops_utilization(1e12, 2.0, 1e12, 4) == 0.5
  assert throughput.peak_flops_per_device("NVIDIA H100 80GB HBM3") == 989e12
  assert throughput.peak_flops_per_device("NVIDIA H100 PCIe") == 756e12
  assert throughput.peak_flops_per_device("TPU v5 lite") == 197e12
  assert throughput.peak_flops_per_device("TPU v5p") == 459e12
  assert throughput.peak_flops_per_device("cpu") is None
  assert throughput.peak_flops_per_device("cpu", 2.5) == 2.5e12
  with pytest.raises(ConfigError, match="peak_tflops_per_device must be ≥ 0"):
    load_config("tiny_cpu", ["peak_tflops_per_device=-1"])
