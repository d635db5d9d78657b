"""landmark_jax: large-scale landmark recognition via deep metric learning, in JAX.

Public surface only; implementations live in the submodules.
"""

from landmark_jax import models

__version__ = "0.1.0"

__all__ = ["models", "__version__"]
