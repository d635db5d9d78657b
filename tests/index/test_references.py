"""Class references: a candidate whose centroid is close but whose reference photos are far is
rejected; ρ is calibrated by η's rule; references travel with the index through save, load
and edits, and a damaged references file is refused."""

import math
import pathlib

import numpy as np
import pytest

from landmark_jax.data import LabelMap
from landmark_jax.eval.calibration import calibrate_on
from landmark_jax.index import CentroidIndex, IndexConfig
from landmark_jax.index.editing import remove_landmarks
from landmark_jax.index.integrity import IndexFormatError
from landmark_jax.index.references import References
from landmark_jax.index.threshold import eta_for_specificity
from landmark_jax.index.validation import ValidationSet
from landmark_jax.recognize import REASON_FAR_FROM_REFERENCES, Decision, Recognizer

DIM = 64  # the session's tiny model


def e(i):
  return np.eye(DIM, dtype=np.float64)[i]


def unit(x):
  x = np.asarray(x, np.float64)
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def mix(a, b, cos):
  """The unit vector at cosine `cos` to unit `a`, in the plane of `a` and `b` (b ⟂ a)."""
  return cos * a + math.sqrt(1 - cos * cos) * b


def hand_index():
  """Landmark "arch" (label 0): one centroid e0, whose cluster was two views, so its
  reference photos are e0 ± 0.8·e2 (cosine 0.6 to e0 each: the mean lies between them).
  Landmark "dome" (label 1): centroid e1, reference photo e1 itself."""
  references = References(unit([mix(e(0), e(2), 0.6), mix(e(0), -e(2), 0.6), e(1)]), [0, 0, 1])
  return CentroidIndex.build(
    unit([e(0), e(1)]),
    [0, 1],
    IndexConfig(backend="exact"),
    label_map=LabelMap(("arch", "dome")),
    metadata={"eta": 0.8, "reference_threshold": 0.7},
    references=references,
  )


def test_a_planted_candidate_near_the_centroid_but_far_from_the_references_is_rejected(trained):
  recognizer = Recognizer(trained, hand_index())
  # Query 1: cosine 0.95 to the arch's centroid (clears η = 0.8) but off to the side, along
  # e3: its similarity to each reference is 0.95 · 0.6 = 0.57 < ρ = 0.7.
  planted = mix(e(0), e(3), 0.95)
  # Query 2: one of the arch's two views, cosine 0.9 to a reference photo: 0.9 ≥ ρ.
  view = mix(unit(mix(e(0), e(2), 0.6)), e(3), 0.9)
  # Query 3: the dome, cosine 0.85 to its centroid, which is also its reference.
  dome = mix(e(1), e(4), 0.85)
  planted_answer, view_answer, dome_answer = recognizer.decision.predict(
    unit([planted, view, dome]).astype(np.float32)
  )
  assert planted_answer.candidates[0].landmark_id == "arch"
  assert planted_answer.score == pytest.approx(0.95, abs=1e-6)
  assert planted_answer.reference_similarity == pytest.approx(0.95 * 0.6, abs=1e-6)
  assert planted_answer.landmark_id is None
  assert planted_answer.reason == REASON_FAR_FROM_REFERENCES
  assert "below the threshold ρ = 0.700" in planted_answer.reason_text
  # The view: its centroid score is 0.9 · 0.6 = 0.54 < η, so η alone rejects it, and the
  # answer says so (ρ is not what rejected it).
  assert view_answer.landmark_id is None and view_answer.reason == "below_threshold"
  assert view_answer.reference_threshold is None
  # A photo below η and far from the references too is "below_threshold" as well.
  far_and_low = recognizer.decision.predict(unit([mix(e(0), e(5), 0.5)]).astype(np.float32))[0]
  assert far_and_low.reference_similarity == pytest.approx(0.3, abs=1e-6)
  assert far_and_low.reason == "below_threshold"
  assert view_answer.reference_similarity == pytest.approx(0.9, abs=1e-6)
  assert dome_answer.landmark_id == "dome"
  assert dome_answer.reference_similarity == pytest.approx(0.85, abs=1e-6)
  # Without the references check (ρ = -inf) the planted candidate is accepted.
  unchecked = Recognizer(trained, hand_index(), reference_threshold=-math.inf)
  assert unchecked.decision.predict(unit([planted]).astype(np.float32))[0].landmark_id == "arch"


def test_a_landmark_without_references_is_not_rejected_by_them(trained):
  index = hand_index()
  index = index.with_references(References(index.references.vectors[:2], [0, 0]))  # dome: none
  answer = Recognizer(trained, index).decision.predict(
    unit([mix(e(1), e(4), 0.85)]).astype(np.float32)
  )[0]
  assert answer.landmark_id == "dome" and answer.reference_similarity is None


def _non_landmarks_beside_the_arch():
  """Ten non-landmark photos at cosine 0.9 to the arch's centroid (e0) but between its two
  views, at different similarities to its references."""
  photos = []
  for i, c in enumerate(np.linspace(0.3, 0.75, 10)):
    # x = 0.9·e0 + y·e2 + z·e(13+i), a unit vector: x·e0 = 0.9, and x·r1 = 0.9·0.6 + 0.8·y
    # = 0.9·c against the first reference (r1 = 0.6·e0 + 0.8·e2).
    y = (0.9 * c - 0.54) / 0.8
    photos.append(0.9 * e(0) + y * e(2) + math.sqrt(1 - 0.81 - y * y) * e(13 + i))
  return unit(np.array(photos))


