"""The CPU demo: a tiny wide ResNet on the embedded dataset, two curriculum stages, ~1 minute.

    landmark-jax train --config configs/tiny_cpu.py --workdir /tmp/tiny

What to expect on a 2-core CPU: 30 epochs (15 per curriculum stage; 4 then 8 landmarks),
about a minute; the held-out views of the 8 landmarks classified far above chance (1/9),
written to <workdir>/holdout.json. Everything is small so it runs anywhere; the model is
not a good landmark model, it shows the pipeline working.
"""

from landmark_jax.config import (
    CurriculumConfig, DataConfig, ImageConfig, LossConfig, ModelConfig, OptimConfig,
    PipelineConfig, TrainConfig)


def get_config() -> TrainConfig:
  return TrainConfig(
      seed=0,
      num_epochs=30,
      data=DataConfig(kind="demo"),
      pipeline=PipelineConfig(
          batch_size=32, num_workers=0,
          image=ImageConfig(resize_size=72, crop_size=64, crop_scale=(0.35, 1.0))),
      # The wide variant: twice the inner width of resnet_tiny, clearly better embeddings on
      # the demo data for little extra time.
      model=ModelConfig(backbone="wide_resnet_tiny", embedding_dim=64),
      loss=LossConfig(kind="softmax_center", center_weight=5e-3),
      # From scratch, so every group learns at the same rate; decay at 40 % and 80 % of
      # the run, as the paper's 12 and 24 of 30.
      optim=OptimConfig(lr_backbone=0.1, lr_embedding=0.1, lr_classifier=0.1,
                        weight_decay=5e-4, lr_decay_epochs=(12, 24)),
      curriculum=CurriculumConfig(enabled=True, new_class_init="mean"),
      checkpoint_every_steps=50,
      log_every_steps=10,
  )
