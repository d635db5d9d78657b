"""One η everywhere: after a calibration that chooses a class-reference threshold ρ, the η
that `calibrate` prints, the index manifest's ``eta``, `Recognizer.eta`, the threshold the
decision applies, ``/v1/info`` and `evaluate`'s report are one number, with ρ beside it.

The index is `test_references`' hand-made one (the tiny model's 64 dimensions), keeping the
validation photos on which ρ buys every landmark photo: η alone must sit above 0.9 and
rejects them all, η with ρ drops to -1. So a place that showed η alone would show 0.9000.
"""

import json
import math
import re

import httpx
import numpy as np
import pytest

from landmark_jax.cli.main import main
from landmark_jax.data import GLDv2Source
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.index import CentroidIndex
from landmark_jax.index.validation import ValidationSet
from landmark_jax.recognize import Decision, Recognizer
from landmark_jax.serve.app import create_app
from tests.index.test_references import _non_landmarks_beside_the_arch, e, hand_index, mix, unit
from tests.serve.conftest import SERVE_CONFIG, app_in_thread


def f32(value):
  return float(np.float32(value))


def validation_where_rho_pays() -> ValidationSet:
  """Ten non-landmark photos at 0.9 to the arch's centroid, between its two views; ten arch
  photos near one view each, at 0.57 to the centroid (as in `test_references`)."""
  arch = [mix(unit(mix(e(0), (-1) ** i * e(2), 0.6)), e(30 + i), 0.95) for i in range(10)]
  vectors = unit(np.concatenate([_non_landmarks_beside_the_arch(), arch])).astype(np.float32)
  return ValidationSet([f"v{i}" for i in range(20)], [None] * 10 + ["arch"] * 10, vectors)


@pytest.fixture
def index_with_rho(trained, tmp_path, capsys):
  """The hand-made index, built (its manifest says) from the tiny model's embeddings, and
  calibrated by `landmark-jax calibrate` on its stored photos: (folder, what it printed)."""
  path = tmp_path / "index"
  index = hand_index().with_metadata(checkpoint=trained.checkpoint_id)
  index.with_validation(validation_where_rho_pays()).save(path)
  argv = ["calibrate", "--checkpoint", str(trained.workdir), "--index", str(path)]
  assert main([*argv, "--target-specificity", "0.8"]) == 0
  return path, capsys.readouterr().out


def printed_thresholds(text: str) -> tuple[str, str]:
  match = re.search(r"η = (-?\d\.\d{4}) with ρ = (-?\d\.\d{4})", text)
  assert match, text
  return match.groups()


def info_of_the_running_service(recognizer) -> dict:
  """``GET /v1/info`` of the real app under uvicorn on a free loopback port."""
  # log_config=None: uvicorn would reconfigure logging, closing the handlers pytest reads.
  with app_in_thread(create_app(recognizer, SERVE_CONFIG), log_config=None) as url:
    return httpx.get(f"{url}/v1/info", timeout=60).json()


def photo_folder(root):
  """Demo photos laid out for `--folder`: two for each landmark of the index, two of none."""
  paths = GLDv2Source(demo_dataset(), csv="test.csv").paths
  for i, kind in enumerate(["arch", "arch", "dome", "dome", "non_landmark", "non_landmark"]):
    (root / kind).mkdir(parents=True, exist_ok=True)
    (root / kind / f"{i}.jpg").symlink_to(paths[i])
  return root


def test_calibrate_manifest_recognizer_decision_service_and_report_agree(
  index_with_rho, trained, tmp_path, capsys
):
  index_with_rho, printed = index_with_rho
  manifest = json.loads((index_with_rho / "manifest.json").read_text())
  eta, rho = manifest["eta"], manifest["reference_threshold"]
  # The calibration chose a ρ, and η alone (kept beside it) is another number.
  assert rho is not None and eta == -1.0
  assert manifest["eta_without_references"] > 0.9 and "eta_with_references" not in manifest
  assert manifest["calibration"]["eta"] == eta

  assert printed_thresholds(printed) == (f"{eta:.4f}", f"{rho:.4f}")
  assert f"η alone would be {manifest['eta_without_references']:.4f}" in printed

  recognizer = Recognizer.load(trained.workdir, index_with_rho)
  assert recognizer.eta == f32(eta)
  assert recognizer.decision.reference_threshold == f32(rho)
  decision = Decision(CentroidIndex.load(index_with_rho))
  assert (decision.eta, decision.reference_threshold) == (f32(eta), f32(rho))
  # Applied, not only stored: the arch photos score 0.57 against its centroid, below η
  # alone, and are recognised; 8 of the 10 non-landmarks stay rejected (the target).
  answers = decision.predict(validation_where_rho_pays().embeddings)
  assert [a.landmark_id for a in answers[10:]] == ["arch"] * 10
  assert all(a.score < manifest["eta_without_references"] for a in answers[10:])
  assert sum(a.landmark_id is None for a in answers[:10]) == 8

  info = info_of_the_running_service(recognizer)
  assert (info["eta"], info["reference_threshold"]) == (f32(eta), f32(rho))

  out = tmp_path / "report"
  argv = ["evaluate", "--checkpoint", str(trained.workdir), "--index", str(index_with_rho)]
  argv += ["--out", str(out), "--folder", str(photo_folder(tmp_path / "photos"))]
  assert main([*argv, "--min-photos", "0"]) == 0
  report = json.loads((out / "report.json").read_text())
  assert (report["eta"], report["reference_threshold"]) == (f32(eta), f32(rho))
  assert report["references"]["eta_without_references"] == f32(manifest["eta_without_references"])
  assert printed_thresholds(capsys.readouterr().out) == (f"{eta:.4f}", f"{rho:.4f}")


def test_switching_rho_off_applies_eta_alone(index_with_rho):
  index_with_rho, _ = index_with_rho
  manifest = json.loads((index_with_rho / "manifest.json").read_text())
  alone = Decision(CentroidIndex.load(index_with_rho), reference_threshold=-math.inf)
  assert alone.eta == f32(manifest["eta_without_references"])
  assert alone.reference_threshold is None
