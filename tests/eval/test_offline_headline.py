"""`evaluate`'s headline is the paper's offline test: η alone, with neither class references
nor geo-information. The settings the recognizer adds (η and ρ; locations) stand beside it,
for the headline and for every breakdown. Checked on thirteen hand-made photos where ρ and
the locations change known decisions, against plain NumPy."""

import csv
import dataclasses
import json
import re

import numpy as np
import pytest

from landmark_jax.eval.report import write_report
from landmark_jax.eval.scoring import ScoredPhotos

ETA_ALONE, ETA, RHO = 0.9, 0.8, 0.5  # η alone is calibrated higher than the η that goes with ρ
TRAIN_COUNTS = {0: 2, 1: 20, 2: 20}  # landmark 0 is rare (< 10 training photos)
CATEGORIES = {0: "church", 1: "church", 2: "bridge"}

# Per photo: true landmark (None: none), nearest landmark, best score, similarity to the
# nearest landmark's reference photos.
PHOTOS = [
  (0, 0, 0.95, 0.8),  # L0: right, clears both rules
  (0, 0, 0.85, 0.3),  # L1: right, under η alone; far from its references
  (0, 1, 0.97, 0.9),  # L2: wrong landmark, accepted by both
  (1, 1, 0.92, 0.6),  # L3: right, clears both
  (1, 1, 0.75, 0.9),  # L4: right, under both ηs
  (2, 2, 0.99, 0.95),  # L5: right, clears both
  (2, 2, 0.88, 0.7),  # L6: right, under η alone, clears η and ρ
  (2, 2, 0.60, 0.9),  # L7: right, under both ηs
  (None, 0, 0.96, 0.8),  # N0: accepted by both
  (None, 1, 0.91, 0.2),  # N1: accepted by η alone, ρ rejects it
  (None, 2, 0.87, 0.4),  # N2: under η alone; over η, ρ rejects it
  (None, 0, 0.70, 0.9),  # N3: under both ηs
  (None, 2, 0.50, 0.1),  # N4: under both ηs
]
# With their locations: L2's own landmark is the only one near it (0.93, 0.9 to its
# references) and N0's nearest becomes one it barely resembles (0.55).
GEO_CHANGES = {2: (0, 0.93, 0.9), 8: (2, 0.55, 0.8)}


def scored_photos(photos) -> ScoredPhotos:
  truth, nearest, scores, similarity = zip(*photos)
  similarity = np.array(similarity)
  return ScoredPhotos(
    [f"p{i}" for i in range(len(photos))],
    list(truth),
    list(nearest),
    np.array(scores),
    near_references=similarity >= RHO,
    reference_similarity=similarity,
  )


def geo_photos():
  return [
    (t, *GEO_CHANGES[i]) if i in GEO_CHANGES else (t, n, s, r)
    for i, (t, n, s, r) in enumerate(PHOTOS)
  ]


def by_hand(photos, eta, rho=None) -> dict:
  """Predictions, rates and breakdowns of `photos` at η (and ρ), in plain NumPy."""
  truth = np.array([-1 if t is None else t for t, *_ in photos])
  nearest = np.array([n for _, n, _, _ in photos])
  score = np.array([s for *_, s, _ in photos], np.float32)
  similarity = np.array([r for *_, r in photos], np.float32)
  accepted = score >= np.float32(eta)
  if rho is not None:
    accepted &= similarity >= np.float32(rho)
  predicted = np.where(accepted, nearest, -1)
  landmark = truth >= 0
  right = landmark & (predicted == truth)

  def sensitivity_of(landmarks):
    group = np.isin(truth, list(landmarks))
    return right[group].sum(), group.sum()

  # GAP: the predictions made, most confident first; precision at each correct one.
  made = np.flatnonzero(accepted)
  ranked = made[np.argsort(-score[made], kind="stable")]
  correct = predicted[ranked] == truth[ranked]
  precision = np.cumsum(correct) / np.arange(1, len(ranked) + 1)
  return {
    "predicted": ["" if p < 0 else str(p) for p in predicted],
    "recognised": int(right.sum()),
    "rejected": int((~accepted[~landmark]).sum()),
    "rare": sensitivity_of([0]),
    "frequent": sensitivity_of([1, 2]),
    "church": sensitivity_of([0, 1]),
    "bridge": sensitivity_of([2]),
    "gap": np.sum(precision * correct) / landmark.sum(),
  }


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  out = tmp_path_factory.mktemp("report")
  result = write_report(
    scored_photos(PHOTOS),
    ETA,
    out,
    train_counts=TRAIN_COUNTS,
    categories=CATEGORIES,
    geo_scored=dataclasses.replace(scored_photos(geo_photos()), located=len(PHOTOS)),
    min_photos=0,
    reference_threshold=RHO,
    eta_without_references=ETA_ALONE,
  )
  return out, result


