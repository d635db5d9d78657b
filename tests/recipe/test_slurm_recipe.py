"""The recipe end to end through scripts/slurm/recipe.sbatch, as a SLURM job of 2 tasks × 4
simulated CPU devices: the script's own `srun` line runs a stand-in (tests/fake_slurm/srun)
that starts 2 local processes with SLURM's step variables, so the library's real detection
joins them. The job is stopped mid-round by a SIGTERM to the batch script (what
--signal=B:TERM does), requeues itself, and the rerun of the same script resumes and
finishes: a calibrated index, the report's table and a bundle. A third run reuses it all."""

import csv
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.helpers import free_port
from tests.recipe.helpers import photo_folder

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[2]
SBATCH = ROOT / "scripts" / "slurm" / "recipe.sbatch"
JOB_ID = "4242"
# 72 training photos over 2 processes in global batches of 32 (16 a process): 3 epochs of
# 36 photos a process are 6 steps (a two-process step costs ~1 s on 2 cores, gloo's
# all-reduce), a checkpoint every 2 (written at once: the stop must find it).
OVERRIDES = (
  "num_epochs=3 pipeline.batch_size=32 checkpoint_every_steps=2 async_checkpointing=False "
  "log_every_steps=2"
)


def job_environment(data, workdir, log, **extra):
  env = dict(
    os.environ,
    PATH=f"{ROOT / 'tests' / 'fake_slurm'}:{os.environ['PATH']}",
    SLURM_JOB_ID=JOB_ID,
    SLURM_NTASKS="2",
    SLURM_JOB_NUM_NODES="1",
    XLA_FLAGS="--xla_force_host_platform_device_count=4",
    JAX_PLATFORMS="cpu",
    PYTHON=sys.executable,
    DATA=str(data),
    WORKDIR=str(workdir),
    CONFIG="tiny_cpu",
    PRETRAINED="",
    GPUS_PER_NODE="4",
    OVERRIDES=OVERRIDES,
    RECIPE_ARGS=(
      f"--min-photos 5 --num-workers 0 --embed-batch-size 32 --embed-shard-size 8 "
      f"--port-base {free_port()}"
    ),
    FAKE_SLURM_LOG=str(log),
  )
  env.update(extra)
  return env


def run_job(env, timeout=600):
  result = subprocess.run(
    ["bash", str(SBATCH)], capture_output=True, text=True, env=env, timeout=timeout, check=False
  )
  return result.returncode, result.stdout, result.stderr


def embedded_ids(folder: pathlib.Path) -> set[str]:
  return {str(i) for shard in folder.glob("shard-*") for i in np.load(shard / "ids.npy")}


def test_the_recipe_runs_under_slurm_stops_requeues_and_resumes(tmp_path):
  data = photo_folder(tmp_path / "data")
  workdir, log = tmp_path / "w", tmp_path / "slurm.log"
  timings = {}

  # 1. The dry run, on a "login node": the plan for 2 processes, nothing written.
  started = time.monotonic()
  status, out, err = run_job(job_environment(data, workdir, log, DRY_RUN="1"))
  timings["dry run"] = time.monotonic() - started
  assert status == 0, err
  assert "round1/train — every process (2) — to do" in out and "export — process 0" in out
  assert not workdir.exists()

  # 2. The job, stopped by a SIGTERM to the batch script once round 1 has a checkpoint.
  started = time.monotonic()
  job = subprocess.Popen(
    ["bash", str(SBATCH)],
    stdout=subprocess.PIPE,
    stderr=subprocess.PIPE,
    text=True,
    env=job_environment(data, workdir, log),
  )
  checkpoint = workdir / "round1" / "train" / "checkpoints" / "2"
  while not checkpoint.is_dir() and job.poll() is None and time.monotonic() - started < 600:
    time.sleep(0.2)
  job.send_signal(signal.SIGTERM)
  out, err = job.communicate(timeout=600)
  timings["stopped run"] = time.monotonic() - started
  assert job.returncode == 143, out[-3000:] + err[-3000:]
  assert "landmark-jax train: stopped by SIGTERM at step" in err, err[-3000:]
  assert "step 2 (round1/train) stopped; run the same command again to resume" in err
  calls = log.read_text().splitlines()
  assert calls[0].startswith("srun --kill-on-bad-exit=1 --ntasks=2 ")
  assert calls[-1] == f"scontrol requeue {JOB_ID}"
  assert not (workdir / "round1" / "train" / "holdout.json").exists()  # stopped mid-round

  # 3. The requeued job: the same script resumes round 1 and finishes the recipe.
  started = time.monotonic()
  status, out, err = run_job(job_environment(data, workdir, log, SLURM_RESTART_COUNT="1"))
  timings["resumed run"] = time.monotonic() - started
  assert status == 0, out[-3000:] + err[-3000:]
  assert "resumed from step" in err
  # Both processes joined, 4 devices each, in both trainings (`train` logs at INFO).
  assert err.count("process 1 of 2 joined (4 local devices, 8 in all)") == 2, err[-3000:]
  assert "== 1. split (done before: reused)" in out
  # Both rounds' last checkpoints hold both processes' data positions, at the planned end.
  for folder, last in ((workdir / "round1" / "train", 6), (workdir / "train", None)):
    steps = sorted(int(p.name) for p in (folder / "checkpoints").iterdir() if p.name.isdigit())
    assert last is None or steps[-1] == last, steps
    data_files = sorted(
      p.name for p in (folder / "checkpoints" / str(steps[-1]) / "data").glob("*.json")
    )
    assert data_files == ["process_0-of-2.json", "process_1-of-2.json"], folder
  # Round 2 embedded the photos round 1's cleaning kept and every non-landmark one.
  with open(workdir / "split" / "train.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  with open(workdir / "round1" / "clean" / "train_clean.csv", newline="") as f:
    kept = {i for r in csv.DictReader(f) for i in r["images"].split()}
  non_landmarks = {r["id"] for r in rows if not r["landmark_id"]}
  assert embedded_ids(workdir / "round1" / "embeddings") == {r["id"] for r in rows}
  assert embedded_ids(workdir / "embeddings") == kept | non_landmarks
  manifest = json.loads((workdir / "index" / "manifest.json").read_text())
  assert "eta" in manifest
  assert (workdir / "bundle" / "bundle.json").is_file()
  assert "| all photos |" in out and f"Report: {workdir / 'report' / 'report.md'}" in out
  assert set(json.loads((workdir / "recipe" / "timings.json").read_text())) >= {
    "round1/train",
    "export",
  }

  # 4. Once more: every step reused, nothing trained.
  started = time.monotonic()
  status, out, err = run_job(job_environment(data, workdir, log, SLURM_RESTART_COUNT="2"))
  timings["finished run"] = time.monotonic() - started
  assert status == 0, err[-3000:]
  assert out.count("(done before: reused)") == 11 and "joined" not in err
  print("timings:", {k: round(v, 1) for k, v in timings.items()})
