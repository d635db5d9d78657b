"""The inference bundle on the command line: `export`, `recognize --bundle` answering as
`--checkpoint/--index`, one-line refusals, and an index edit on a bundle that keeps its
manifest true (the bundle loads after it, and damage after it is still caught)."""

import json
import shutil
import subprocess
import sys
import time

import httpx
import pytest

from landmark_jax.bundle import BundleError, load_bundle
from landmark_jax.cli.main import main
from landmark_jax.data import source_for
from landmark_jax.index import CentroidIndex
from landmark_jax.recognize import Recognizer
from landmark_jax.serve.reload import read_version
from tests.bundle.helpers import files_under, flip_byte, sha256
from tests.helpers import run_in_process
from tests.serve.conftest import free_port, wait_until_healthy

run = run_in_process


def test_export_then_recognize_with_the_bundle_answers_as_the_workdir(
  tiny_trained, trained, index_dir, tmp_path, capsys
):
  out = tmp_path / "bundle"
  status, lines, _ = run(
    ["export", "--checkpoint", tiny_trained[0], "--index", index_dir / "index", "--out", out],
    capsys,
  )
  assert status == 0 and lines[0].startswith(f"bundle written to {out}")
  assert f"landmark-jax recognize --bundle {out} PHOTO.jpg" in "\n".join(lines)
  assert "embed.jax_export" not in files_under(out)  # only with --jax-export
  photos = [str(p) for p in source_for(trained.config.data, "test", trained.label_map).paths[:6]]
  status, by_bundle, _ = run(["recognize", "--json", "--bundle", out, *photos], capsys)
  assert status == 0 and len(by_bundle) == len(photos)
  status, by_workdir, _ = run(
    [
      "recognize",
      "--json",
      "--checkpoint",
      tiny_trained[0],
      "--index",
      index_dir / "index",
      *photos,
    ],
    capsys,
  )
  assert status == 0
  assert by_bundle == by_workdir  # the same JSON, scores to the last digit
  assert [json.loads(line)["path"] for line in by_bundle] == photos
  # A second export into the same folder is refused in one line; --force replaces it.
  argv = ["export", "--checkpoint", tiny_trained[0], "--index", index_dir / "index", "--out", out]
  status, _, err = run(argv, capsys)
  assert status == 2 and len(err) == 1 and "exists and is not empty" in err[0]
  status, _, _ = run([*argv, "--force"], capsys)
  assert status == 0


@pytest.mark.parametrize(
  "argv, message",
  [
    (["recognize", "photo.jpg"], "give --bundle, or --checkpoint and --index"),
    (["recognize", "--checkpoint", "W", "photo.jpg"], "give --bundle, or --checkpoint and --index"),
    (
      ["recognize", "--bundle", "B", "--index", "I", "photo.jpg"],
      "--bundle holds the model and its index: give it without --checkpoint and --index",
    ),
    (["serve", "--port", "1"], "give --bundle, or --checkpoint and --index"),
    (["calibrate"], "give --bundle, or --checkpoint and --index"),
    (["remove-landmarks", "x"], "give --bundle, or --index"),
    (["update-landmarks", "--landmarks-csv", "x.csv"], "give --bundle, or --index"),
    (
      ["remove-landmarks", "--bundle", "B", "--index", "I", "x"],
      "--bundle holds the model and its index: give it without --index",
    ),
  ],
)
def test_neither_or_both_of_bundle_and_checkpoint_index_is_one_line(argv, message, capsys):
  status, _, err = run(argv, capsys)
  assert status == 2 and len(err) == 1
  assert err[0] == f"landmark-jax {argv[0]}: error: {message}"


def test_a_damaged_bundle_is_one_line_naming_the_file(bundle_copy, capsys):
  flip_byte(bundle_copy / "weights.safetensors")
  status, _, err = run(["recognize", "--bundle", bundle_copy, "photo.jpg"], capsys)
  assert status == 2 and len(err) == 1
  assert f"{bundle_copy / 'weights.safetensors'}: damaged: checksum mismatch" in err[0]


