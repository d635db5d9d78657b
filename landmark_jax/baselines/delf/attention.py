"""DELF's attention: which locations of the conv4 map are worth keeping as keypoints.

The head (1×1 conv → ReLU → 1×1 conv → softplus) scores every location. DELF trains it with
landmark labels only, the backbone frozen: the feature map, L2-normalised per location and
weighted by the scores, is averaged and classified, and cross-entropy flows into the scores.
"""

from __future__ import annotations

import functools
import logging

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm import tqdm

from landmark_jax.baselines.delf.config import DelfConfig
from landmark_jax.data import ImageSource, PipelineConfig, train_dataset
from landmark_jax.data.config import ImageConfig
from landmark_jax.models import l2_normalize, normalize_images
from landmark_jax.models.resnet import ResNet

logger = logging.getLogger(__name__)


class AttentionHead(nn.Module):
  """(N, h, w, C) feature map → (N, h, w) non-negative scores."""

  hidden: int = 512

  @nn.compact
  def __call__(self, feature_map):
    x = nn.relu(nn.Conv(self.hidden, (1, 1), name="conv1")(feature_map))
    return nn.softplus(nn.Conv(1, (1, 1), name="conv2")(x))[..., 0]


class AttentionClassifier(nn.Module):
  """Training only: attention-weighted pooling of unit local features → class logits."""

  num_classes: int
  hidden: int = 512

  @nn.compact
  def __call__(self, feature_map):
    scores = AttentionHead(self.hidden, name="attention")(feature_map)
    pooled = jnp.mean(l2_normalize(feature_map) * scores[..., None], axis=(1, 2))
    return nn.Dense(self.num_classes, name="classifier")(pooled)


def _loss(head: AttentionClassifier, params, feature_map, labels):
  logits = head.apply({"params": params}, feature_map)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
  return loss, jnp.mean(jnp.argmax(logits, -1) == labels)


def _train_step(
  backbone: ResNet,
  head: AttentionClassifier,
  tx,
  backbone_variables,
  params,
  opt_state,
  images,
  labels,
):
  # The backbone is frozen: its map is an input to the attention, not a function of it.
  feature_map = jax.lax.stop_gradient(
    backbone.apply(backbone_variables, normalize_images(images), train=False).astype(jnp.float32)
  )
  (loss, accuracy), grads = jax.value_and_grad(functools.partial(_loss, head), has_aux=True)(
    params, feature_map, labels
  )
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss, accuracy


def train_attention(
  backbone: ResNet,
  backbone_variables: dict,
  source: ImageSource,
  config: DelfConfig,
  *,
  seed: int = 0,
  progress: bool = True,
) -> dict:
  """Trains the attention head on the landmark photos of `source`; returns its parameters.

  `backbone` is cut at ``config.feature_stage`` here. Non-landmark photos are left out:
  DELF's attention learns what distinguishes landmarks.
  """
  landmark = np.flatnonzero(source.labels != source.label_map.non_landmark_label)
  if not len(landmark):
    raise ValueError("attention training needs landmark photos; the source has none")
  crop = config.attention_crop or config.image_size
  batch_size = min(config.attention_batch_size, len(landmark))
  pipeline = PipelineConfig(
    batch_size=batch_size,
    num_workers=0,
    seed=seed,
    image=ImageConfig(resize_size=crop, crop_size=crop),
  )
  batches, _ = train_dataset(source.subset(landmark), pipeline, num_epochs=None)
  backbone = backbone.clone(output_stage=config.feature_stage)
  head = AttentionClassifier(source.label_map.num_classes, config.attention_hidden)
  channels = backbone.feature_channels(config.feature_stage)
  params = head.init(jax.random.key(seed), jnp.zeros((1, 1, 1, channels)))["params"]
  tx = optax.adam(config.attention_learning_rate)
  opt_state = tx.init(params)
  step = jax.jit(functools.partial(_train_step, backbone, head, tx))
  bar = tqdm(
    total=config.attention_steps, desc="attention", disable=not progress, dynamic_ncols=True
  )
  for _, batch in zip(range(config.attention_steps), batches):
    params, opt_state, loss, accuracy = step(
      backbone_variables, params, opt_state, batch["image"], batch["label"]
    )
    bar.update()
    bar.set_postfix(loss=f"{float(loss):.3f}", accuracy=f"{float(accuracy):.2f}")
  bar.close()
  logger.info("attention trained: last batch loss %.3f, accuracy %.2f", loss, accuracy)
  return params["attention"]
