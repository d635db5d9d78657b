"""The recipe's executor with made-up steps: a process other than 0 waits for process 0's
one-process steps, stops with process 0's failure of the same attempt (not an earlier
one's), gives up on a silent process 0 and on a workdir it cannot see; a SIGTERM reaches
the running child, and the recipe exits with its status."""

import json
import os
import signal
import sys
import threading
import time

import pytest

from landmark_jax.recipe import run
from landmark_jax.recipe.layout import Layout
from landmark_jax.recipe.steps import Step


@pytest.fixture(autouse=True)
def quick(monkeypatch):
  monkeypatch.setattr(run, "POLL_SECONDS", 0.05)


def marker_step(number, path, every_process=False, args=("unused",)):
  return Step(number, f"step{number}", every_process, args, path.is_file, "a made-up step")


def runner(tmp_path, steps, rank, attempt="job.0"):
  place = run.Place(rank, 2, "SLURM", attempt, port_base=30000)
  return run.Runner(steps, place, Layout(tmp_path), run_in_recipe=lambda step: None)


def write(tmp_path, name, payload):
  (tmp_path / "recipe").mkdir(exist_ok=True)
  (tmp_path / "recipe" / name).write_text(json.dumps(payload))


def later(seconds, action):
  timer = threading.Timer(seconds, action)
  timer.start()
  return timer


def test_process_1_waits_for_process_0s_step_then_runs_the_joint_one(tmp_path):
  # Step 1 is process 0's (its marker appears later); step 2 is joint, already done; step
  # 3 is process 0's again, after the last joint step: process 1 stops before it.
  write(tmp_path, "attempt.json", {"attempt": "job.0"})
  done = tmp_path / "one.done"
  (tmp_path / "two.done").write_text("")
  steps = [
    marker_step(1, done),
    marker_step(2, tmp_path / "two.done", every_process=True),
    marker_step(3, tmp_path / "never"),
  ]
  timer = later(0.3, lambda: done.write_text(""))
  started = time.monotonic()
  assert runner(tmp_path, steps, rank=1).run() == 0
  assert time.monotonic() - started >= 0.3  # it did wait for the marker
  timer.join()


def test_process_1_stops_with_process_0s_failure_of_this_attempt_only(tmp_path):
  write(tmp_path, "attempt.json", {"attempt": "job.1"})
  write(tmp_path, "failed.json", {"attempt": "job.0", "step": "step1", "status": 7})
  done = tmp_path / "one.done"
  steps = [marker_step(1, done)]
  # An earlier attempt's failure is ignored: the step's output decides.
  timer = later(0.3, lambda: done.write_text(""))
  assert runner(tmp_path, steps, rank=1, attempt="job.1").run() == 0
  timer.join()
  done.unlink()
  timer = later(0.2, lambda: write(tmp_path, "failed.json", {"attempt": "job.1", "status": 7}))
  assert runner(tmp_path, steps, rank=1, attempt="job.1").run() == 7
  timer.join()


def test_process_1_gives_up_when_process_0_falls_silent(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(run, "SILENCE_LIMIT", 0.3)
  write(tmp_path, "attempt.json", {"attempt": "job.0"})
  write(tmp_path, "heartbeat.json", {"attempt": "job.0", "step": "step1", "time": 1})
  assert runner(tmp_path, [marker_step(1, tmp_path / "never")], rank=1).run() == 1
  assert "process 0 stopped reporting during step1" in capsys.readouterr().err


def test_a_workdir_process_1_cannot_see_is_named(tmp_path, monkeypatch, capsys):
  monkeypatch.setattr(run, "START_TIMEOUT", 0.2)
  # Process 0 wrote another attempt's file (or none): process 1 does not see this start.
  write(tmp_path, "attempt.json", {"attempt": "job.0"})
  steps = [marker_step(1, tmp_path / "never")]
  assert runner(tmp_path, steps, rank=1, attempt="job.1").run() == 2
  err = capsys.readouterr().err
  assert "does not see" in err and "storage every host sees" in err


def test_process_0_names_the_attempt_and_records_a_failed_step(tmp_path, capsys):
  write(tmp_path, "failed.json", {"attempt": "job.0", "status": 9})  # an earlier start's
  step = marker_step(1, tmp_path / "never", args=("-c", "import sys; sys.exit(3)"))
  r = runner(tmp_path, [step], rank=0, attempt="job.1")
  r.command = (sys.executable,)
  assert r.run() == 3
  failed = json.loads((tmp_path / "recipe" / "failed.json").read_text())
  assert failed == {"attempt": "job.1", "step": "step1", "status": 3}
  assert json.loads((tmp_path / "recipe" / "attempt.json").read_text())["attempt"] == "job.1"
  assert "step 1 (step1) failed with status 3" in capsys.readouterr().err


def test_a_sigterm_reaches_the_child_and_its_status_is_the_recipes(tmp_path, capfd):
  # The child says it got the signal (as `train` checkpoints), then exits 143.
  child = (
    "import signal, sys, time\n"
    "def stop(*_):\n"
    "  print('child got SIGTERM', flush=True); sys.exit(143)\n"
    "signal.signal(signal.SIGTERM, stop)\n"
    "print('child ready', flush=True)\n"
    "time.sleep(60)\n"
  )
  step = marker_step(1, tmp_path / "never", every_process=True, args=("-c", child))
  later_step = marker_step(2, tmp_path / "never.either", args=("-c", "print('ran')"))
  r = runner(tmp_path, [step, later_step], rank=0)
  r.command = (sys.executable,)
  before = signal.getsignal(signal.SIGTERM)
  timer = later(1.5, lambda: os.kill(os.getpid(), signal.SIGTERM))
  assert r.run() == 143
  timer.join()
  out, err = capfd.readouterr()
  assert "child got SIGTERM" in out and "ran" not in out  # nothing started after it
  assert "step 1 (step1) stopped; run the same command again to resume" in err
  assert signal.getsignal(signal.SIGTERM) is before


def test_joint_steps_get_a_port_of_their_own_and_single_steps_no_launcher():
  place = run.Place(0, 2, "SLURM", "job.0", port_base=30000)
  base = {"SLURM_STEP_ID": "0", "SLURM_PROCID": "0", "OMPI_COMM_WORLD_RANK": "0"}
  joint = Step(4, "embed", True, ("embed",), lambda: False, "")
  single = Step(5, "clean", False, ("clean",), lambda: False, "")
  assert run.child_environment(joint, place, None, base)["JAX_COORDINATOR_PORT"] == "30004"
  env = run.child_environment(single, place, "cpu", base)
  assert "SLURM_STEP_ID" not in env and "OMPI_COMM_WORLD_RANK" not in env
  assert env["JAX_PLATFORMS"] == "cpu" and "JAX_COORDINATOR_PORT" not in env
  flags = run.Place(1, 3, "flags", "a", coordinator="10.0.0.1:8476").joint_flags(joint)
  assert flags == (
    "--coordinator-address",
    "10.0.0.1:8480",
    "--num-processes",
    "3",
    "--process-id",
    "1",
  )


def test_the_timings_add_up_over_attempts(tmp_path):
  from landmark_jax.recipe.outcome import record_timings

  layout = Layout(tmp_path)
  assert record_timings(layout, {"round1/train": 10.0}) == {"round1/train": 10.0}
  # The resumed attempt adds its part of round 1 to the stopped attempt's.
  total = record_timings(layout, {"round1/train": 5.5, "round1/embed": 2.0})
  assert total == {"round1/train": 15.5, "round1/embed": 2.0}
  assert json.loads((tmp_path / "recipe" / "timings.json").read_text()) == total
