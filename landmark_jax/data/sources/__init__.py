"""Random-access image sources: Google Landmarks v2 layout (its JPEG files or ArrayRecord
shards packed from them), image folders, TFDS.

A source is a sequence of records ``{"id": str, "label": int, "path": str}`` (or
``"encoded": bytes`` instead of a path for TFDS and packed shards), with dense labels from a
`LabelMap`. A source holds file names or record keys, not pixels, so it is cheap to pickle to
grain's workers; reading and decoding happen in the workers (`transforms.py`).
"""

from landmark_jax.data.sources.base import ImageSource
from landmark_jax.data.sources.folder import ImageFolderSource, non_landmark_folder_source
from landmark_jax.data.sources.gldv2 import GLDv2Source
from landmark_jax.data.sources.tfds import TfdsSource

__all__ = [
  "GLDv2Source",
  "ImageFolderSource",
  "ImageSource",
  "TfdsSource",
  "non_landmark_folder_source",
]
