"""Losses: softmax cross-entropy, the modified center loss, ArcFace and contrastive.

The paper (Boiarov & Tyantov 2019, §3): L = L_softmax + λ·L_center with λ = 5e-5, where the
center loss (Wen et al. 2016) is modified for the non-landmark class. Our reading of the
modification: non-landmark images have no center and contribute nothing to the center term
— they are diverse by nature, and pulling them together would teach the embedding a
"non-landmark cluster" that does not exist.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from landmark_jax.models.landmark_net import l2_normalize


def softmax_cross_entropy(logits, labels, weights=None):
  """Mean of −log softmax(logits)[label] (weighted by `weights` if given)."""
  losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels)
  if weights is None:
    return jnp.mean(losses)
  return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1.0)


def center_loss(embeddings, labels, centers, non_landmark_label: int, reduction: str = "mean"):
  """Modified center loss: ½‖x_i − c_{y_i}‖² over landmark samples only.

  L = ½ Σ_{i: y_i ≠ n} ‖x_i − c_{y_i}‖², divided by the number of landmark samples in the
  batch (``reduction="mean"``, our default; 0 if there are none) or not (``"sum"``).
  Gradients flow into the embeddings only: the centers are state, updated by
  `update_centers`, never by the optimizer (they pass through `stop_gradient`).

  Args:
    embeddings: (B, D) embedding-layer outputs.
    labels: (B,) int labels in [0, n]; n is the non-landmark class.
    centers: (n, D) one center per landmark class.
    non_landmark_label: n.
  """
  centers = jax.lax.stop_gradient(centers)
  is_landmark = labels != non_landmark_label
  # Non-landmark rows index a valid center (0) but are masked out below.
  assigned = centers[jnp.where(is_landmark, labels, 0)]
  squared = 0.5 * jnp.sum((embeddings.astype(jnp.float32) - assigned) ** 2, axis=-1)
  total = jnp.sum(jnp.where(is_landmark, squared, 0.0))
  if reduction == "sum":
    return total
  if reduction == "mean":
    return total / jnp.maximum(jnp.sum(is_landmark), 1)
  raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def update_centers(centers, embeddings, labels, alpha: float, non_landmark_label: int):
  """Wen et al.'s center update over the (global) batch.

  Δc_j = Σ_i δ(y_i = j)(c_j − x_i) / (1 + Σ_i δ(y_i = j)),  c_j ← c_j − α·Δc_j.
  Classes absent from the batch are unchanged; non-landmark samples are ignored.

  Written as a scatter-add of per-sample terms α(c_{y_i} − x_i)/(1 + count_{y_i}) into the
  rows present in the batch: O(batch × D) work, and with the centers donated XLA updates
  them in place — no (n × D) temporary, which matters for GLDv2's 200k classes.
  """
  centers = jnp.asarray(centers)
  embeddings = jax.lax.stop_gradient(embeddings).astype(centers.dtype)
  is_landmark = labels != non_landmark_label
  rows = jnp.where(is_landmark, labels, 0)
  same_class = (labels[:, None] == labels[None, :]) & is_landmark[None, :]
  counts = jnp.sum(same_class, axis=1).astype(centers.dtype)
  step = alpha * (centers[rows] - embeddings) / (1.0 + counts)[:, None]
  step = jnp.where(is_landmark[:, None], step, 0.0)
  return centers.at[rows].add(-step)


def arcface_logits(embeddings, kernel, labels, scale: float = 30.0, margin: float = 0.3):
  """ArcFace (Deng et al. 2019): s·cos(θ_y + m) for the true class, s·cos θ_j otherwise.

  θ_j is the angle between the embedding and class j's weight column (both L2-normalised).
  The non-landmark class is an ordinary class here.
  """
  cosine = l2_normalize(embeddings) @ l2_normalize(kernel, axis=0)
  cosine = jnp.clip(cosine, -1.0 + 1e-7, 1.0 - 1e-7)
  target = jnp.cos(jnp.arccos(cosine) + margin)
  one_hot = jax.nn.one_hot(labels, kernel.shape[1], dtype=cosine.dtype)
  return scale * jnp.where(one_hot > 0, target, cosine)


def contrastive_loss(embeddings, labels, non_landmark_label: int, margin: float = 0.5):
  """In-batch contrastive loss (Hadsell et al. 2006) on L2-normalised embeddings.

  Pairs of the same landmark: d²; pairs of different classes: max(0, margin − d)². Two
  non-landmark images form no pair (they need not be alike, nor apart). Mean over pairs.
  """
  x = l2_normalize(embeddings)
  distance = jnp.sqrt(jnp.maximum(2.0 - 2.0 * x @ x.T, 1e-12))
  same = labels[:, None] == labels[None, :]
  both_non_landmark = (labels[:, None] == non_landmark_label) & (
    labels[None, :] == non_landmark_label
  )
  off_diagonal = ~jnp.eye(len(labels), dtype=bool)
  positive = same & ~both_non_landmark & off_diagonal
  negative = ~same
  losses = jnp.where(positive, distance**2, 0.0) + jnp.where(
    negative, jnp.maximum(margin - distance, 0.0) ** 2, 0.0
  )
  pairs = jnp.sum(positive) + jnp.sum(negative)
  return jnp.sum(losses) / jnp.maximum(pairs, 1)
