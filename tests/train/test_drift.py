"""Two processes × 4 simulated CPU devices against one process × 8 on the run that issue 30
found drifting: `tiny_cpu` for 4 epochs (45 steps) with every learning rate at 0.01.

At these rates training from scratch is chaotic: a float32 rounding difference (an all-reduce
adding its per-device sums in another order) flips a ReLU or max-pool switch and grows, and
one process on 1 or 2 devices leaves 1 × 8 as early and as far as two processes do
(docs/decisions.md, "What 'two processes agree with one' can mean"). So 2 × 4 is not held to
1 × 8 over the run: correct code would fail that. What is tested instead:

- one real train step from the same state, on the same global batch, agrees to rounding;
- over the 45 steps, 2 × 4 leaves 1 × 8 no further than the single-process layouts do.

The runs, once for all tests: 1 × 8, 2 × 4, 1 × 4 and 1 × 2 train the 45 steps; then
1 × 8 and 2 × 4 each take one step from 1 × 8's checkpoint at step `SHARED_STEP`. They run
with XLA's optimisations on, as the issue's command ran (the suite turns them off for its
in-process tests; this file compares its subprocesses only with one another), which makes a
step ten times faster. The bounds below were measured on the 2-core machine (2026-12-07)
over seeds 0–2, with XLA's optimisations on and off.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from landmark_jax.data import source_for
from landmark_jax.recognize.embedder import PhotoEmbedder
from landmark_jax.train.checkpoints import load_trained
from tests.helpers import free_port

pytestmark = pytest.mark.slow

# The issue's command line: 4 epochs of the demo's 366 photos in batches of 32 are 45 steps.
ISSUE_RUN = (
  "num_epochs=4",
  "log_every_steps=1",
  "optim.lr_backbone=0.01",
  "optim.lr_embedding=0.01",
  "optim.lr_classifier=0.01",
)
STEPS = 45
# The state both layouts step from: 1 × 8's after 15 steps, past step 10 where 2 × 4 leaves
# 1 × 8, and step 14 where the issue saw (and this run gives) losses 8.9e-4 apart. By then
# their own states differ by up to 1.6e-3 in the parameters and 2.1e-2 in the centers.
SHARED_STEP = 15

REFERENCE = (1, 8)
TWO_PROCESSES = (2, 4)
# Layouts that differ from 1 × 8 only in the order of their sums. Which of them stays near
# 1 × 8 depends on the compilation and the seed: with XLA's optimisations on (seed 0), 1 × 4
# stays within rounding of 1 × 8 up to step 35 and 1 × 2 leaves at step 6; with them off,
# 1 × 4's loss stays within 1e-3 of 2 × 4's for 21–35 steps (seeds 0–2) while both leave
# 1 × 8 (from step 3 to 19). So both. 1 × 1 is left out: of the six measurements below it
# lowered the worst ratio in one (1.24 to 1.05), the others by ≤ 0.06, and its far spread in
# the embeddings (seed 0) cut the injected bugs' ratio there from 3.9 to 2.4.
SINGLE_PROCESS = ((1, 4), (1, 2))

# One step from the same state, 1 × 8 against 2 × 4: in 7 measured steps (from steps 15
# and 30, seeds 0–2, XLA's optimisations off; from step 15, seed 0, on) at most 1.2e-7
# apart in the parameters, 4.8e-7 in the batch statistics, 7.2e-7 in the centers, 2.4e-7 in
# the momentum and 1.2e-7 in the loss: float32 rounding of sums added in another order, no
# element using more than 0.30 of the tolerance. The injected bugs: see the test.
STEP_RTOL, STEP_ATOL = 1e-5, 1e-6
STEP_LOSS_ATOL = 1e-6

# Over the run, at every step: |loss(2 × 4) − loss(1 × 8)| ≤ SPREAD_FACTOR × the furthest
# any single-process layout is from 1 × 8 within WINDOW steps either side, + ROUNDING. The
# window, because the layouts leave 1 × 8 a step or two apart and each step's loss swings
# with its batch; ROUNDING, for the steps before any layout has left (at step 1, the same
# state and batch everywhere, the losses differ by ≤ 7.2e-7, 3 ulps). Measured, the worst
# step of 2 × 4 used 1.24 of the spread (seeds 0–2, optimisations on: 1.24, 1.00, 0.08;
# off: 1.13, 1.01, 1.05); a one-step window would have needed 2.93, none 37. The injected
# bugs that change the training break the bound from step 1 (see the test).
SPREAD_FACTOR, WINDOW, ROUNDING = 2.0, 2, 1e-5
# The 168 held-out photos' final embeddings: the mean distance from 1 × 8's, 2 × 4's within
# EMBEDDING_FACTOR × the furthest single-process layout's. Measured at most 1.08 of it (seeds
# 0–2, optimisations on and off); the injected bugs that change the training, 3.6 and more
# (see the test). Where the layouts spread further (seed 1: 0.46) this alone would not catch
# such a bug; the loss bound above does, at step 1.
EMBEDDING_FACTOR = 2.0


def name(layout) -> str:
  return "{}x{}".format(*layout)


def start(folder, workdir, layout, *overrides) -> list[subprocess.Popen]:
  """`landmark-jax train` of the issue's run in `layout` (processes, devices per process),
  in folder/workdir; process i's output goes to folder/<workdir>.<i>.log."""
  processes, devices = layout
  env = {k: v for k, v in os.environ.items() if k != "JAX_DISABLE_MOST_OPTIMIZATIONS"}
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  command = [
    sys.executable,
    "-m",
    "landmark_jax.cli",
    "train",
    "--config",
    "tiny_cpu",
    "--workdir",
    str(folder / workdir),
    *ISSUE_RUN,
    f"checkpoint_every_steps={SHARED_STEP}",
    *overrides,
  ]
  if processes > 1:
    command += ["--coordinator-address", f"127.0.0.1:{free_port()}"]
    command += ["--num-processes", str(processes)]
  started = []
  for i in range(processes):
    with open(folder / f"{workdir}.{i}.log", "w") as log:
      started.append(
        subprocess.Popen(
          command + (["--process-id", str(i)] if processes > 1 else []),
          stdout=log,
          stderr=subprocess.STDOUT,
          env=env,
          cwd=folder,
        )
      )
  return started


