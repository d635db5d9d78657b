"""Recognition: photos → landmarks, or "no landmark".

`inputs` (what the front door takes, checked), `photos` (decoding), `embedder` (photos →
embeddings on the device), `decision` (embeddings → answers, device-free), `recognizer` (the
two together: the front door). Names are imported on first use (`landmark_jax.lazy`).
"""

from landmark_jax.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
  __name__,
  {
    "Photo": ".photos",
    "decode_photo": ".photos",
    "decode_records": ".photos",
    "file_problem": ".photos",
    "PhotoEmbedder": ".embedder",
    "Candidate": ".decision",
    "Decision": ".decision",
    "Prediction": ".decision",
    "public_landmark_id": ".decision",
    "Thresholds": ".decision",
    "calibrated_thresholds": ".decision",
    "REASON_BELOW_THRESHOLD": ".decision",
    "REASON_FAR_FROM_REFERENCES": ".decision",
    "REASON_NO_LANDMARK_NEARBY": ".decision",
    "Recognizer": ".recognizer",
  },
)
__all__ = __dir__()
