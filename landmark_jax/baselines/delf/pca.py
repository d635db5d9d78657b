"""PCA of local descriptors (DELF: L2-normalise → PCA to 40 dims → L2-normalise)."""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from landmark_jax.models import l2_normalize


# A pytree, so that the extractor's compiled program takes the projection as an argument.
@functools.partial(
  jax.tree_util.register_dataclass, data_fields=["mean", "components"], meta_fields=[]
)
@dataclasses.dataclass(frozen=True)
class Pca:
  mean: np.ndarray  # (C,)
  components: np.ndarray  # (C, k): principal directions, divided by √variance when whitened

  @property
  def dim(self) -> int:
    return self.components.shape[1]

  @classmethod
  def fit(cls, vectors: np.ndarray, dim: int, *, whiten: bool = False, eps: float = 1e-8) -> "Pca":
    """The `dim` directions of largest variance of `vectors` (n, C), by eigendecomposition of
    the covariance in float64. Each direction's sign makes its largest entry positive, so a
    refit on the same data gives the same projection."""
    vectors = np.asarray(vectors, np.float64)
    if vectors.ndim != 2 or len(vectors) < 2:
      raise ValueError(f"PCA needs at least 2 vectors (n, C), got shape {vectors.shape}")
    if not 0 < dim <= vectors.shape[1]:
      raise ValueError(f"PCA to {dim} dimensions from {vectors.shape[1]}-d vectors")
    mean = vectors.mean(axis=0)
    centered = vectors - mean
    variance, directions = np.linalg.eigh(centered.T @ centered / (len(vectors) - 1))
    order = np.argsort(variance)[::-1][:dim]
    components = directions[:, order]
    largest = np.argmax(np.abs(components), axis=0)
    components *= np.sign(components[largest, np.arange(dim)])
    if whiten:
      components = components / np.sqrt(variance[order] + eps)
    return cls(mean.astype(np.float32), components.astype(np.float32))

  def project(self, descriptors):
    """Unit descriptors (..., C) → unit PCA descriptors (..., k). NumPy or traced JAX arrays."""
    return l2_normalize((descriptors - jnp.asarray(self.mean)) @ jnp.asarray(self.components))
