"""`landmark-jax fit --no-train`: a model made without training, for users without an
accelerator. The pretrained backbone's pooled features of the user's training photos are
whitened (PCA whitening, shrunk toward the mean variance) into the embedding layer, so the
result is an ordinary `LandmarkNet` checkpoint: `embed`, `clean`, the index, calibration,
`recognize` and `serve` take it as they take a trained one.

The embedding layer is FC + BN (`LandmarkNet`); here the FC holds the whitening
(``(x − μ) · W``) and the BN is the identity, so `embed` returns the L2-normalised whitened
features. The classifier is zeros: nothing was learnt to classify, and the recognizer does
not use it.

Written like a training workdir (``config.json``, ``label_map.json``, a checkpoint at step
0) plus ``whitening.json``, the photos it was learnt on, written last: its presence means
done (`is_done`). Exposes `is_done` and `train` as `train.loop` does, so
`experiment.run_pipeline` runs either.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from landmark_jax.config import TrainConfig, to_dict
from landmark_jax.data import source_for
from landmark_jax.errors import ConfigError, DataError
from landmark_jax.models import model_variables, normalize_images
from landmark_jax.models.pretrained import load_pretrained_backbone
from landmark_jax.models.resnet import BN_EPSILON
from landmark_jax.recognize.photos import ImageDecodeError, decode_records
from landmark_jax.train.checkpoints import (
  CHECKPOINTS_DIR,
  CONFIG_FILE,
  LABEL_MAP_FILE,
  Checkpointer,
  backbone_of_workdir,
  is_training_workdir,
  make_model,
)

logger = logging.getLogger(__name__)

WHITENING_FILE = "whitening.json"
# Batch of the feature pass: padded to this size, so the backbone compiles once.
_BATCH = 16


@dataclasses.dataclass
class WhiteningResult:
  """What `experiment` reads of a training result: no steps, no held-out classification."""

  steps: int = 0
  holdout: dict | None = None


def is_done(workdir) -> bool:
  return (pathlib.Path(workdir) / WHITENING_FILE).is_file()


def whitening(features: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
  """``(W, b)`` with ``x · W + b`` the PCA whitening of `features` (rows) to `dim`
  dimensions: the leading eigenvectors of the covariance, each divided by √(λ + s), where
  the shrinkage s is the mean eigenvalue. A few dozen photos estimate few of thousands of
  directions; without s the whitening would blow the noisiest ones up to unit variance.
  Directions beyond the data's rank (n − 1 for n photos) are zero columns."""
  features = np.asarray(features, np.float64)
  mean = features.mean(axis=0)
  centered = features - mean
  covariance = centered.T @ centered / max(len(features) - 1, 1)
  eigenvalues, eigenvectors = np.linalg.eigh(covariance)
  order = np.argsort(eigenvalues)[::-1]
  eigenvalues, eigenvectors = np.maximum(eigenvalues[order], 0.0), eigenvectors[:, order]
  shrinkage = eigenvalues.mean()
  if shrinkage <= 0:
    raise DataError("the backbone gives every training photo the same features")
  kept = min(dim, len(features) - 1, features.shape[1])
  kernel = np.zeros((features.shape[1], dim))
  kernel[:, :kept] = eigenvectors[:, :kept] / np.sqrt(eigenvalues[:kept] + shrinkage)
  return kernel.astype(np.float32), (-mean @ kernel).astype(np.float32)


def _backbone_variables(spec: str, config: TrainConfig, model, variables: dict) -> dict:
  """`variables` with the backbone's weights of `spec` (what `model.pretrained` names)."""
  if is_training_workdir(spec):
    backbone = backbone_of_workdir(spec, config.model.backbone)
  else:
    backbone = load_pretrained_backbone(spec, model.backbone, backbone_name=config.model.backbone)
  return {
    collection: {**variables[collection], "backbone": backbone[collection]}
    for collection in ("params", "batch_stats")
  }


