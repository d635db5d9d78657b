"""The run's learning-rate schedule over the curriculum, against schedules written out by hand.

Every case plans four stages through `curriculum.plan_stages` (8 images per batch; the
stages hold 40, 80, 120 and 160 images: 5, 10, 15 and 20 steps per epoch) and takes the
schedule `loop.rate_factors` gives the optimizer. The expected steps are computed here from
those step counts and the epochs, not by the code under test.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from landmark_jax.config import load_config
from landmark_jax.data.labels import LabelMap
from landmark_jax.errors import ConfigError
from landmark_jax.train import curriculum, loop, optim

BATCH = 8
STAGE_IMAGES = (40, 80, 120, 160)  # 5, 10, 15, 20 steps per epoch
BASE = {"backbone": 0.01, "embedding": 0.1, "classifier": 1.0}


class FourPartSource:
  """What `plan_stages` reads of a source: the label map's stages and each stage's size."""

  label_map = LabelMap((1, 2, 3, 4), (1, 2, 3, 4))

  def stage_subset(self, stage):
    return range(STAGE_IMAGES[stage])

  def __len__(self):
    return STAGE_IMAGES[-1]


def schedules(*overrides):
  config = load_config(
    "default",
    [
      f"pipeline.batch_size={BATCH}",
      "optim.lr_backbone=0.01",
      "optim.lr_embedding=0.1",
      "optim.lr_classifier=1.0",
      *overrides,
    ],
  )
  plan = curriculum.plan_stages(config, FourPartSource())
  factors = loop.rate_factors(config, plan)
  return plan, optim.learning_rate_schedules(config.optim, factors)


def assert_schedule(plan, groups, changes):
  """`changes`: (first step, factor) in order, from (0, 1.0); every group's rate at every
  step of the run must be its base rate × the factor in force."""
  factor_at = np.empty(plan.total_steps)
  for (start, factor), (end, _) in zip(changes, [*changes[1:], (plan.total_steps, None)]):
    assert start < end
    factor_at[start:end] = factor
  steps = jnp.arange(plan.total_steps)
  for group, base in BASE.items():
    rates = np.asarray(jax.vmap(groups[group])(steps))
    np.testing.assert_allclose(rates, base * factor_at, rtol=1e-6, err_msg=group)
  assert set(groups) == set(BASE)


def test_default_split_restarts_each_stage_and_decays_40_and_80_percent_in():
  # 30 epochs over 4 stages: 8, 8, 7, 7. Per stage, 12/30 and 24/30 of its epochs rounded:
  # 8 epochs → 3.2, 6.4 → epochs 3 and 6; 7 epochs → 2.8, 5.6 → epochs 3 and 6.
  plan, groups = schedules()
  assert plan.epochs == (8, 8, 7, 7)
  # Stage starts: 0; 8 × 5 = 40; 40 + 8 × 10 = 120; 120 + 7 × 15 = 225; end 225 + 7 × 20 = 365.
  assert plan.total_steps == 365
  changes = [
    (0, 1.0),
    (0 + 3 * 5, 0.1),
    (0 + 6 * 5, 0.01),
    (40, 1.0),
    (40 + 3 * 10, 0.1),
    (40 + 6 * 10, 0.01),
    (120, 1.0),
    (120 + 3 * 15, 0.1),
    (120 + 6 * 15, 0.01),
    (225, 1.0),
    (225 + 3 * 20, 0.1),
    (225 + 6 * 20, 0.01),
  ]
  assert [s for s, _ in changes] == [0, 15, 30, 40, 70, 100, 120, 165, 210, 225, 285, 345]
  assert_schedule(plan, groups, changes)


def test_explicit_stage_epochs_decay_at_the_papers_epochs_12_and_24_of_each_stage():
  # 30 epochs per stage with num_epochs=30: each stage is the paper's run, ÷10 at its
  # epochs 12 and 24 (not at 3 and 6, as 12 and 24 of the stages' 120 epochs would be).
  plan, groups = schedules("curriculum.epochs_per_stage=(30, 30, 30, 30)")
  assert plan.epochs == (30, 30, 30, 30)
  # Stage starts: 0; 30 × 5 = 150; 150 + 30 × 10 = 450; 450 + 30 × 15 = 900; end 1500.
  assert plan.total_steps == 1500
  changes = [
    (0, 1.0),
    (12 * 5, 0.1),
    (24 * 5, 0.01),
    (150, 1.0),
    (150 + 12 * 10, 0.1),
    (150 + 24 * 10, 0.01),
    (450, 1.0),
    (450 + 12 * 15, 0.1),
    (450 + 24 * 15, 0.01),
    (900, 1.0),
    (900 + 12 * 20, 0.1),
    (900 + 24 * 20, 0.01),
  ]
  assert [s for s, _ in changes] == [0, 60, 120, 150, 270, 390, 450, 630, 810, 900, 1140, 1380]
  assert_schedule(plan, groups, changes)


def test_explicit_stage_epochs_are_fractions_of_num_epochs():
  # 10 epochs per stage, num_epochs=30: 12/30 and 24/30 of 10 → epochs 4 and 8 of each.
  plan, groups = schedules("curriculum.epochs_per_stage=(10, 10, 10, 10)")
  # Stage starts: 0; 10 × 5 = 50; 50 + 10 × 10 = 150; 150 + 10 × 15 = 300; end 500.
  changes = [
    (0, 1.0),
    (4 * 5, 0.1),
    (8 * 5, 0.01),
    (50, 1.0),
    (50 + 4 * 10, 0.1),
    (50 + 8 * 10, 0.01),
    (150, 1.0),
    (150 + 4 * 15, 0.1),
    (150 + 8 * 15, 0.01),
    (300, 1.0),
    (300 + 4 * 20, 0.1),
    (300 + 8 * 20, 0.01),
  ]
  assert_schedule(plan, groups, changes)


def test_global_schedule_decays_at_epochs_12_and_24_of_the_whole_run():
  # Epochs 0–7 stage 1 (5 steps each), 8–15 stage 2 (10), 16–22 stage 3 (15), 23–29
  # stage 4 (20). Epoch 12 is stage 2's epoch 4: step 8 × 5 + 4 × 10 = 80. Epoch 24 is
  # stage 4's epoch 1: step 40 + 80 + 105 + 1 × 20 = 245. No restarts.
  plan, groups = schedules("curriculum.lr_schedule=global")
  assert plan.epochs == (8, 8, 7, 7)
  assert_schedule(plan, groups, [(0, 1.0), (80, 0.1), (245, 0.01)])


def test_global_schedule_with_explicit_stage_epochs_counts_the_whole_run():
  # 30 epochs per stage: the run's epochs 12 and 24 are both in stage 1 (5 steps each);
  # stages 2–4 train at a hundredth of the base rates throughout.
  plan, groups = schedules(
    "curriculum.lr_schedule=global", "curriculum.epochs_per_stage=(30, 30, 30, 30)"
  )
  assert_schedule(plan, groups, [(0, 1.0), (12 * 5, 0.1), (24 * 5, 0.01)])


def test_one_stage_is_the_papers_schedule_whichever_reading():
  # Curriculum off: 30 epochs of 160 / 8 = 20 steps; ÷10 at epochs 12 and 24.
  for reading in ("per_stage", "global"):
    plan, groups = schedules("curriculum.enabled=False", f"curriculum.lr_schedule={reading}")
    assert plan.epochs == (30,)
    assert_schedule(plan, groups, [(0, 1.0), (12 * 20, 0.1), (24 * 20, 0.01)])


def test_per_stage_decays_round_halves_up_and_skip_a_stages_first_epoch():
  config = optim.OptimConfig(lr_decay_epochs=(1, 3))
  # 1/4 and 3/4 of 2 epochs: 0.5 → epoch 1, 1.5 → epoch 2 (past the stage's last: dropped).
  assert optim.stage_rate_factors(config, [1] * 4, [2, 2], 4) == {1: 0.1, 2: 1.0, 3: 0.1}
  # 1/10 of 3 epochs rounds to 0, the stage's start: no decay there.
  config = optim.OptimConfig(lr_decay_epochs=(1,))
  assert optim.stage_rate_factors(config, [1] * 6, [3, 3], 10) == {3: 1.0}
  with pytest.raises(ConfigError, match="num_epochs must be at least 1"):
    optim.stage_rate_factors(config, [1] * 6, [3, 3], 0)
