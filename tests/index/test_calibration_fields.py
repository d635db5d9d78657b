"""The manifest's ``eta`` is the η recognition applies; η alone, when a ρ was chosen, is
``eta_without_references``. An index saved in the earlier layout (``eta`` η alone,
``eta_with_references`` the η applied with ρ) loads as today's, and decides as it did."""

import json
import math

import numpy as np
import pytest

from landmark_jax.index import CentroidIndex
from landmark_jax.index.calibration_fields import migrated, stored_eta
from landmark_jax.index.integrity import IndexFormatError
from landmark_jax.recognize import Decision
from tests.index.test_references import hand_index

# What `calibrate` stored before, with a ρ chosen: the figures of η alone at the top.
LEGACY = {
  "eta": 0.9,
  "reference_threshold": 0.7,
  "eta_with_references": 0.5,
  "calibration": {
    "eta": 0.9,
    "specificity": 0.8,
    "sensitivity": 0.1,
    "reference_threshold": 0.7,
    "eta_with_references": 0.5,
    "specificity_with_references": 0.8,
    "sensitivity_with_references": 0.6,
  },
}


def f32(value):
  return float(np.float32(value))


def test_an_index_of_the_earlier_layout_loads_as_today_and_decides_as_before(tmp_path):
  hand_index().with_metadata(**LEGACY).save(tmp_path / "index")
  loaded = CentroidIndex.load(tmp_path / "index")
  assert "eta_with_references" not in loaded.metadata
  assert (loaded.metadata["eta"], loaded.metadata["eta_without_references"]) == (0.5, 0.9)
  figures = loaded.metadata["calibration"]
  assert (figures["eta"], figures["sensitivity"]) == (0.5, 0.6)
  assert (figures["eta_without_references"], figures["sensitivity_without_references"]) == (
    0.9,
    0.1,
  )
  # As before: η and ρ together by default, η alone with ρ switched off.
  decision = Decision(loaded)
  assert (decision.eta, decision.reference_threshold) == (f32(0.5), f32(0.7))
  assert decision.eta_without_references == f32(0.9)
  assert Decision(loaded, reference_threshold=-math.inf).eta == f32(0.9)
  # Saved again, the file is in today's layout and loads the same.
  loaded.save(tmp_path / "again")
  manifest = json.loads((tmp_path / "again" / "manifest.json").read_text())
  assert manifest["eta"] == 0.5 and "eta_with_references" not in manifest
  assert CentroidIndex.load(tmp_path / "again").metadata == loaded.metadata


def test_an_earlier_index_without_rho_keeps_its_eta():
  old = {"eta": 0.9, "reference_threshold": None, "eta_with_references": None}
  assert migrated(old) == {"eta": 0.9, "reference_threshold": None, "eta_without_references": None}
  assert migrated({"eta": 0.9}) == {"eta": 0.9}  # no class references at all: nothing to move


def test_the_stored_eta_for_each_rule():
  today = {"eta": 0.5, "reference_threshold": 0.7, "eta_without_references": 0.9}
  assert stored_eta(today, references_applied=True) == 0.5
  assert stored_eta(today, references_applied=False) == 0.9
  alone = {"eta": 0.9, "reference_threshold": None, "eta_without_references": None}
  assert stored_eta(alone, references_applied=False) == 0.9
  assert stored_eta({}, references_applied=True) is None


def test_eta_without_references_is_checked_like_eta(tmp_path):
  hand_index().with_metadata(eta=0.5, eta_without_references=math.nan).save(tmp_path / "index")
  with pytest.raises(IndexFormatError, match="eta_without_references nan is not a similarity"):
    CentroidIndex.load(tmp_path / "index")
