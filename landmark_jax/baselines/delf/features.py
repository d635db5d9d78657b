"""DELF-style local features from our backbone: conv4 map over an image pyramid → attention
scores → the top-N locations → L2 → PCA → L2.

A photo is resized so that its longer side is `image_size` and padded to a square (with the
ImageNet mean, which normalises to zero), so every photo runs the same compiled program;
locations whose receptive-field centre falls in the padding are never selected. Keypoints
are (x, y) pixel coordinates in that resized photo, whatever pyramid level they come from.

Where a keypoint is: in a torchvision-style ResNet every convolution and the max-pool are
padded symmetrically ((k - 1) / 2), so the receptive field of output position i at stride s
is centred on input pixel s·i exactly (stem conv: 2i, max-pool: 4i, each stride-2 stage
doubles it). A pyramid level of side L maps back to the photo's frame by jax.image.resize's
pixel-centre convention: x = (s·i + 0.5)·(S / L) − 0.5.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from landmark_jax.baselines.delf.attention import AttentionHead
from landmark_jax.baselines.delf.config import DelfConfig
from landmark_jax.baselines.delf.pca import Pca
from landmark_jax.data.config import ImageConfig
from landmark_jax.data.transforms import open_image
from landmark_jax.models import l2_normalize, model_variables, normalize_images
from landmark_jax.models.landmark_net import IMAGENET_MEAN
from landmark_jax.models.resnet import ResNet


@dataclasses.dataclass(frozen=True)
class LocalFeatures:
  """One photo's local features, best attention first."""

  keypoints: np.ndarray  # (n, 2) float32 (x, y) in the resized photo (longer side image_size)
  descriptors: np.ndarray  # (n, d) float32, unit rows
  scores: np.ndarray  # (n,) attention
  scales: np.ndarray  # (n,) the pyramid level each comes from

  def __len__(self) -> int:
    return len(self.scores)


def backbone_variables(landmark_net_variables: dict[str, Any]) -> dict[str, Any]:
  """A LandmarkNet's variables → its backbone's ``{"params", "batch_stats"}``."""
  return {
    collection: landmark_net_variables[collection]["backbone"]
    for collection in ("params", "batch_stats")
  }


def fit_to_square(image: Image.Image, size: int) -> tuple[np.ndarray, tuple[int, int]]:
  """RGB image → (size, size, 3) uint8, the photo scaled so its longer side is `size` in the
  top-left corner, padding in the ImageNet mean colour; and the photo's (height, width)."""
  width, height = image.size
  ratio = size / max(width, height)
  shape = (max(1, round(width * ratio)), max(1, round(height * ratio)))
  # reducing_gap: Pillow first shrinks by an integer factor in the box filter, then
  # resamples: the same pixels to the eye, far faster for multi-megapixel photos.
  resized = np.asarray(image.resize(shape, Image.BILINEAR, reducing_gap=3.0))
  pixels = np.empty((size, size, 3), np.uint8)
  pixels[:] = np.round(IMAGENET_MEAN).astype(np.uint8)
  pixels[: shape[1], : shape[0]] = resized
  return pixels, (shape[1], shape[0])


def _pyramid_level_side(size: int, scale: float, stride: int) -> int:
  return max(stride, int(round(size * scale)))


def _extract(
  backbone: ResNet,
  head: AttentionHead | None,
  scales: tuple[float, ...],
  max_features: int,
  variables,
  attention_params,
  pca: Pca | None,
  pixels,
  photo_hw,
):
  """(B, S, S, 3) uint8 + (B, 2) photo sizes → per photo the top `max_features` locations:
  descriptors (B, N, d), keypoints (B, N, 2), scores (B, N) (−inf where fewer exist), scales."""
  batch, size = pixels.shape[0], pixels.shape[1]
  stride = backbone.output_stride
  images = pixels.astype(jnp.float32)
  descriptors, keypoints, scores, levels = [], [], [], []
  for scale in scales:
    side = _pyramid_level_side(size, scale, stride)
    level = (
      images
      if side == size
      else jax.image.resize(images, (batch, side, side, 3), "linear", antialias=True)
    )
    feature_map = backbone.apply(variables, normalize_images(level), train=False).astype(
      jnp.float32
    )
    height, width = feature_map.shape[1:3]
    if head is None:
      score = jnp.linalg.norm(feature_map, axis=-1)
    else:
      score = head.apply({"params": attention_params}, feature_map)
    ratio = size / side
    y = (stride * jnp.arange(height) + 0.5) * ratio - 0.5
    x = (stride * jnp.arange(width) + 0.5) * ratio - 0.5
    xy = jnp.stack(jnp.meshgrid(x, y, indexing="xy"), axis=-1).reshape(-1, 2)
    inside = (xy[None, :, 0] < photo_hw[:, None, 1].astype(jnp.float32)) & (
      xy[None, :, 1] < photo_hw[:, None, 0].astype(jnp.float32)
    )
    descriptors.append(feature_map.reshape(batch, height * width, -1))
    keypoints.append(jnp.broadcast_to(xy, (batch, *xy.shape)))
    scores.append(jnp.where(inside, score.reshape(batch, -1), -jnp.inf))
    levels.append(jnp.full((batch, height * width), scale, jnp.float32))
  scores = jnp.concatenate(scores, axis=1)
  top_scores, top = jax.lax.top_k(scores, min(max_features, scores.shape[1]))

  def pick(parts):
    gather = top.reshape(*top.shape, *([1] * (parts[0].ndim - 2)))
    return jnp.take_along_axis(jnp.concatenate(parts, axis=1), gather, axis=1)

  chosen = l2_normalize(pick(descriptors))
  if pca is not None:
    chosen = pca.project(chosen)
  return chosen, pick(keypoints), top_scores, pick(levels)


