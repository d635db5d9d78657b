"""Embed → clean → index → calibrate → recognise with the tiny model on the demo dataset."""

import json
import math
import os

import numpy as np
import pytest

from landmark_jax.cli import main
from landmark_jax.data import GLDv2Source, source_for
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.eval.calibration import calibrate
from landmark_jax.index import CentroidIndex
from landmark_jax.index.threshold import eta_for_specificity
from landmark_jax.recognize import Recognizer, public_landmark_id
from landmark_jax.stages.embed import embed_to_folder


def test_eta_for_specificity_by_hand():
  scores = np.array([0.1, 0.5, 0.3, 0.9, 0.2, 0.4, 0.8, 0.7, 0.6, 0.35])
  # 10 scores; 90 % specificity needs 9 below η: just above the 9th smallest (0.8).
  eta = eta_for_specificity(scores, 0.9)
  assert 0.8 < eta < 0.8 + 1e-6 and np.mean(scores < eta) == 0.9
  assert np.mean(scores < eta_for_specificity(scores, 0.75)) == 0.8  # ⌈7.5⌉ = 8 below
  assert np.mean(scores < eta_for_specificity(scores, 1.0)) == 1.0
  with pytest.raises(ValueError, match="non-landmark"):
    eta_for_specificity(np.array([]), 0.9)


def test_restored_model_equals_the_trained_state(tiny_trained, trained):
  _, result = tiny_trained
  assert trained.step == result.steps and trained.model.num_classes == 8
  np.testing.assert_array_equal(
    trained.variables["params"]["classifier"]["kernel"],
    np.asarray(result.state.params["classifier"]["kernel"]),
  )


def test_embed_is_resumable_and_normalised(trained, tmp_path):
  source = source_for(trained.config.data, "train", trained.label_map)
  first = embed_to_folder(trained, source, tmp_path / "e", shard_size=64, progress=False)
  assert first.embeddings.shape == (len(source), 64)
  np.testing.assert_allclose(np.linalg.norm(first.embeddings, axis=1), 1.0, atol=1e-5)
  assert list(first.ids) == list(source.ids)
  shards = sorted((tmp_path / "e").glob("shard-*"))
  assert len(shards) == 6  # 6×18 + 2×9 landmark + 240 non-landmark = 366 images, 64 a shard
  kept = {s.name: os.stat(s / "embeddings.npy").st_mtime_ns for s in shards}
  import shutil

  shutil.rmtree(shards[1])  # as if killed before the second shard was renamed into place
  second = embed_to_folder(trained, source, tmp_path / "e", shard_size=64, progress=False)
  np.testing.assert_allclose(second.embeddings, first.embeddings, atol=1e-6)
  for shard in shards[:1] + shards[2:]:
    assert os.stat(shard / "embeddings.npy").st_mtime_ns == kept[shard.name]  # not redone


def test_centroids_cover_the_landmarks(index_dir, trained):
  index = CentroidIndex.load(index_dir / "index")
  report = json.loads((index_dir / "clean" / "report.json").read_text())
  assert report["landmarks_before"] == 8 and report["images_before"] == 126
  assert len(index) == report["centroids"] >= 8 - len(report["landmarks_without_valid_cluster"])
  np.testing.assert_allclose(np.linalg.norm(index.centroids, axis=1), 1.0, atol=1e-5)
  assert index.metadata["checkpoint"] == trained.checkpoint_id  # which embedding space
  clean_rows = (index_dir / "clean" / "train_clean.csv").read_text().splitlines()
  assert clean_rows[0] == "landmark_id,images" and len(clean_rows) - 1 == report["landmarks_after"]


def test_calibration_reaches_the_target_and_recognition_is_end_to_end(trained, index_dir, capsys):
  recognizer = Recognizer(trained, CentroidIndex.load(index_dir / "index"))
  validation = GLDv2Source(demo_dataset(), csv="val.csv", label_map=trained.label_map)
  result = calibrate(recognizer, validation, 0.9)
  assert result["specificity"] >= 0.9
  print("calibration:", result)

  # η from calibrate recomputed independently: the share of validation non-landmarks below it.
  embedded = recognizer.photos.embed_source(validation)
  scores = np.array(
    [p.score for p in recognizer.decision.predict(embedded.embeddings, eta=-math.inf)]
  )
  non_landmark = embedded.labels == trained.label_map.non_landmark_label
  assert np.mean(scores[non_landmark] < result["eta"]) >= 0.9

  # Held-out test photos, recognised by path, answers in the dataset's own landmark ids.
  test = GLDv2Source(demo_dataset(), csv="test.csv", label_map=trained.label_map)
  recognizer = Recognizer(trained, CentroidIndex.load(index_dir / "index"), eta=result["eta"])
  predictions = recognizer.recognize(list(test.paths))
  truth = test.landmark_ids()
  landmark = np.array([t is not None for t in truth])
  correct = np.array([p.landmark_id == public_landmark_id(t) for p, t in zip(predictions, truth)])
  sensitivity, specificity = correct[landmark].mean(), correct[~landmark].mean()
  print(f"test: sensitivity {sensitivity:.3f}, specificity {specificity:.3f}")
  assert all(p.landmark_id in (None, *map(str, range(8))) for p in predictions)
  assert all(len(p.candidates) == 5 and p.candidates[0].score == p.score for p in predictions)
  # Better than the trivial answers: all-non-landmark has sensitivity 0, all-nearest has
  # specificity 0.
  assert sensitivity > 0.05 and specificity > 0.5


