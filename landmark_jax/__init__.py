"""landmark_jax: large-scale landmark recognition via deep metric learning, in JAX.

Public surface only; implementations live in the submodules.
"""

from landmark_jax import data, index, losses, models, sharding
from landmark_jax.eval import metrics
from landmark_jax.recognize import Recognizer, calibrate

__version__ = "0.1.0"

__all__ = ["Recognizer", "calibrate", "data", "index", "losses", "metrics", "models",
           "sharding", "__version__"]
