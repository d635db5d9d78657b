"""Model zoo: residual backbones, LandmarkNet heads, pretrained-weight import.

Names are imported on first use (`landmark_jax.lazy`): the run's config imports
``models.config`` without loading Flax."""

from landmark_jax.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
  __name__,
  {
    "BACKBONES": ".resnet",
    "ResNet": ".resnet",
    "get_backbone": ".resnet",
    "LandmarkNet": ".landmark_net",
    "l2_normalize": ".landmark_net",
    "model_variables": ".landmark_net",
    "normalize_images": ".landmark_net",
  },
)
__all__ = __dir__()
