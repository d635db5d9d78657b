"""`evaluate` when the recognizer verifies: a setting "with verification" beside the others,
whose answers are the Python API's, photo by photo; predictions.csv gains their columns; with
verification off the report is, byte for byte, that of an index without local features."""

import csv
import json

import numpy as np
import pytest

from landmark_jax.data import source_for
from landmark_jax.data.transforms import record_data
from landmark_jax.eval.report import PREDICTIONS_HEADER, VERIFICATION_HEADER, evaluate_index
from tests.recognize.verified_index import BAND, ETA, verified_index

REPORT_FILES = (
  "report.json",
  "report.md",
  "predictions.csv",
  "threshold_sweep.png",
  "sensitivity_specificity.png",
  "score_distributions.png",
)


@pytest.fixture(scope="module")
def built(trained, index_dir, tmp_path_factory):
  return verified_index(trained, index_dir, tmp_path_factory)


def demo_test_photos(trained, label_map):
  """Six landmark and six non-landmark photos of the demo test split."""
  source = source_for(trained.config.data, "test", label_map)
  none = source.labels == source.label_map.non_landmark_label
  return source.subset(np.concatenate([np.flatnonzero(~none)[:6], np.flatnonzero(none)[:6]]))


def evaluate(tiny_trained, index, out, verify):
  return evaluate_index(tiny_trained[0], index, out, demo_test_photos, min_photos=0, verify=verify)


@pytest.fixture(scope="module")
def reports(tiny_trained, built, tmp_path_factory):
  """The report folders of the verified index with verification on (by default) and off,
  and of the same index without local features."""
  out = tmp_path_factory.mktemp("reports")
  evaluate(tiny_trained, built.verified, out / "on", None)
  evaluate(tiny_trained, built.verified, out / "off", False)
  evaluate(tiny_trained, built.plain, out / "plain", None)
  return out


def read_rows(path):
  with open(path, newline="") as f:
    return list(csv.reader(f))


def test_verification_stands_beside_the_headline_as_the_recognizer_answers(trained, built, reports):
  from landmark_jax.index import CentroidIndex
  from landmark_jax.recognize import Recognizer

  tmp_path = reports
  report = json.loads((tmp_path / "on" / "report.json").read_text())
  setting = report["settings"]["verification"]
  assert report["headline"] == "paper" and list(report["settings"])[0] == "paper"
  assert setting["eta"] == pytest.approx(ETA) and setting["references"] is False
  assert {k: setting["verification"][k] for k in ("below", "above", "min_inliers")} == {
    k: BAND[k] for k in ("below", "above", "min_inliers")
  }
  assert setting["verification"]["verified_photos"] == 12  # the band holds every score
  assert report["verification"]["with"]["recognised"] == setting["recognised"]

  rows = read_rows(tmp_path / "on" / "predictions.csv")
  assert tuple(rows[0]) == PREDICTIONS_HEADER + VERIFICATION_HEADER
  width = len(PREDICTIONS_HEADER)
  # The columns of today stay as they were; the headline too (the paper's η alone).
  assert [row[:width] for row in rows] == read_rows(tmp_path / "off" / "predictions.csv")
  off = json.loads((tmp_path / "off" / "report.json").read_text())
  assert {k: report[k] for k in ("sensitivity", "specificity", "recognised", "rejected")} == {
    k: off[k] for k in ("sensitivity", "specificity", "recognised", "rejected")
  }
  # Photo by photo, the answer recognition gives to the same record.
  recognizer = Recognizer(trained, CentroidIndex.load(built.verified))
  source = demo_test_photos(trained, recognizer.decision.label_map)
  by_id = {str(i): record_data(source[n]) for n, i in enumerate(source.ids)}
  truth_right = rejected = 0
  for row in rows[1:]:
    record = dict(zip(rows[0], row))
    expected = recognizer.recognize(by_id[record["id"]])
    assert record["verified"] == "true" and int(record["inliers"]) == expected.inliers
    assert record["predicted_with_verification"] == (expected.landmark_id or "")
    truth_right += record["landmark_id"] != "" and (
      record["predicted_with_verification"] == record["landmark_id"]
    )
    rejected += record["landmark_id"] == "" and record["predicted_with_verification"] == ""
  assert (setting["recognised"], setting["rejected"]) == (truth_right, rejected)
  markdown = (tmp_path / "on" / "report.md").read_text()
  assert (
    "| with verification (η = 0.5000, no ρ, band [η − 2.0000, η + 2.0000), k = 8) |" in markdown
  )
  assert "With verification: the 12 photos (100.0 %)" in markdown


def test_with_verification_off_the_report_is_that_of_an_index_without_it(reports):
  for name in REPORT_FILES:
    assert (reports / "off" / name).read_bytes() == (reports / "plain" / name).read_bytes(), name
  assert "verification" not in json.loads((reports / "off" / "report.json").read_text())
