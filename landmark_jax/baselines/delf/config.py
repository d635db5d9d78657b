"""Settings of the DELF-style baseline; the defaults are DELF's (Noh et al., ICCV 2017) where
the DELF paper or its reference code gives a value, and ours (marked) where it does not."""

from __future__ import annotations

import dataclasses

ATTENTION_KINDS = ("trained", "feature_norm")
# `benchmark compare --preset`: the shipped config whose `delf` section gives the settings.
PRESETS = {"demo": "tiny_cpu", "delf": "default"}


@dataclasses.dataclass(frozen=True)
class DelfConfig:
  # Local features -------------------------------------------------------------------------
  attention: str = "trained"  # "trained": DELF's attention head; "feature_norm": ‖f‖ per location
  feature_stage: int = 3  # ResNet stage whose map gives the descriptors: 3 = "conv4" (DELF)
  # Every photo is first resized so its longer side is this many pixels (ours: bounded
  # compilation — one program per pyramid level — and comparable pixel thresholds).
  image_size: int = 512
  scales: tuple[float, ...] = (0.25, 0.3536, 0.5, 0.7071, 1.0, 1.4142, 2.0)  # DELF's pyramid
  max_features: int = 1000  # top-N locations by attention over all scales (DELF: 1000)
  pca_dim: int = 40  # DELF: PCA to 40 dimensions, then L2 normalisation
  pca_whiten: bool = False  # DELF's default
  pca_fit_images: int = 500  # database images whose raw descriptors fit the PCA (ours)
  # Attention training (DELF: backbone frozen, attention-pooled features → classifier, CE).
  attention_hidden: int = 512  # DELF's attention conv1 width
  attention_steps: int = 1000  # ours: few parameters, converges quickly
  attention_batch_size: int = 32
  attention_learning_rate: float = 1e-3
  attention_crop: int = 0  # training crop side; 0 = image_size
  # Retrieval ------------------------------------------------------------------------------
  neighbors: int = 10  # database descriptors fetched per query descriptor (ours)
  max_descriptor_distance: float = 0.8  # L2 between unit descriptors (DELF's match threshold)
  num_candidates: int = 20  # database images verified per query, by descriptor votes (ours)
  index_backend: str = "auto"  # descriptor search: ScaNN ("auto"/"scann") or "exact"
  # Geometric verification -----------------------------------------------------------------
  residual_threshold: float = 20.0  # RANSAC inlier distance, pixels of the resized photo (DELF)
  ransac_trials: int = 1000  # DELF's max_trials
  ransac_seed: int = 0
  ransac_backend: str = "numpy"  # "numpy" (vectorised) or "skimage" (scikit-image's ransac)
  # The least inliers for "landmark"; None: every query gets its best image's landmark until
  # `calibrate_min_inliers` sets it for a target specificity.
  min_inliers: float | None = None

  def __post_init__(self):
    if self.attention not in ATTENTION_KINDS:
      raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")
    if not self.scales or min(self.scales) <= 0:
      raise ValueError(f"scales must be positive, got {self.scales}")
    if self.max_features < 1 or self.pca_dim < 1:
      raise ValueError("max_features and pca_dim must be positive")
