"""The search artifact: centroids and their landmarks, searched by dot product (ScaNN or
exact), saved as one folder, with landmark metadata, and edited without retraining.

Names are imported on first use (`landmark_jax.lazy`): the run's config imports
``index.config`` without loading ScaNN."""

from landmark_jax.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
  __name__,
  {
    "CentroidIndex": ".centroid_index",
    "IndexFormatError": ".integrity",
    "IndexConfig": ".config",
    "LocalFeatureStore": ".local_features",
    "SearchSetting": ".config",
  },
)
__all__ = __dir__()
