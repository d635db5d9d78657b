"""After training: top-1 classification of held-out photos, a quick check of the model
before any index is built (``workdir/holdout.json``)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from landmark_jax.config import TrainConfig
from landmark_jax.data import ImageSource, eval_dataset
from landmark_jax.embedding import Embedder, eval_batch_size
from landmark_jax.models import LandmarkNet, model_variables
from landmark_jax.train.state import TrainState
from landmark_jax.train.step import stage_labels

HOLDOUT_FILE = "holdout.json"


def evaluate_holdout(model: LandmarkNet, state: TrainState, source: ImageSource,
                     config: TrainConfig, mesh) -> dict[str, float]:
  """Top-1 classification accuracy on held-out images, landmark and non-landmark apart."""
  dataset = eval_dataset(source, dataclasses.replace(
      config.pipeline, batch_size=eval_batch_size(config.pipeline.batch_size, mesh)))
  correct, truth = [], []
  embedder = Embedder(model, model_variables(state.params, state.batch_stats), mesh)
  for batch in embedder.iterate(dataset):
    labels = np.asarray(stage_labels(batch["label"], model.num_classes))
    keep = batch["mask"]
    correct.append((batch["logits"].argmax(-1) == labels)[keep])
    truth.append(labels[keep])
  correct, truth = np.concatenate(correct), np.concatenate(truth)
  is_landmark = truth < model.num_classes
  return {"landmark_accuracy": float(correct[is_landmark].mean()) if is_landmark.any() else math.nan,
          "non_landmark_accuracy": float(correct[~is_landmark].mean()) if (~is_landmark).any() else math.nan,
          "chance": 1.0 / (model.num_classes + 1), "images": int(len(truth))}
