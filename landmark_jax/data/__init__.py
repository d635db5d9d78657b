"""Data: sources (GLDv2 files or packed ArrayRecord shards, image folders, TFDS),
decoding/augmentation, grain pipelines.

Names are imported on first use (`landmark_jax.lazy`), so that a config or the model
can be loaded where grain, ArrayRecord or TFDS are not installed (`benchmark device` on an
accelerator machine).
"""

from landmark_jax.lazy import lazy_exports

# Public name → the module that defines it.
_EXPORTS = {
  "DataConfig": ".config",
  "source_for": ".catalog",
  "REGIONS": ".labels",
  "LabelMap": ".labels",
  "PackedImages": ".packed",
  "pack_folder": ".packed",
  "DeviceIterator": ".pipeline",
  "PipelineConfig": ".config",
  "SkippedImages": ".pipeline",
  "eval_dataset": ".pipeline",
  "train_dataset": ".pipeline",
  "GLDv2Source": ".sources.gldv2",
  "ImageFolderSource": ".sources.folder",
  "ImageSource": ".sources.base",
  "TfdsSource": ".sources.tfds",
  "ImageConfig": ".config",
  "ImageDecodeError": ".transforms",
  "open_image": ".transforms",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = __dir__()
