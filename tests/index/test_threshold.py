"""One decision rule, one dtype: calibration and recognition see the same float32 score of a
photo, however it is batched, and compare it with η the same way."""

import math

import numpy as np
import pytest

from landmark_jax.data import source_for
from landmark_jax.eval.calibration import calibrate_on, embed_validation
from landmark_jax.eval.scoring import ScoredPhotos
from landmark_jax.index import CentroidIndex, IndexConfig, threshold
from landmark_jax.recognize import Recognizer
from tests.helpers import clustered_vectors

# ScaNN's tree mode (≥ 20,000 centroids) is approximate: which neighbours it finds can vary
# with the batch, so the guarantee is for the two exact modes.
CONFIGS = {"scann brute force": IndexConfig(backend="scann"), "exact": IndexConfig(backend="exact")}


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_a_query_scores_the_same_alone_and_in_any_batch(config):
  centroids, _ = clustered_vectors(400, dim=128, clusters=40)
  index = CentroidIndex.build(centroids, np.arange(400) // 10, config)
  queries, _ = clustered_vectors(37, dim=128, clusters=40, seed=5)
  labels, scores, ids = index.search(queries, 8)
  for size in (1, 2, 3, 8, 16):
    for start in range(0, 37, size):
      _, part, part_ids = index.search(queries[start : start + size], 8)
      np.testing.assert_array_equal(part, scores[start : start + size])  # bit for bit
      np.testing.assert_array_equal(part_ids, ids[start : start + size])
  # Each score is the float64 dot product rounded to float32, best first.
  expected = np.einsum(
    "qkd,qd->qk", centroids[ids].astype(np.float64), queries.astype(np.float64)
  ).astype(np.float32)
  np.testing.assert_array_equal(scores, expected)
  assert (np.diff(scores, axis=1) <= 0).all()
  exact = (queries.astype(np.float64) @ centroids.T.astype(np.float64)).max(1)
  np.testing.assert_array_equal(scores[:, 0], exact.astype(np.float32))


def test_eta_is_compared_as_float32_everywhere():
  score = np.float32(0.7)  # 0.699999988079071 as a float
  assert threshold.is_landmark(float(score), 0.7)  # "0.7" means the float32 nearest to it
  assert threshold.as_threshold(0.7) == float(np.float32(0.7))
  above = threshold.threshold_rejecting(float(score))
  assert not threshold.is_landmark(float(score), above)
  assert threshold.is_landmark(float(np.nextafter(score, np.float32(1))), above)
  scored = ScoredPhotos(["a", "b"], [None, 1], [1, 1], np.array([score, score]))
  assert scored.predictions(0.7) == [1, 1] and scored.predictions(above) == [None, None]


def test_a_non_landmark_photo_exactly_at_the_threshold(trained, index_dir):
  """The photo that sets η (the highest-scoring non-landmark photo that calibration
  counts as rejected) is rejected when recognised alone, and accepted at η equal to its
  score — calibration, recognition and evaluation agree on it."""
  index = CentroidIndex.load(index_dir / "index")
  recognizer = Recognizer(trained, index, eta=-math.inf)
  validation_source = source_for(trained.config.data, "val", trained.label_map)
  validation = embed_validation(recognizer.photos, validation_source)
  result = calibrate_on(recognizer.decision, validation, 1.0)  # every non-landmark photo rejected
  assert result["specificity"] == 1.0
  non_landmark = np.flatnonzero(validation.is_non_landmark)
  scores = np.array(
    [p.score for p in recognizer.decision.predict(validation.embeddings[non_landmark])], np.float32
  )
  boundary = non_landmark[scores.argmax()]
  assert result["eta"] == float(np.nextafter(scores.max(), np.float32(2)))  # one step above
  path = validation_source.paths[list(validation_source.ids).index(validation.ids[boundary])]
  alone = Recognizer(trained, index, eta=result["eta"]).recognize([path], use_exif=False)[0]
  assert alone.score == float(scores.max())  # the same float32 as in the calibration batch
  assert not alone.is_landmark
  at_its_score = Recognizer(trained, index, eta=alone.score).recognize([path], use_exif=False)[0]
  assert at_its_score.is_landmark  # score ≥ η: the paper's rule, at equality too
