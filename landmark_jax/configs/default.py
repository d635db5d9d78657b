"""The default: the paper's model and recipe. Wide ResNet-50-2 fine-tuned from ImageNet
weights (the paper's backbone was pretrained on datasets like its own, which it does not
name; ImageNet's are the weights a user can get), 512-d
embedding, softmax over n landmarks + the non-landmark class + the modified center loss
(λ = 5e-5), SGD momentum 0.9, weight decay 5e-3, 30 epochs with learning rates ÷10 at 12/30 and
24/30 of each curriculum stage's epochs (`curriculum.lr_schedule=per_stage`; `global` decays
at epochs 12 and 24 of the whole run, the paper's literal words), curriculum over the four
geographic parts, on Google Landmarks v2 (or any GLDv2-layout set; the paper trained on its
own, unpublished data).

The whole recipe, both rounds to a calibrated index, resumable, on one machine or a cluster
(scripts/slurm/recipe.sbatch, scripts/tpu/recipe.sh; docs/recipe.md):

    landmark-jax recipe --data /data/gldv2 --workdir runs/gldv2 --pretrained torchvision

Every input of the paper's method, in full (GLDv2 itself has no non-landmark photos and no
coordinates: bring both, docs/decisions.md "The paper's recipe"):

    landmark-jax regions --landmarks-csv /data/gldv2/landmarks.csv --out /data/gldv2/regions.csv
    landmark-jax train --config default --workdir runs/wrn50_2 \
        data.root=/data/gldv2 data.non_landmark_csv=non_landmark.csv \
        data.regions_csv=regions.csv model.pretrained=/weights/wide_resnet50_2-9ba9bcbe.pth

Training refuses to start, naming the setting, without non-landmark photos
(`loss.non_landmark_class=False` declines the class), with one region while the curriculum
is on (`curriculum.enabled=False`), or without pretrained weights (`model.pretrained=none`
trains from scratch). After training, the second round on the cleaned data:
`landmark-jax train … data.clean_csv=<clean>/train_clean.csv` (docs/decisions.md,
"Cleaning feeds training").

Accelerators: bf16 compute, global batch 256 over all devices of all hosts (set
`distributed=True` on multi-host). `data.clean_csv=train_clean.csv` trains on GLDv2-clean.
What to expect: the paper reports sensitivity at a fixed specificity on its own test set, its
offline test using neither geo-information nor class references (`evaluate`'s headline is
that test); GLDv2 figures are not in the paper. Throughput: see docs/benchmarks.md. A fast
local check of this exact config on a laptop CPU (the embedded dataset has non-landmark
photos and two regions):

    landmark-jax train --config default --workdir /tmp/wrn data.kind=demo data.root= \
        model.dtype=float32 model.pretrained=none pipeline.batch_size=8 \
        pipeline.num_workers=2 max_steps=2
"""

from landmark_jax.config import (
  CalibrationConfig,
  CleaningConfig,
  CurriculumConfig,
  DataConfig,
  DelfConfig,
  ImageConfig,
  IndexConfig,
  ModelConfig,
  PipelineConfig,
  TrainConfig,
)
from landmark_jax.train.config import LossConfig, OptimConfig


def get_config() -> TrainConfig:
  return TrainConfig(
    seed=0,
    num_epochs=30,
    data=DataConfig(
      kind="gldv2",
      root="",
      csv="train.csv",
      clean_csv="",
      regions_csv="",
      categories_csv="train_label_to_category.csv",
    ),
    pipeline=PipelineConfig(batch_size=256, num_workers=8, image=ImageConfig()),
    model=ModelConfig(
      backbone="wide_resnet50_2", embedding_dim=512, dtype="bfloat16", fine_tune=True
    ),
    loss=LossConfig(kind="softmax_center", center_weight=5e-5, center_alpha=0.5),
    optim=OptimConfig(
      lr_backbone=0.01,
      lr_embedding=0.1,
      lr_classifier=0.1,
      momentum=0.9,
      weight_decay=5e-3,
      lr_decay_epochs=(12, 24),
    ),
    curriculum=CurriculumConfig(enabled=True, new_class_init="mean"),
    checkpoint_every_steps=2000,
    keep_checkpoints=3,
    log_every_steps=100,
    cleaning=CleaningConfig(linkage="average", distance_threshold=0.5, min_cluster_size=3),
    index=IndexConfig(),
    calibration=CalibrationConfig(target_specificity=0.99),
    delf=DelfConfig(),  # DELF's own settings (512 px, 7 scales, 1000 features)
  )