def test_rho_and_eta_are_calibrated_together_for_the_target(trained):
  non_landmarks = _non_landmarks_beside_the_arch()
  # Ten photos of the arch, each within cosine 0.95 of one of its two views: they score only
  # 0.95 · 0.6 = 0.57 against the centroid, below every non-landmark photo (0.9).
  arch = [mix(unit(mix(e(0), (-1) ** i * e(2), 0.6)), e(30 + i), 0.95) for i in range(10)]
  vectors = unit(np.concatenate([non_landmarks, arch])).astype(np.float32)
  validation = ValidationSet([f"v{i}" for i in range(20)], [None] * 10 + ["arch"] * 10, vectors)
  index = hand_index()
  result = calibrate_on(Decision(index, eta=-math.inf), validation, 0.8)
  # η alone must reject 8 of the 10 non-landmarks, all at 0.9: it lands above 0.9 and rejects
  # every arch photo too.
  alone = eta_for_specificity(np.full(10, np.float32(0.9)), 0.8)
  assert result["eta_without_references"] == alone
  assert result["sensitivity_without_references"] == 0.0
  # By hand: the non-landmarks' best similarities to the references (r1 or r2, whichever
  # they lean to). The lowest ρ that rejects 8 of them meets the target by itself, so η can
  # drop to accept everything, and every arch photo (0.95 to a reference) is recognised.
  # That pair is the headline: what recognition applies.
  references = index.references.vectors.astype(np.float64)[:2]
  best = np.sort((non_landmarks @ references.T).max(1).astype(np.float32))
  assert result["reference_threshold"] == eta_for_specificity(best, 0.8)
  assert result["eta"] == -1.0
  assert result["sensitivity"] == 1.0
  assert result["specificity"] == 0.8
  # Stored, the recognizer applies both: every arch photo is recognised, and 8 of the 10
  # non-landmarks are still rejected (now by ρ).
  calibrated = index.with_metadata(
    **{k: result[k] for k in ("eta", "reference_threshold", "eta_without_references")}
  )
  recognizer = Recognizer(trained, calibrated)
  assert recognizer.eta == result["eta"]
  answers = recognizer.decision.predict(vectors)
  assert [a.landmark_id for a in answers[10:]] == ["arch"] * 10
  assert sum(a.landmark_id is None for a in answers[:10]) == 8
  assert recognizer.decision.eta_without_references == alone


def test_references_that_buy_nothing_are_not_applied(trained):
  # The dome's photos and non-landmarks are told apart by the centroid alone (η): no ρ can
  # raise sensitivity, so none is stored and recognition uses η.
  dome = [mix(e(1), e(40 + i), 0.95) for i in range(5)]
  others = [mix(e(1), e(50 + i), 0.5) for i in range(5)]
  vectors = unit(np.array(dome + others)).astype(np.float32)
  validation = ValidationSet([f"v{i}" for i in range(10)], ["dome"] * 5 + [None] * 5, vectors)
  result = calibrate_on(Decision(hand_index(), eta=-math.inf), validation, 0.8)
  assert result["sensitivity"] == 1.0
  assert result["reference_threshold"] is None and result["eta_without_references"] is None


def test_references_survive_save_load_and_leave_with_a_removed_landmark(tmp_path):
  index = hand_index()
  index.save(tmp_path / "index")
  loaded = CentroidIndex.load(tmp_path / "index")
  np.testing.assert_array_equal(loaded.references.vectors, index.references.vectors)
  np.testing.assert_array_equal(loaded.references.labels, [0, 0, 1])
  assert loaded.metadata["reference_threshold"] == 0.7
  edited = remove_landmarks(loaded, ["dome"])
  np.testing.assert_array_equal(edited.references.labels, [0, 0])


def test_a_reference_of_a_landmark_without_centroid_is_a_damaged_index(tmp_path):
  index = hand_index()
  index = index.with_references(References(index.references.vectors, [0, 0, 5]))
  index.save(tmp_path / "index")
  with pytest.raises(IndexFormatError, match=r"reference_labels\.npy.*\[5\].*no centroid"):
    CentroidIndex.load(tmp_path / "index")


def test_an_index_of_another_model_is_named_in_a_warning(trained, caplog):
  Recognizer(trained, hand_index().with_metadata(checkpoint=trained.checkpoint_id))
  assert "built from the embeddings of" not in caplog.text
  # A copy of the same workdir elsewhere: the same folder name and step, no warning.
  folder, _, step = trained.checkpoint_id.rpartition("@")
  moved = f"/somewhere/else/{pathlib.PurePath(folder).name}@{step}"
  Recognizer(trained, hand_index().with_metadata(checkpoint=moved))
  assert "built from the embeddings of" not in caplog.text
  Recognizer(trained, hand_index().with_metadata(checkpoint="/runs/other/train@5"))
  assert (
    f"built from the embeddings of /runs/other/train@5, and this model is "
    f"{trained.checkpoint_id}" in caplog.text
  )