SETTINGS = {  # key → (photos, η, ρ)
  "paper": (PHOTOS, ETA_ALONE, None),
  "references": (PHOTOS, ETA, RHO),
  "geo": (geo_photos(), ETA_ALONE, None),
  "geo_references": (geo_photos(), ETA, RHO),
}


def test_the_hand_made_photos_differ_where_they_should():
  # What the rows below must show, counted by hand from the table above.
  paper, references = by_hand(PHOTOS, ETA_ALONE), by_hand(PHOTOS, ETA, RHO)
  assert (paper["recognised"], paper["rejected"]) == (3, 3)  # L0, L3, L5; N2–N4
  assert (references["recognised"], references["rejected"]) == (4, 4)  # + L6; + N1
  assert paper["frequent"] == (2, 5) and references["frequent"] == (3, 5)
  assert paper["bridge"] == (1, 3) and references["bridge"] == (2, 3)
  assert paper["rare"] == references["rare"] == (1, 3)
  geo, geo_references = by_hand(geo_photos(), ETA_ALONE), by_hand(geo_photos(), ETA, RHO)
  assert (geo["recognised"], geo["rejected"]) == (4, 4)  # + L2; + N0
  assert (geo_references["recognised"], geo_references["rejected"]) == (5, 5)
  assert geo["rare"] == (2, 3)


def test_the_headline_is_eta_alone_without_references_or_geo(report):
  out, result = report
  paper = by_hand(PHOTOS, ETA_ALONE)
  report_json = json.loads((out / "report.json").read_text())
  for figures in (result, report_json):
    assert (figures["recognised"], figures["landmark_images"]) == (paper["recognised"], 8)
    assert (figures["rejected"], figures["non_landmark_images"]) == (paper["rejected"], 5)
    assert figures["sensitivity"] == pytest.approx(3 / 8)
    assert figures["specificity"] == pytest.approx(3 / 5)
    for group in ("rare", "frequent"):
      row = figures["by_frequency"][group]
      assert (row["recognised"], row["images"]) == paper[group]
    for group in ("church", "bridge"):
      row = figures["by_category"][group]
      assert (row["recognised"], row["images"]) == paper[group]
    assert figures["gap"] == pytest.approx(paper["gap"])
    # η and ρ stay what the recognizer applies; the headline's η is its setting's.
    assert (figures["eta"], figures["reference_threshold"]) == (ETA, RHO)
    assert figures["headline"] == "paper" and figures["settings"]["paper"]["eta"] == ETA_ALONE


@pytest.mark.parametrize("key", list(SETTINGS))
def test_every_setting_has_the_headline_and_every_breakdown(report, key):
  _, result = report
  photos, eta, rho = SETTINGS[key]
  expected = by_hand(photos, eta, rho)
  setting = result["settings"][key]
  assert (setting["eta"], setting["reference_threshold"]) == (eta, rho)
  assert (setting["geo"], setting["references"]) == ("geo" in key, rho is not None)
  assert (setting["recognised"], setting["rejected"]) == (
    expected["recognised"],
    expected["rejected"],
  )
  for group in ("rare", "frequent"):
    row = setting["by_frequency"][group]
    assert (row["recognised"], row["images"]) == expected[group]
  for group in ("church", "bridge"):
    row = setting["by_category"][group]
    assert (row["recognised"], row["images"]) == expected[group]
  assert setting["gap"] == pytest.approx(expected["gap"])


