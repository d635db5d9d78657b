"""Index stage: embed, clean (per-angle clustering), centroids, nearest-centroid search."""

from landmark_jax.index.centroid_index import CentroidIndex, IndexConfig, IndexFormatError

__all__ = ["CentroidIndex", "IndexConfig", "IndexFormatError"]
