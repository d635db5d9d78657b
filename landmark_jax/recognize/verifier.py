"""Verified answers: local features and RANSAC, spent only where the centroid score is
uncertain.

Most photos score far above or far below η, and the centroid answer stands. A photo whose
best score falls in the index's calibrated band around η (`index.verify_rule`) is described
by DELF-style local features (the extractor the index stores, on the recognizer's own
backbone) and matched against the stored reference photos of its best candidates: the
first candidate, in the centroids' order, with a reference photo that a RANSAC affine
transform explains with at least k matches is the answer; none reaching k is "no landmark"
(`too_few_inliers`). Outside the band, η and ρ decide as they always did.

Queries are described one photo at a time with the extractor's single-photo program, in
calibration, recognition and the service alike: another batch size runs other convolution
kernels, and a descriptor moved by rounding can change an inlier count by one at k.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from landmark_jax.baselines.delf.features import LocalFeatures
from landmark_jax.baselines.delf.stored import extractor_from_arrays
from landmark_jax.baselines.delf.verification import verify_with
from landmark_jax.data.config import ImageConfig
from landmark_jax.errors import UsageError
from landmark_jax.index.verify_rule import VerifyBand, in_band, stored_band
from landmark_jax.recognize.decision import Decision, Prediction


@dataclasses.dataclass(frozen=True)
class Check:
  """What verifying one photo found: `landmark_id` the first candidate reaching k (None:
  none did), `inliers` that photo's count (none reaching k: the most any reached, -1 with
  nothing to match), `photo_id` the reference photo that gave them."""

  landmark_id: str | None
  inliers: int
  photo_id: str | None
  # (candidates verified, their stored photos) best inliers per candidate, in order; None
  # for a candidate without stored photos. Calibration reads these (no early stop).
  per_candidate: tuple[int | None, ...] = ()


class Verifier:
  """A decision's uncertain answers, settled by local features (see the module).

  Args:
    trained: the `TrainedModel` whose backbone describes queries (the index's model).
    decision: the centroid decision it follows (its index must store local features).
    band: the band and k; default: the index's calibrated ones.
  """

  def __init__(self, trained, decision: Decision, band: VerifyBand | None = None):
    store = decision.index.local_features
    if store is None:
      raise UsageError(
        "the index stores no local features to verify with: run `landmark-jax local-features` "
        "on it first"
      )
    band = band or stored_band(decision.index.metadata)
    if band is None:
      raise UsageError(
        "the index has local features but no verification band yet: run `landmark-jax "
        "calibrate` on it"
      )
    self.decision = decision
    self.store = store
    self.band = band
    self.extractor = extractor_from_arrays(trained, store.extractor, store.settings, batch_size=1)
    self.config = self.extractor.config

  def needs(self, prediction: Prediction, eta: float | None = None) -> bool:
    """Whether `prediction` is one verification settles: its score in the band around η
    and one of its verified candidates has stored photos."""
    if not prediction.candidates:
      return False
    eta = self.decision.eta if eta is None else eta
    if not in_band(np.float32(prediction.score), eta, self.band):
      return False
    return any(label is not None for label in self.candidate_labels(prediction))

  def describe(self, image: Any, *, limits: ImageConfig | None = None) -> LocalFeatures:
    """A photo (path, bytes, PIL image or uint8 array) → its local features, with the
    single-photo program (see the module); a file decoded under `limits` (`ImageConfig`'s
    formats and budgets; default: the library's), a service's own."""
    pixels, photo_hw = self.extractor.prepare(image, limits)
    (features,) = self.extractor.extract_prepared(pixels[None], np.array([photo_hw], np.int32))
    return features

  def check(self, features: LocalFeatures, prediction: Prediction, *, stop: bool = True) -> Check:
    """Matches `features` against the stored photos of `prediction`'s verified candidates,
    in order; with `stop`, ends at the first photo reaching k (the answer is the same: the
    first candidate with a photo reaching k)."""
    best: tuple[int, str | None] = (-1, None)
    answer: tuple[str, int, str] | None = None
    per_candidate = []
    for candidate, label in zip(prediction.candidates, self.candidate_labels(prediction)):
      if label is None:
        per_candidate.append(None)
        continue
      most = -1
      for photo in self.store.photos_of(label):
        inliers = self._inliers(features, int(photo))
        photo_id = self.store.photo_ids[int(photo)]
        if inliers > most:
          most = inliers
        if inliers > best[0]:
          best = (inliers, photo_id)
        if answer is None and inliers >= self.band.min_inliers:
          answer = (candidate.landmark_id, inliers, photo_id)
          if stop:
            break
      per_candidate.append(most)
      if answer is not None and stop:
        break
    if answer is not None:
      return Check(*answer, tuple(per_candidate))
    return Check(None, best[0], best[1], tuple(per_candidate))

  def verified(self, prediction: Prediction, check: Check) -> Prediction:
    """`prediction` as verification answers it."""
    landmark = check.landmark_id
    return dataclasses.replace(
      prediction,
      landmark_id=landmark,
      name=None if landmark is None else self.decision.names.get(landmark),
      reference_threshold=None,  # inside the band the inliers decide, not ρ
      verified=True,
      inliers=check.inliers,
      verified_photo=check.photo_id,
      min_inliers=self.band.min_inliers,
    )

  def apply(
    self, images: Sequence[Any], predictions: Sequence[Prediction], eta: float | None = None
  ) -> list[Prediction]:
    """Each prediction that `needs` it, verified with its photo; the others as they are."""
    out = []
    for image, prediction in zip(images, predictions):
      if self.needs(prediction, eta):
        prediction = self.verified(prediction, self.check(self.describe(image), prediction))
      out.append(prediction)
    return out

  def candidate_labels(self, prediction: Prediction) -> list[int | None]:
    """The index labels of the verified candidates (`band.candidates` best), None where a
    candidate has no stored photos."""
    labels = []
    for candidate in prediction.candidates[: self.band.candidates]:
      label = self.decision.label_map.to_label(self.decision.label_map_id(candidate.landmark_id))
      labels.append(label if len(self.store.photos_of(label)) else None)
    return labels

  def _inliers(self, features: LocalFeatures, photo: int) -> int:
    keypoints, descriptors = self.store.features(photo)
    reference = LocalFeatures(
      keypoints, descriptors, np.zeros(len(keypoints), np.float32), np.zeros(len(keypoints))
    )
    return int(verify_with(features, reference, self.config).inliers)