def finish(processes, timeout=600) -> None:
  try:
    for process in processes:
      process.wait(timeout=timeout)
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
  for process in processes:
    log = process.args[process.args.index("--workdir") + 1]
    assert process.returncode == 0, (
      f"{log} failed:\n" + pathlib.Path(f"{log}.0.log").read_text()[-3000:]
    )


def one_step_copy(folder, layout) -> str:
  """A copy of `layout`'s workdir that resumes from its checkpoint at SHARED_STEP with the
  state there replaced by 1 × 8's: its own data position (the batch of step SHARED_STEP + 1,
  cut for its processes) with 1 × 8's parameters, statistics, centers and momentum."""
  source, copy = folder / name(layout), folder / f"{name(layout)}-step"
  checkpoints = source / "checkpoints"
  shutil.copytree(
    source,
    copy,
    ignore=lambda d, names: [n for n in names if d == str(checkpoints) and n != str(SHARED_STEP)],
  )
  state = copy / "checkpoints" / str(SHARED_STEP) / "state"
  shutil.rmtree(state)
  shutil.copytree(folder / name(REFERENCE) / "checkpoints" / str(SHARED_STEP) / "state", state)
  return copy.name


@pytest.fixture(scope="module")
def runs(demo_cache, tmp_path_factory):
  folder = tmp_path_factory.mktemp("drift")
  # Two processes at a time on 2 cores; 2 × 4 waits on gloo for most of its steps (35 images/s
  # against 1 × 8's 400), so a single-process run goes beside it.
  finish(start(folder, "1x8", REFERENCE) + start(folder, "1x4", (1, 4)))
  finish(start(folder, "2x4", TWO_PROCESSES) + start(folder, "1x2", (1, 2)))
  one_step = f"max_steps={SHARED_STEP + 1}"
  finish(
    [
      p
      for layout in (REFERENCE, TWO_PROCESSES)
      for p in start(folder, one_step_copy(folder, layout), layout, one_step)
    ]
  )
  return folder


def losses(workdir) -> dict[int, float]:
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return {row["step"]: row["loss"] for row in rows}


def saved_state(workdir, step) -> dict:
  """Every array of the train state checkpointed at `step`, on the host."""
  path = workdir / "checkpoints" / str(step) / "state"
  checkpointer = ocp.PyTreeCheckpointer()
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  abstract = jax.tree.map(
    lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
    checkpointer.metadata(path).item_metadata.tree,
  )
  restore_args = ocp.checkpoint_utils.construct_restore_args(abstract)
  return jax.device_get(
    checkpointer.restore(path, args=ocp.args.PyTreeRestore(abstract, restore_args=restore_args))
  )


