"""Data: sources (GLDv2 files or packed ArrayRecord shards, image folders, TFDS),
decoding/augmentation, grain pipelines."""

from landmark_jax.data.catalog import DataConfig, source_for
from landmark_jax.data.labels import REGIONS, LabelMap
from landmark_jax.data.packed import PackedImages, pack_folder
from landmark_jax.data.pipeline import (
    DeviceIterator, PipelineConfig, SkippedImages, eval_dataset, train_dataset)
from landmark_jax.data.sources import GLDv2Source, ImageFolderSource, ImageSource, TfdsSource
from landmark_jax.data.transforms import ImageConfig, ImageDecodeError, open_image

__all__ = [
    "DataConfig", "DeviceIterator", "GLDv2Source", "ImageConfig", "ImageDecodeError", "ImageFolderSource",
    "ImageSource", "LabelMap", "PackedImages", "PipelineConfig", "REGIONS", "SkippedImages",
    "TfdsSource", "eval_dataset", "open_image", "pack_folder", "source_for", "train_dataset",
]