def test_the_with_and_without_tables_keep_their_keys(report):
  _, result = report
  paper, references = by_hand(PHOTOS, ETA_ALONE), by_hand(PHOTOS, ETA, RHO)
  geo = by_hand(geo_photos(), ETA_ALONE)
  assert result["references"]["without"]["recognised"] == paper["recognised"]
  assert result["references"]["with"]["recognised"] == references["recognised"]
  assert result["references"]["eta_without_references"] == ETA_ALONE
  assert result["geo"]["without"]["rejected"] == paper["rejected"]
  assert result["geo"]["with"]["rejected"] == geo["rejected"]
  assert result["geo"]["located_photos"] == len(PHOTOS)


def percentages(line: str) -> list[float]:
  """The rates of a Markdown row (each "37.5 % (" cell's leading figure)."""
  return [float(p) for p in re.findall(r"(\d+\.\d) % \(", line)]


def row_of(markdown: str, start: str) -> str:
  [line] = [line for line in markdown.splitlines() if line.startswith(start)]
  return line


def test_the_markdown_names_the_paper_row_and_puts_the_others_beside_it(report):
  out, _ = report
  markdown = (out / "report.md").read_text()
  # The recognizer's η and ρ first ("one η everywhere"), then the headline's η alone.
  assert "the recognizer applies threshold η = 0.8000 with ρ = 0.5000" in markdown
  assert "The headline is the paper's offline test: η = 0.9000 alone" in markdown
  rows = {
    "| paper's offline test (η = 0.9000, no ρ) |": "paper",
    "| with references (η = 0.8000, ρ = 0.5000) |": "references",
    "| with geo-information (η = 0.9000, no ρ) |": "geo",
    "| with geo-information and references (η = 0.8000, ρ = 0.5000) |": "geo_references",
  }
  lines = markdown.splitlines()
  header = lines.index("| all photos | sensitivity | specificity |")
  assert [line.split(" | ")[0] + " |" for line in lines[header + 2 : header + 6]] == list(rows)
  for start, key in rows.items():
    expected = by_hand(*SETTINGS[key])
    assert percentages(row_of(markdown, start)) == [
      round(100 * expected["recognised"] / 8, 1),
      round(100 * expected["rejected"] / 5, 1),
    ]
  # Breakdowns: one sensitivity column per setting, in the same order.
  for group in ("rare", "frequent", "church", "bridge"):
    line = row_of(markdown, f"| {group} |")
    assert percentages(line) == [
      round(100 * by_hand(*SETTINGS[key])[group][0] / by_hand(*SETTINGS[key])[group][1], 1)
      for key in rows.values()
    ]
    assert f"n = {by_hand(PHOTOS, ETA_ALONE)[group][1]}" in line
  frequent_header = lines[lines.index(row_of(markdown, "| landmarks |"))]
  assert frequent_header.index("paper's offline test (η, no ρ)") < frequent_header.index(
    "with references (η, ρ)"
  )


def test_predictions_csv_gives_both_rules(report):
  out, _ = report
  with open(out / "predictions.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert [r["predicted_landmark_id"] for r in rows] == by_hand(PHOTOS, ETA_ALONE)["predicted"]
  assert [r["predicted_with_references"] for r in rows] == by_hand(PHOTOS, ETA, RHO)["predicted"]


def test_without_a_rho_the_headline_is_eta_and_stands_alone(tmp_path):
  # Calibration chose no ρ: the manifest's eta_without_references is None and η is η alone.
  scored = dataclasses.replace(scored_photos(PHOTOS), near_references=None)
  result = write_report(scored, ETA, tmp_path, min_photos=0, eta_without_references=None)
  expected = by_hand(PHOTOS, ETA)
  assert (result["recognised"], result["rejected"]) == (
    expected["recognised"],
    expected["rejected"],
  )
  assert list(result["settings"]) == ["paper"] and result["settings"]["paper"]["eta"] == ETA
  assert result["reference_threshold"] is None and "references" not in result
  markdown = (tmp_path / "report.md").read_text()
  assert "| paper's offline test (η = 0.8000, no ρ) |" in markdown
  assert "with references" not in markdown
