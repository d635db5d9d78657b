"""After training: top-1 classification of held-out photos, a quick check of the model
before any index is built (``workdir/holdout.json``)."""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np

from landmark_jax import distributed
from landmark_jax.config import TrainConfig
from landmark_jax.data import ImageSource, eval_dataset
from landmark_jax.embedding import Embedder, eval_batch_size
from landmark_jax.models import LandmarkNet, model_variables
from landmark_jax.train.state import TrainState
from landmark_jax.train.step import stage_labels

HOLDOUT_FILE = "holdout.json"


def evaluate_holdout(
  model: LandmarkNet, state: TrainState, source: ImageSource, config: TrainConfig
) -> dict[str, float]:
  """Top-1 classification accuracy on held-out images, landmark and non-landmark apart.

  Each process classifies its share on its own devices; the counts are summed over the
  processes, so every process returns the same figures.
  """
  mesh = distributed.local_mesh()
  dataset = eval_dataset(
    source.subset(distributed.this_process_part(len(source))),
    dataclasses.replace(
      config.pipeline, batch_size=eval_batch_size(config.pipeline.batch_size, mesh)
    ),
  )
  host = jax.device_get(model_variables(state.params, state.batch_stats))
  embedder = Embedder(model, host, mesh)
  # [landmark right, landmark seen, non-landmark right, non-landmark seen]
  counts = np.zeros(4)
  for batch in embedder.iterate(dataset):
    labels = np.asarray(stage_labels(batch["label"], model.num_classes))[batch["mask"]]
    correct = batch["logits"].argmax(-1)[batch["mask"]] == labels
    is_landmark = labels < model.num_classes
    counts += [
      correct[is_landmark].sum(),
      is_landmark.sum(),
      correct[~is_landmark].sum(),
      (~is_landmark).sum(),
    ]
  right, seen, non_right, non_seen = distributed.sum_over_processes(counts)
  return {
    "landmark_accuracy": float(right / seen) if seen else math.nan,
    "non_landmark_accuracy": float(non_right / non_seen) if non_seen else math.nan,
    "chance": 1.0 / (model.num_classes + 1),
    "images": int(seen + non_seen),
  }
