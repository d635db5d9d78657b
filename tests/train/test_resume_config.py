"""Resuming a run with a config that changes what its checkpoints mean is refused, naming
the keys; changes a resumed run may make (learning rates, length, logging) are not."""

import json

import pytest

from landmark_jax.config import apply_overrides, load_config, to_dict
from landmark_jax.errors import ConfigError
from landmark_jax.train.checkpoints import CHECKPOINTS_DIR, CONFIG_FILE
from landmark_jax.train.loop import check_resumable


@pytest.fixture
def workdir(tmp_path):
  """A workdir as `train` leaves it: the run's config and a checkpoints folder."""
  (tmp_path / CHECKPOINTS_DIR / "10").mkdir(parents=True)  # step 10's checkpoint
  (tmp_path / CONFIG_FILE).write_text(json.dumps(to_dict(load_config("tiny_cpu"))))
  return tmp_path


@pytest.mark.parametrize(
  "override, key",
  [
    ("model.embedding_dim=128", "model.embedding_dim"),
    ("model.backbone='resnet_tiny'", "model.backbone"),
    ("pipeline.image.crop_size=32", "pipeline.image.crop_size"),
    ("curriculum.enabled=True", "curriculum.enabled"),  # tiny_cpu trains in one stage
    ("loss.kind='arcface'", "loss.kind"),
  ],
)
def test_a_changed_shape_or_dataset_is_refused(workdir, override, key):
  config = apply_overrides(load_config("tiny_cpu"), [override])
  with pytest.raises(ConfigError, match=key):
    check_resumable(workdir, config)


def test_what_a_resumed_run_may_change_is_accepted(workdir):
  config = apply_overrides(
    load_config("tiny_cpu"),
    [
      "max_steps=3",
      "num_epochs=40",
      "optim.lr_backbone=0.01",
      "log_every_steps=1",
      "pipeline.num_workers=2",
      "calibration.target_specificity=0.99",
    ],
  )
  check_resumable(workdir, config)  # no error
  check_resumable(
    workdir.parent / "fresh",
    apply_overrides(  # nothing to resume: no check
      load_config("tiny_cpu"), ["model.embedding_dim=128"]
    ),
  )


def test_a_workdir_without_a_checkpoint_is_not_a_run_to_resume(workdir):
  # A run refused or stopped before its first checkpoint leaves the config and an empty
  # checkpoints folder: a corrected config may start there.
  changed = apply_overrides(load_config("tiny_cpu"), ["model.embedding_dim=128"])
  with pytest.raises(ConfigError, match="model.embedding_dim"):
    check_resumable(workdir, changed)
  (workdir / CHECKPOINTS_DIR / "10").rmdir()
  check_resumable(workdir, changed)  # no error