class LocalFeatureExtractor:
  """Photos → `LocalFeatures` with a frozen backbone (the trained LandmarkNet's, by default).

  Args:
    backbone: a `ResNet`; it is cut at `config.feature_stage`.
    variables: its ``{"params", "batch_stats"}``.
    attention_params: the trained `AttentionHead`'s parameters; required when
      ``config.attention == "trained"``.
    pca: projects the descriptors; None keeps them raw (C-dimensional, L2-normalised), as
      needed to fit the PCA.
  """

  def __init__(
    self,
    backbone: ResNet,
    variables: dict[str, Any],
    config: DelfConfig,
    *,
    attention_params: dict | None = None,
    pca: Pca | None = None,
    batch_size: int = 8,
  ):
    if config.attention == "trained" and attention_params is None:
      raise ValueError(
        "attention='trained' needs attention_params: train them with "
        "train_attention, or use attention='feature_norm'"
      )
    self.config = config
    self.backbone = backbone.clone(output_stage=config.feature_stage)
    self.variables = jax.device_put(model_variables(variables["params"], variables["batch_stats"]))
    self.attention_params = attention_params
    self.pca = pca
    self.batch_size = batch_size
    head = AttentionHead(config.attention_hidden) if config.attention == "trained" else None
    self._extract = jax.jit(
      functools.partial(_extract, self.backbone, head, tuple(config.scales), config.max_features)
    )

  @classmethod
  def from_trained(cls, trained, config: DelfConfig, **kwargs) -> "LocalFeatureExtractor":
    """The backbone of a `TrainedModel` (its LandmarkNet's ``backbone`` variables)."""
    return cls(trained.model.backbone, backbone_variables(trained.variables), config, **kwargs)

  def with_pca(self, pca: Pca | None) -> "LocalFeatureExtractor":
    return LocalFeatureExtractor(
      self.backbone,
      self.variables,
      self.config,
      attention_params=self.attention_params,
      pca=pca,
      batch_size=self.batch_size,
    )

  @property
  def descriptor_dim(self) -> int:
    if self.pca is not None:
      return self.pca.dim
    return self.backbone.feature_channels(self.config.feature_stage)

  def prepare(self, image, limits: ImageConfig | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """A path, encoded bytes, PIL image or HWC uint8 array → `fit_to_square` input; a file
    is decoded under `limits`' formats, pixel and byte budgets and JPEG scans (default: the
    library's).

    Raises `ImageDecodeError` for an unreadable or refused file."""
    if isinstance(image, np.ndarray):
      image = Image.fromarray(image.astype(np.uint8))
    if not isinstance(image, Image.Image):
      limits = limits or ImageConfig()
      image = open_image(
        image,
        draft_size=self.config.image_size,
        max_pixels=limits.max_pixels,
        formats=limits.formats,
        max_decode_bytes=limits.decode_budget,
        max_jpeg_scans=limits.max_jpeg_scans,
      )
    if image.mode != "RGB":
      image = image.convert("RGB")
    return fit_to_square(image, self.config.image_size)

  def extract_prepared(self, pixels: np.ndarray, photo_hw: np.ndarray) -> list[LocalFeatures]:
    """(B, S, S, 3) prepared photos and their (B, 2) sizes → features per photo, batched
    on the device in fixed-size batches (one compiled program)."""
    out = []
    for start in range(0, len(pixels), self.batch_size):
      chunk = slice(start, start + self.batch_size)
      count = len(pixels[chunk])
      # Two programs: one photo (a query) and a full batch (building a database).
      bucket = 1 if count == 1 else self.batch_size
      padded = np.zeros((bucket, *pixels.shape[1:]), np.uint8)
      padded[:count] = pixels[chunk]
      sizes = np.zeros((bucket, 2), np.int32)  # padding rows: no location inside
      sizes[:count] = photo_hw[chunk]
      batch = jax.device_get(
        self._extract(self.variables, self.attention_params, self.pca, padded, sizes)
      )
      for row in range(count):
        keep = np.isfinite(batch[2][row])
        out.append(
          LocalFeatures(
            *(
              np.asarray(part[row][keep], np.float32)
              for part in (batch[1], batch[0], batch[2], batch[3])
            )
          )
        )
    return out

  def extract(self, images) -> list[LocalFeatures]:
    """Photos → their local features, best attention first."""
    prepared = [self.prepare(image) for image in images]
    if not prepared:
      return []
    return self.extract_prepared(
      np.stack([p for p, _ in prepared]), np.array([hw for _, hw in prepared], np.int32)
    )
