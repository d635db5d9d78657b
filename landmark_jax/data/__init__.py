"""Data: sources (GLDv2, image folders, TFDS), decoding/augmentation, grain pipelines."""

from landmark_jax.data.catalog import DataConfig, source_for
from landmark_jax.data.labels import REGIONS, LabelMap
from landmark_jax.data.pipeline import (
    DeviceIterator, PipelineConfig, SkippedImages, eval_dataset, train_dataset)
from landmark_jax.data.sources import GLDv2Source, ImageFolderSource, ImageSource, TfdsSource
from landmark_jax.data.transforms import ImageConfig, ImageDecodeError, open_image

__all__ = [
    "DataConfig", "DeviceIterator", "GLDv2Source", "ImageConfig", "ImageDecodeError", "ImageFolderSource",
    "ImageSource", "LabelMap", "PipelineConfig", "REGIONS", "SkippedImages", "TfdsSource",
    "eval_dataset", "open_image", "source_for", "train_dataset",
]
