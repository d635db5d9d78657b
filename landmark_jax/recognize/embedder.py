"""Photos → unit embeddings with a trained model (`PhotoEmbedder`), in padded device batches
of a few fixed sizes, so a handful of compiled programs serve every call."""

from __future__ import annotations

import logging
from typing import Any, Sequence

import jax
import numpy as np

from landmark_jax import sharding
from landmark_jax.data import ImageSource
from landmark_jax.data.transforms import ImageDecodeError
from landmark_jax.embedding import EmbeddedPhotos, Embedder, power_of_two_buckets
from landmark_jax.recognize.inputs import decoded_list, location_list, photo_list
from landmark_jax.recognize.photos import Photo, decode_photo, decode_records
from landmark_jax.train.checkpoints import TrainedModel

logger = logging.getLogger(__name__)


class PhotoEmbedder:
  """Photos → unit embeddings with a trained model, in padded device batches of a few fixed
  sizes (`buckets`, default powers of two up to `batch_size`), so a handful of compiled
  programs serve every call."""

  def __init__(
    self, trained: TrainedModel, batch_size: int = 8, buckets: Sequence[int] | None = None
  ):
    self.trained = trained
    self.image_config = trained.config.pipeline.image
    self.mesh = sharding.make_data_mesh(jax.local_devices())
    self.embedder = Embedder(
      trained.model,
      trained.variables,
      self.mesh,
      buckets=buckets or power_of_two_buckets(batch_size),
    )
    self.buckets = self.embedder.buckets
    self.batch_size = self.embedder.max_batch

  def warm_up(self) -> None:
    """Compiles every bucket now, so that no later call pays for compilation."""
    self.embedder.warm_up(self.image_config.crop_size)

  def embed_arrays(self, pixels: np.ndarray) -> np.ndarray:
    """(N, S, S, 3) uint8 eval crops → (N, D) unit embeddings."""
    return self.embedder.embed_pixels(np.asarray(pixels))

  def embed_photos(self, photos: Photo | Sequence[Photo]) -> np.ndarray:
    """One decoded `Photo` → its (D,) unit embedding; a list of them → (N, D)."""
    photos, one_photo = decoded_list(photos, Photo)
    if not photos:
      return self.embed_arrays(np.zeros((0, 1, 1, 3), np.uint8))
    embeddings = self.embed_arrays(np.stack([photo.pixels for photo in photos]))
    return embeddings[0] if one_photo else embeddings

  def decode(
    self, images: Any, locations: Any = None, *, read_exif: bool = True
  ) -> Photo | list[Photo]:
    """One photo (a path, bytes, a PIL image or a uint8 array: `inputs.check_photo`) →
    its `Photo`; a list of them → a list. Locations as `inputs.location_list`: one for one
    photo, one per photo (or None) for a list. Everything is checked before anything is
    decoded (`TypeError`, `ValueError`); an unreadable photo raises `ImageDecodeError`."""
    checked, one_photo = photo_list(images)
    locations = location_list(locations, len(checked), one_photo=one_photo)
    photos = [
      decode_photo(image, self.image_config, location=location, read_exif=read_exif)
      for image, location in zip(checked, locations)
    ]
    return photos[0] if one_photo else photos

  def embed(self, images: Any) -> np.ndarray:
    """One photo (as `decode`) → its (D,) unit embedding; a list of them → (N, D).

    Raises `ImageDecodeError` naming the first unreadable photo."""
    checked, one_photo = photo_list(images)
    embeddings = self.embed_photos(self.decode(checked, read_exif=False))
    return embeddings[0] if one_photo else embeddings

  def embed_source(self, source: ImageSource, *, read_exif: bool = True) -> EmbeddedPhotos:
    """Every readable record of a source, embedded (unreadable ones skipped and named)."""
    ids, labels, chunks, locations, skipped, pending = [], [], [], [], [], []

    def flush():
      chunks.append(self.embed_photos([photo for _, photo in pending]))
      pending.clear()

    for i, photo in decode_records(source, self.image_config, read_exif=read_exif):
      if isinstance(photo, ImageDecodeError):
        skipped.append(str(source.ids[i]))
        continue
      ids.append(source.ids[i])
      labels.append(source.labels[i])
      locations.append(photo.location)
      pending.append((i, photo))
      if len(pending) == self.batch_size:
        flush()
    if pending or not chunks:
      flush()
    if skipped:
      logger.warning(
        "%d unreadable photos skipped (first: %s)", len(skipped), ", ".join(skipped[:5])
      )
    return EmbeddedPhotos(
      ids=np.asarray(ids, dtype=object),
      labels=np.asarray(labels, np.int32),
      embeddings=np.concatenate(chunks),
      label_map=source.label_map,
      skipped=skipped,
      locations=locations,
      checkpoint=self.trained.checkpoint_id,
    )