def test_one_step_from_the_same_state_agrees_to_rounding(runs):
  """Parameters, batch statistics, centers, momentum and loss after one step from 1 × 8's
  state at step 15, to float32 rounding (the tolerances above).

  Injected bugs (seed 0; a throwaway patch of the library in the subprocesses) put them
  this far apart: process 1 fed process 0's photos, 3.8e-3 in the parameters, 0.32 in the
  batch statistics, 0.83 in the centers, 0.38 in the momentum, 5.2e-2 in the loss; each
  process stepping on its own devices (no all-reduce across processes), 4.6e-3, 0.45, 0.53,
  0.46 and 5.2e-2; the batch statistics alone kept per process (the step otherwise right),
  0.45 in them and rounding elsewhere. Where a bug moves them, by 2,870 times the tolerance
  or more. The last is the bug only this test catches: it leaves the training loss bitwise
  as it was (training normalises with the batch's own statistics) and the embeddings within
  the spread (1.16).
  """
  one, two = (runs / f"{name(layout)}-step" for layout in (REFERENCE, TWO_PROCESSES))
  step = SHARED_STEP + 1
  a, b = saved_state(one, step), saved_state(two, step)
  assert int(a["step"]) == int(b["step"]) == step
  for part in ("params", "batch_stats", "centers", "opt_state"):
    leaves_a, tree = jax.tree_util.tree_flatten_with_path(a[part])
    leaves_b = jax.tree.leaves(b[part])
    assert len(leaves_a) == len(leaves_b), tree
    for (path, x), y in zip(leaves_a, leaves_b):
      np.testing.assert_allclose(
        y, x, rtol=STEP_RTOL, atol=STEP_ATOL, err_msg=part + jax.tree_util.keystr(path)
      )
  # 1 × 8's copy took the very step its uninterrupted run took (same state, batch, program):
  # the copies resumed at the right batch.
  assert losses(one)[step] == losses(runs / name(REFERENCE))[step]
  assert abs(losses(two)[step] - losses(one)[step]) <= STEP_LOSS_ATOL


def drift_table(drift, bound) -> str:
  rows = ["step " + "".join(f"{name(k):>9}" for k in drift) + "    bound"]
  for i in range(STEPS):
    rows.append(f"{i + 1:4d} " + "".join(f"{d[i]:9.1e}" for d in drift.values()))
    rows[-1] += f"{bound[i]:9.1e}"
  return "\n".join(rows)


def test_two_processes_leave_one_no_further_than_single_process_layouts(runs):
  """At every step, |loss(2 × 4) − loss(1 × 8)| within SPREAD_FACTOR × the single-process
  layouts' furthest within WINDOW steps, + ROUNDING. Measured: 2 × 4 at most 1.24 of the
  spread (step 38). Process 1 fed process 0's photos, or no all-reduce across processes:
  0.17 at step 1 against a bound of 1.0e-5, and above the bound at 36 and 37 of the 45
  steps."""
  reference = losses(runs / name(REFERENCE))
  assert sorted(reference) == list(range(1, STEPS + 1))
  drift = {}
  for layout in (TWO_PROCESSES, *SINGLE_PROCESS):
    logged = losses(runs / name(layout))
    assert sorted(logged) == sorted(reference)
    drift[layout] = np.array([abs(logged[s] - reference[s]) for s in sorted(reference)])
  furthest = np.max([drift[layout] for layout in SINGLE_PROCESS], axis=0)
  spread = np.array([furthest[max(0, i - WINDOW) : i + WINDOW + 1].max() for i in range(STEPS)])
  bound = SPREAD_FACTOR * spread + ROUNDING
  assert np.all(drift[TWO_PROCESSES] <= bound), drift_table(drift, bound)


def holdout_embeddings(workdir) -> np.ndarray:
  trained = load_trained(workdir)
  source = source_for(trained.config.data, "holdout", trained.label_map)
  return PhotoEmbedder(trained).embed_source(source, read_exif=False).embeddings


def test_two_processes_embed_no_further_from_one_than_single_process_layouts(runs):
  """The held-out photos' mean embedding distance from 1 × 8's: 2 × 4's 0.25 against 1 × 2's
  0.23 (1 × 4's 0.03). With process 1 fed process 0's photos 0.92, with no all-reduce
  across processes 0.84: 3.9 and 3.6 times the spread, against EMBEDDING_FACTOR 2. With
  only the batch statistics kept per process, 0.27 (1.16): the one-step test catches that."""
  reference = holdout_embeddings(runs / name(REFERENCE))
  distance = {
    name(layout): float(
      np.linalg.norm(holdout_embeddings(runs / name(layout)) - reference, axis=1).mean()
    )
    for layout in (TWO_PROCESSES, *SINGLE_PROCESS)
  }
  furthest = max(distance[name(layout)] for layout in SINGLE_PROCESS)
  assert distance[name(TWO_PROCESSES)] <= EMBEDDING_FACTOR * furthest, distance
