"""A DELF-style baseline (Noh et al., ICCV 2017) on our backbone: attention-selected local
descriptors, search over every database photo's descriptors, RANSAC verification.

The paper compares its centroid recognizer with DELF (§4): similar quality, ~15× faster. This
package lets a user rerun that comparison (`landmark-jax benchmark compare`).

    delf = build_delf(trained, training_source, DelfConfig(attention="feature_norm"))
    delf = delf.with_min_inliers(calibrate_min_inliers(delf, validation)["min_inliers"])
    delf.recognize(["photo.jpg"])
"""

from landmark_jax.baselines.delf.attention import AttentionHead, train_attention
from landmark_jax.baselines.delf.config import DelfConfig
from landmark_jax.baselines.delf.features import LocalFeatureExtractor, LocalFeatures
from landmark_jax.baselines.delf.pca import Pca
from landmark_jax.baselines.delf.retrieval import (
    DelfDatabase, DelfPrediction, DelfRecognizer, build_delf, calibrate_min_inliers,
    min_inliers_for_specificity)
from landmark_jax.baselines.delf.verification import (
    Verification, match_descriptors, verify_affine, verify_pair)

__all__ = ["AttentionHead", "DelfConfig", "DelfDatabase", "DelfPrediction", "DelfRecognizer",
           "LocalFeatureExtractor", "LocalFeatures", "Pca", "Verification", "build_delf",
           "calibrate_min_inliers", "match_descriptors", "min_inliers_for_specificity",
           "train_attention", "verify_affine", "verify_pair"]