def pooled_features(model, variables: dict, source, image_config, progress: bool):
  """The backbone's global-average-pooled features of every readable photo of `source`
  (eval crops, as `embed` sees them), and the ids of the unreadable ones."""

  @jax.jit
  def features(images):
    return model.backbone.apply(
      {k: variables[k]["backbone"] for k in ("params", "batch_stats")},
      normalize_images(images),
      train=False,
    )

  rows, skipped, pending = [], [], []

  def flush():
    padded = np.zeros((_BATCH, *pending[0].shape), np.uint8)
    padded[: len(pending)] = pending
    rows.append(np.asarray(features(jnp.asarray(padded)))[: len(pending)])
    pending.clear()

  bar = tqdm(total=len(source), desc="features", unit="photo", disable=not progress)
  for i, photo in decode_records(source, image_config, read_exif=False):
    bar.update()
    if isinstance(photo, ImageDecodeError):
      skipped.append(str(source.ids[i]))
      continue
    pending.append(photo.pixels)
    if len(pending) == _BATCH:
      flush()
  if pending:
    flush()
  bar.close()
  if not rows:
    raise DataError("no readable training photos to learn the whitening from")
  return np.concatenate(rows), skipped


def train(config: TrainConfig, workdir, *, progress: bool = True) -> WhiteningResult:
  """Makes the whitened model in `workdir` (nothing when it is there)."""
  workdir = pathlib.Path(workdir)
  if is_done(workdir):
    return WhiteningResult()
  if not config.model.pretrained:
    raise ConfigError(
      "--no-train embeds with a pretrained backbone: give --pretrained torchvision, "
      "timm:NAME, a weights file or a training workdir (none: random weights, for tests)"
    )
  source = source_for(config.data, "train")
  model = make_model(config, source.label_map.num_classes)
  image_size = config.pipeline.image.crop_size
  initial = model.init(jax.random.PRNGKey(config.seed), jnp.zeros((1, image_size, image_size, 3)))
  variables = model_variables(initial["params"], initial["batch_stats"])
  if config.model.pretrained != "none":
    variables = _backbone_variables(config.model.pretrained_weights, config, model, variables)
  variables = jax.device_get(variables)
  features, skipped = pooled_features(model, variables, source, config.pipeline.image, progress)
  kernel, bias = whitening(features, config.model.embedding_dim)
  params = dict(variables["params"])
  params["embedding_fc"] = {"kernel": kernel, "bias": bias}
  params["embedding_bn"] = {"scale": np.ones_like(bias), "bias": np.zeros_like(bias)}
  params["classifier"] = jax.tree.map(np.zeros_like, params["classifier"])
  batch_stats = dict(variables["batch_stats"])
  # BN divides by √(var + ε): a variance of 1 − ε makes it the identity.
  batch_stats["embedding_bn"] = {
    "mean": np.zeros_like(bias),
    "var": np.full_like(bias, 1 - BN_EPSILON),
  }

  workdir.mkdir(parents=True, exist_ok=True)
  source.label_map.save(workdir / LABEL_MAP_FILE)
  (workdir / CONFIG_FILE).write_text(json.dumps(to_dict(config), indent=2))
  checkpointer = Checkpointer(workdir / CHECKPOINTS_DIR, async_save=False)
  try:
    checkpointer.save(
      0,
      {"step": 0, "params": params, "batch_stats": batch_stats},
      {},
      {"stage": 0, "num_classes": source.label_map.num_classes, "process_count": 1},
    )
    checkpointer.wait_until_finished()
  finally:
    checkpointer.close()
  (workdir / WHITENING_FILE).write_text(
    json.dumps(
      {
        "photos": len(features),
        "skipped": skipped,
        "feature_dim": int(features.shape[1]),
        "whitened_dims": int(min(config.model.embedding_dim, len(features) - 1)),
        "backbone_weights": config.model.pretrained,
      },
      indent=2,
    )
  )
  logger.info("whitening learnt on %d photos (%d unreadable skipped)", len(features), len(skipped))
  return WhiteningResult()
