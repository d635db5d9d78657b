"""The search artifact: centroids and their landmarks, searched by dot product (ScaNN or
exact), saved as one folder, with landmark metadata, and edited without retraining."""

from landmark_jax.index.centroid_index import CentroidIndex, IndexConfig, IndexFormatError

__all__ = ["CentroidIndex", "IndexConfig", "IndexFormatError"]
