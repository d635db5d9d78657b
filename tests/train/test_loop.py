"""The train loop end to end: curriculum on the embedded dataset, resume, NaN, bad files.

A process killed with SIGKILL and resumed: tests/train/test_multihost.py (two processes,
one of them killed).
"""

import json

import jax
import numpy as np
import pytest

from landmark_jax.config import apply_overrides, load_config
from landmark_jax.train.checkpoints import Checkpointer
from landmark_jax.train.loop import NonFiniteLossError, train
from landmark_jax.train.metrics_log import MetricsLog
from tests.helpers import CURRICULUM_RUN, TINY_TRAINED_OVERRIDES, gradient_image, write_bad_folder


def tiny(*overrides):
  return load_config("tiny_cpu", list(overrides))


def assert_same_state(a, b):
  a, b = jax.device_get((a, b))
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def full_run(tiny_trained):
  return tiny_trained


def test_tiny_config_learns_in_one_stage(full_run):
  workdir, result = full_run
  # The data has two curriculum parts; the demo's config trains them in one stage.
  assert result.label_map.num_stages == 2
  assert int(result.state.stage) == 0 and result.model.num_classes == 8
  assert result.state.params["classifier"]["kernel"].shape == (64, 9)
  # Chance on the held-out views is 1/9 (8 landmarks + non-landmark). A broken loss or label
  # mapping stays near it; the tiny model reaches well above.
  holdout = result.holdout
  assert holdout["landmark_accuracy"] > 0.4, holdout
  assert holdout["non_landmark_accuracy"] > 0.4, holdout
  lines = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  assert {l["stage"] for l in lines} == {0}
  assert {
    "loss",
    "softmax",
    "center",
    "accuracy",
    "grad_norm",
    "param_norm",
    "images_per_second",
    "lr_backbone",
  } <= set(lines[-1])
  assert any(p.name.startswith("events.out.tfevents") for p in (workdir / "tensorboard").iterdir())
  assert json.loads((workdir / "label_map.json").read_text())["stage_sizes"] == [4, 8]


def test_finished_run_resumes_to_a_no_op(full_run):
  workdir, result = full_run
  again = train(tiny(*TINY_TRAINED_OVERRIDES), workdir, progress=False)
  assert again.steps == result.steps
  assert_same_state(again.state.params, result.state.params)


class StopAfter:
  def __init__(self, step):
    self.step = step

  def __call__(self, step, state, metrics):
    if step == self.step:
      raise KeyboardInterrupt(f"simulated crash after step {step}")


@pytest.fixture(scope="module")
def stage_transition_runs(curriculum_run, tmp_path_factory):
  """(workdir, result) of an uninterrupted run and of one crashed in stage 1 and resumed."""
  # The session's curriculum run (tests.helpers.CURRICULUM_RUN): stage 1 begins at step 10,
  # so a crash after step 11 falls in stage 1, after the transition checkpoint (9) and the
  # regular one at 10, whose data position the resumed run restores. log_every_steps=1: the
  # crashed run has logged step 11, which the resumed run repeats.
  config = tiny(*CURRICULUM_RUN)
  folder = tmp_path_factory.mktemp("stage-transition")
  with pytest.raises(KeyboardInterrupt):
    train(config, folder / "b", hooks=[StopAfter(11)], progress=False)
  assert Checkpointer(folder / "b" / "checkpoints").latest_step() == 10
  resumed = train(config, folder / "b", progress=False)
  return curriculum_run, (folder / "b", resumed)


def test_resume_across_a_stage_transition(stage_transition_runs):
  (_, uninterrupted), (_, resumed) = stage_transition_runs
  assert int(resumed.state.stage) == 1
  assert_same_state(resumed.state, uninterrupted.state)


def logged_steps(workdir):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [json.loads(line)["step"] for line in lines]


def test_resumed_run_logs_each_step_once(stage_transition_runs):
  (whole, _), (crashed, _) = stage_transition_runs
  steps = logged_steps(crashed)
  assert steps == sorted(set(steps)), steps  # strictly increasing: nothing logged twice
  assert steps == logged_steps(whole)


def test_metrics_log_drops_rows_past_the_resumed_step_and_torn_lines(tmp_path):
  rows = [json.dumps({"step": s, "loss": 1.0 / s}) for s in (1, 2, 3, 4)]
  # A process killed mid-write leaves a last line without its end.
  (tmp_path / "metrics.jsonl").write_text("\n".join(rows) + '\n{"step": 5, "lo')
  log = MetricsLog(tmp_path, resume_step=2)
  log.write(3, {"loss": 0.5})
  log.close()
  assert (tmp_path / "metrics.jsonl").read_text() == (
    rows[0] + "\n" + rows[1] + "\n" + json.dumps({"step": 3, "loss": 0.5}) + "\n"
  )
  assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
  # A fresh run (nothing to resume from) keeps what is there and appends.
  log = MetricsLog(tmp_path, resume_step=None)
  log.write(4, {"loss": 0.25})
  log.close()
  assert logged_steps(tmp_path) == [1, 2, 3, 4]


@pytest.mark.slow
def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
  demo_cache, tmp_path
):
  good = tiny("max_steps=2", "checkpoint_every_steps=2", "async_checkpointing=False")
  train(good, tmp_path, progress=False)
  # Resume with a learning rate that overflows the parameters at the first update.
  exploding = apply_overrides(
    good,
    [
      "max_steps=6",
      "optim.lr_backbone=1e38",
      "optim.lr_embedding=1e38",
      "optim.lr_classifier=1e38",
    ],
  )
  with pytest.raises(NonFiniteLossError, match="at step 3"):
    train(exploding, tmp_path, progress=False)
  checkpointer = Checkpointer(tmp_path / "checkpoints")
  assert checkpointer.all_steps() == [2]


@pytest.mark.slow
def test_corrupt_files_train_through_an_epoch(tmp_path, caplog):
  write_bad_folder(tmp_path / "images")
  for i in range(6, 12):  # 12 good + 5 bad images
    gradient_image(70 + i, 50).save(tmp_path / "images" / "7" / f"good{i}.jpg")
  (tmp_path / "images" / "non_landmark").mkdir()
  gradient_image(64, 64).save(tmp_path / "images" / "non_landmark" / "n.jpg")
  config = tiny(
    "data.kind='folder'",
    f"data.root='{tmp_path / 'images'}'",
    "num_epochs=1",
    "pipeline.batch_size=8",
    "curriculum.enabled=False",
  )
  result = train(config, tmp_path / "work", progress=False)
  assert result.skipped_images == 5
  # 18 files planned as 2 batches of 8; 13 are readable, so one full batch, and the stage
  # ends early instead of failing.
  assert result.steps == 1
  assert "ran out of images at step 1 (5 unreadable skipped)" in caplog.text
