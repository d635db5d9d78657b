"""landmark_jax: large-scale landmark recognition via deep metric learning, in JAX.

Public surface only; implementations live in the submodules. Names are imported on first
use, so that ``from landmark_jax import Recognizer`` (or the HTTP service) loads inference
alone: no training loop, no optimizer.
"""

from landmark_jax.lazy import lazy_exports

__version__ = "0.1.0"

# Public name → the module that defines it (a module itself when the name is one).
_EXPORTS = {
  "Photo": "landmark_jax.recognize",
  "Recognizer": "landmark_jax.recognize",
  # One photo's answer: `landmark_id` (always a str, None for no landmark), score, reason.
  "Prediction": "landmark_jax.recognize",
  # Embeddings → answers by an index, η and ρ alone: no model, no device.
  "Decision": "landmark_jax.recognize",
  "decode_photo": "landmark_jax.recognize",
  # Where a photo was taken: `Recognizer.recognize(photo, lj.Location(lat, lon))`.
  "Location": "landmark_jax.geo",
  # A training workdir → the model, weights, label map and config (no optimizer loaded).
  "TrainedModel": "landmark_jax.train.checkpoints",
  "load_trained": "landmark_jax.train.checkpoints",
  "calibrate": "landmark_jax.eval.calibration",
  "data": "landmark_jax.data",
  "index": "landmark_jax.index",
  "losses": "landmark_jax.losses",
  "metrics": "landmark_jax.eval.metrics",
  "models": "landmark_jax.models",
  "sharding": "landmark_jax.sharding",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [*__dir__(), "__version__"]
