"""The paper's recipe, or a departure the config states: checked before the first step.

Three parts of the method are easy to lose without noticing, because training runs fine
without them and only the results tell (docs/decisions.md, "Three parts of the method
are required unless the config declines them"):

- the non-landmark class (label n + 1): with no non-landmark photos, the modified center loss
  is the plain one and nothing learns what "no landmark" looks like;
- curriculum learning over the geographic parts: data with one region trains in one stage;
- fine-tuning a pretrained backbone: at the fine-tuning rate α1 = 0.01 a backbone from
  scratch learns slowly.

Each is refused with a message naming the setting that supplies it and the one that
declines it (``loss.non_landmark_class=False``, ``curriculum.enabled=False``,
``model.pretrained=none``), so a run without one of them is a choice written in its config.
"""

from __future__ import annotations

import pathlib

from landmark_jax.config import TrainConfig
from landmark_jax.data import ImageSource
from landmark_jax.data.labels import REGIONS
from landmark_jax.errors import ConfigError, MissingFileError
from landmark_jax.models.pretrained_sources import (
  check_libraries,
  check_named_source,
  is_named_source,
)
from landmark_jax.train.checkpoints import is_training_workdir

# Where each data kind's non-landmark photos come from.
_NON_LANDMARK_SETTING = {
  "gldv2": "data.non_landmark_csv (a CSV of the ids of photos without a landmark)",
  "demo": "data.non_landmark_csv (a CSV of the ids of photos without a landmark)",
  "folder": "data.non_landmark_dir (the subfolder of photos without a landmark)",
  "tfds": "data.tfds_non_landmark_value (the label value of photos without a landmark)",
}


def check_pretrained(config: TrainConfig) -> None:
  """A config that fine-tunes (``model.fine_tune``) needs backbone weights, or
  ``model.pretrained=none`` to train from scratch at its fine-tuning rates anyway."""
  weights = config.model.pretrained_weights
  if weights and is_named_source(weights):
    # Whether the weights are cached or can be downloaded is found when they are loaded.
    check_named_source(weights, config.model.backbone)
    check_libraries(weights)
  elif weights and not (pathlib.Path(weights).is_file() or is_training_workdir(weights)):
    raise MissingFileError(
      f"model.pretrained: backbone checkpoint not found: {weights} (give torchvision, "
      "timm:NAME, a torchvision/timm .pth or .safetensors file, or a training workdir; "
      "model.pretrained=none trains from scratch)"
    )
  if config.model.fine_tune and not config.model.pretrained:
    raise ConfigError(
      f"this config fine-tunes a pretrained {config.model.backbone} (model.fine_tune=True, "
      f"backbone rate optim.lr_backbone={config.optim.lr_backbone}) but model.pretrained is "
      "not set: give model.pretrained=torchvision (its ImageNet weights), timm:NAME, or a "
      "torchvision/timm .pth or .safetensors file, or model.pretrained=none to train the "
      "backbone from scratch"
    )


def check_non_landmark_class(config: TrainConfig, source: ImageSource) -> None:
  """The non-landmark class needs photos unless ``loss.non_landmark_class=False``."""
  if not config.loss.non_landmark_class:
    return
  if int(source.images_per_class()[-1]) == 0:
    setting = _NON_LANDMARK_SETTING[config.data.kind]
    raise ConfigError(
      "the non-landmark class has no training photos, so the model never learns what 'no "
      f"landmark' looks like (the paper's class n + 1): give {setting}, or "
      "loss.non_landmark_class=False to train softmax over the landmarks only"
    )


def check_curriculum(config: TrainConfig, source: ImageSource) -> None:
  """Curriculum learning needs landmarks of two or more geographic parts, unless
  ``curriculum.enabled=False``."""
  if not config.curriculum.enabled or source.label_map.num_stages > 1:
    return
  if not config.data.regions_csv and config.data.kind != "demo":
    why = "data.regions_csv is not set"
  else:
    why = "every landmark of the training data is in one region"
  raise ConfigError(
    f"curriculum.enabled=True, but {why}, so there is one part to train on: give "
    f"data.regions_csv=<landmark_id,region CSV> with landmarks in two or more of "
    f"{', '.join(REGIONS)} (`landmark-jax regions` makes one from coordinates or country "
    "codes), or curriculum.enabled=False to train in one stage"
  )


def check_recipe(config: TrainConfig, source: ImageSource) -> None:
  """Every check above, cheapest first; called before the first training step."""
  check_pretrained(config)
  check_non_landmark_class(config, source)
  check_curriculum(config, source)