def test_cli_pipeline_stores_eta_and_recognizes(tiny_trained, trained, tmp_path, capsys):
  workdir = str(tiny_trained[0])
  assert main(["embed", "--checkpoint", workdir, "--out", str(tmp_path / "embeddings")]) == 0
  assert (
    main(
      [
        "clean",
        "--embeddings",
        str(tmp_path / "embeddings"),
        "--out",
        str(tmp_path / "clean"),
        "distance_threshold=0.3",
      ]
    )
    == 0
  )
  assert (
    main(["build-index", "--clean", str(tmp_path / "clean"), "--out", str(tmp_path / "index")]) == 0
  )
  # The first calibration's target defaults to the model's own config (tiny_cpu: 0.95).
  assert main(["calibrate", "--checkpoint", workdir, "--index", str(tmp_path / "index")]) == 0
  manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
  assert (
    manifest["calibration"]["target_specificity"]
    == trained.config.calibration.target_specificity
    == 0.95
  )
  assert (
    main(
      [
        "calibrate",
        "--checkpoint",
        workdir,
        "--index",
        str(tmp_path / "index"),
        "--target-specificity",
        "0.9",
      ]
    )
    == 0
  )
  manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
  assert manifest["eta"] == manifest["calibration"]["eta"]
  assert manifest["checkpoint"] == trained.checkpoint_id  # carried from embed through clean
  photo = GLDv2Source(demo_dataset(), csv="test.csv").paths[0]
  capsys.readouterr()
  assert (
    main(
      ["recognize", "--checkpoint", workdir, "--index", str(tmp_path / "index"), "--json", photo]
    )
    == 0
  )
  line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert line["path"] == photo and len(line["candidates"]) == 5
  # An unreadable photo among readable ones: the others are still recognised, the bad one is
  # named on stderr (one line), and the status says something went wrong.
  broken = tmp_path / "broken.jpg"
  broken.write_bytes(b"\xff\xd8 not really a jpeg")
  assert (
    main(
      ["recognize", "--checkpoint", workdir, "--index", str(tmp_path / "index"), photo, str(broken)]
    )
    == 2
  )
  captured = capsys.readouterr()
  assert captured.out.startswith(photo + "\t") and len(captured.out.splitlines()) == 1
  (error,) = captured.err.strip().splitlines()
  assert "broken.jpg" in error and "error" in error
  # Later calibrations keep the index's target, on the validation photos it stored.
  capsys.readouterr()
  assert main(["calibrate", "--checkpoint", workdir, "--index", str(tmp_path / "index")]) == 0
  assert "calibrated on the validation photos stored with the index" in capsys.readouterr().out
  again = json.loads((tmp_path / "index" / "manifest.json").read_text())
  assert again["calibration"]["target_specificity"] == 0.9
  assert again["eta"] == manifest["eta"]  # the same photos, the same η


def test_calibrate_without_a_target_takes_the_indexs_then_the_models(trained, index_dir):
  # One rule everywhere (`target_specificity_for`): the target given, else that of the
  # index's last calibration, else the model config's (tiny_cpu: 0.95, not the 0.99 that
  # `calibrate` once assumed).
  index = CentroidIndex.load(index_dir / "index")
  validation = source_for(trained.config.data, "val", trained.label_map)
  assert "calibration" not in index.metadata
  uncalibrated = Recognizer(trained, index, eta=-math.inf)
  result = calibrate(uncalibrated, validation)
  assert result["target_specificity"] == trained.config.calibration.target_specificity == 0.95
  calibrated_before = index.with_metadata(calibration={"target_specificity": 0.9})
  result = calibrate(Recognizer(trained, calibrated_before, eta=-math.inf), validation)
  assert result["target_specificity"] == 0.9 and result["specificity"] >= 0.9
  assert calibrate(uncalibrated, validation, 0.8)["target_specificity"] == 0.8