def test_an_edit_of_the_bundles_index_keeps_its_manifest_true(bundle_copy, capsys):
  before = Recognizer.load(bundle_copy).index
  landmark = before.label_map.to_landmark_ids([int(before.labels[0])])[0]
  status, lines, err = run(["remove-landmarks", "--bundle", bundle_copy, landmark], capsys)
  assert status == 0, err
  assert lines[0].startswith(f"removed {landmark}")
  manifest = json.loads((bundle_copy / "bundle.json").read_text())
  # Every record is the file's size and hashlib's sha256 now, the edited index's included.
  for name in files_under(bundle_copy / "index"):
    record = manifest["files"][f"index/{name}"]
    path = bundle_copy / "index" / name
    assert record == {"bytes": path.stat().st_size, "sha256": sha256(path)}
  assert set(manifest["files"]) == files_under(bundle_copy) - {"bundle.json", ".index.lock"}
  after = Recognizer.load(bundle_copy).index
  assert len(after) < len(before)
  assert landmark not in after.label_map.to_landmark_ids(after.labels.tolist())
  # Damage after the edit is caught, in the edited index and in the model's files alike.
  flip_byte(bundle_copy / "index" / "centroids.npy")
  with pytest.raises(BundleError, match="index/centroids.npy: damaged"):
    load_bundle(bundle_copy)
  status, _, err = run(["remove-landmarks", "--bundle", bundle_copy, "nothing"], capsys)
  assert status == 2 and "index/centroids.npy: damaged" in err[0]


def test_an_edit_does_not_bless_a_damaged_weights_file(bundle_copy, tmp_path, capsys):
  flip_byte(bundle_copy / "weights.safetensors")
  table = tmp_path / "landmarks.csv"
  table.write_text("landmark_id,name\n0,renamed\n")
  for argv in (
    ["update-landmarks", "--bundle", bundle_copy, "--landmarks-csv", table],
    ["remove-landmarks", "--bundle", bundle_copy, "0"],
  ):
    before = (bundle_copy / "index" / "manifest.json").read_bytes()
    status, _, err = run(argv, capsys)
    assert status == 2 and len(err) == 1 and "weights.safetensors: damaged" in err[0]
    assert (bundle_copy / "index" / "manifest.json").read_bytes() == before  # not edited
  with pytest.raises(BundleError, match="weights.safetensors: damaged"):
    load_bundle(bundle_copy)


def test_a_served_bundle_takes_an_edit_made_through_it(bundle, tmp_path):
  served = tmp_path / "bundle"
  shutil.copytree(bundle, served)
  port = free_port()
  url = f"http://127.0.0.1:{port}"
  log = open(tmp_path / "server.log", "w")
  server = subprocess.Popen(
    [sys.executable, "-m", "landmark_jax", "serve", "--bundle", str(served), "--port", str(port)]
    + ["--reload-poll-s", "0.2", "--max-batch", "2"],
    stdout=log,
    stderr=subprocess.STDOUT,
  )
  try:
    wait_until_healthy(url, server, tmp_path / "server.log")
    before = httpx.get(f"{url}/v1/info").json()["index"]
    assert before["version"] == read_version(served / "index").short
    removed = str(CentroidIndex.load(served / "index").label_map.landmark_ids[0])
    assert main(["remove-landmarks", "--bundle", str(served), removed]) == 0
    edited = read_version(served / "index").short
    assert edited != before["version"]
    deadline = time.monotonic() + 30
    while (info := httpx.get(f"{url}/v1/info").json()["index"])["version"] != edited:
      assert time.monotonic() < deadline, "the edited bundle index was not served"
      time.sleep(0.2)
    assert info["landmarks"] == before["landmarks"] - 1
  finally:
    server.terminate()
    server.wait(60)
