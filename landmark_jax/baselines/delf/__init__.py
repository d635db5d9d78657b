"""A DELF-style baseline (Noh et al., ICCV 2017) on our backbone: attention-selected local
descriptors, search over every database photo's descriptors, RANSAC verification.

The paper compares its centroid recognizer with DELF (§4): similar quality, ~15× faster. This
package lets a user rerun that comparison (`landmark-jax benchmark compare`).

    delf = build_delf(trained, training_source, DelfConfig(attention="feature_norm"))
    delf = delf.with_min_inliers(calibrate_min_inliers(delf, validation)["min_inliers"])
    delf.recognize(["photo.jpg"])
"""

from landmark_jax.lazy import lazy_exports

# Name → its module, imported on first use: `DelfConfig` (part of every run's config) must
# not pull in the attention trainer and its optimizer.
_EXPORTS = {
  "AttentionHead": ".attention",
  "train_attention": ".attention",
  "DelfConfig": ".config",
  "LocalFeatureExtractor": ".features",
  "LocalFeatures": ".features",
  "Pca": ".pca",
  "DelfDatabase": ".retrieval",
  "DelfPrediction": ".retrieval",
  "DelfRecognizer": ".retrieval",
  "build_delf": ".retrieval",
  "calibrate_min_inliers": ".retrieval",
  "min_inliers_for_specificity": ".retrieval",
  "Verification": ".verification",
  "match_descriptors": ".verification",
  "verify_affine": ".verification",
  "verify_pair": ".verification",
  "verify_with": ".verification",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = __dir__()
