"""The CPU demo: `default` shrunk to a tiny wide ResNet on the embedded dataset, ~1 minute.

    landmark-jax train --config tiny_cpu --workdir /tmp/tiny

What to expect on a 2-core CPU: 30 epochs in one stage over the 8 landmarks and the
non-landmark class (343 steps), about a minute; the held-out views classified far above
chance (1/9), written to <workdir>/holdout.json; through the demo's index, sensitivity
0.65–0.79 (seeds 0–2) at the validation-calibrated 95 % specificity (docs/benchmarks.md).
Everything is small so it runs anywhere: it shows the pipeline working, not the paper's
accuracy.

Unlike `default`, no curriculum: on 8 landmarks in two parts it costs sensitivity
(`landmark-jax ablation --config tiny_cpu` shows it; docs/decisions.md, "Why the demo
rejected most landmarks").
"""

import dataclasses

from landmark_jax.config import (
  CalibrationConfig,
  CleaningConfig,
  DataConfig,
  DelfConfig,
  ImageConfig,
  TrainConfig,
)
from landmark_jax.configs import default


def get_config() -> TrainConfig:
  config = default.get_config()
  return dataclasses.replace(
    config,
    data=DataConfig(kind="demo"),
    pipeline=dataclasses.replace(
      config.pipeline,
      batch_size=32,
      num_workers=0,
      image=ImageConfig(resize_size=72, crop_size=64, crop_scale=(0.35, 1.0)),
    ),
    # The wide variant: twice the inner width of resnet_tiny, clearly better embeddings on
    # the demo data for little extra time; float32, the CPU's native precision.
    model=dataclasses.replace(
      config.model, backbone="wide_resnet_tiny", embedding_dim=64, dtype="float32", fine_tune=False
    ),
    # 64-d embeddings of a small model move more than 512-d ones: a stronger pull.
    loss=dataclasses.replace(config.loss, center_weight=5e-3),
    # From scratch, so every group learns at the same rate; decay at 40 % and 80 % of the
    # run, as the paper's 12 and 24 of 30.
    optim=dataclasses.replace(
      config.optim, lr_backbone=0.1, lr_embedding=0.1, lr_classifier=0.1, weight_decay=5e-4
    ),
    # The paper's device for millions of photos; on 8 landmarks it costs sensitivity.
    curriculum=dataclasses.replace(config.curriculum, enabled=False),
    checkpoint_every_steps=50,
    log_every_steps=10,
    # The demo's 3 simulated shooting angles sit closer together than real ones; its views
    # are crops of one picture in a tight 64-d space, where distinct photos reach cosine
    # 0.995 (a recompressed copy scores ≥ 0.999: docs/decisions.md, near-duplicates).
    cleaning=CleaningConfig(
      distance_threshold=0.3, min_cluster_size=3, near_duplicate_similarity=0.999
    ),
    # 80 validation non-landmarks: 0.99 would hinge on one photo.
    calibration=CalibrationConfig(target_specificity=0.95),
    # The embedded dataset's photos are 128 px: the pyramid stays around that size, and the
    # RANSAC threshold scales with it (DELF's 20 px are meant for ~512 px photos).
    delf=DelfConfig(
      image_size=128,
      scales=(0.7071, 1.0, 1.4142),
      max_features=300,
      residual_threshold=5.0,
      attention_steps=300,
      attention_crop=128,
    ),
  )
