"""The inference bundle through the library: what `export_bundle` writes, that a
`Recognizer` loaded from it answers bit for bit as the workdir and index it came from, that
every damaged, missing or extra file is refused by name, and that the `jax.export` program
runs with JAX alone."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import safetensors.numpy
from flax import traverse_util

from landmark_jax.bundle import BundleError, export_bundle, load_bundle
from landmark_jax.data import source_for
from landmark_jax.index import CentroidIndex
from landmark_jax.index.provenance import OtherModelError
from landmark_jax.recognize import Recognizer
from landmark_jax.recognize.photos import decode_photo
from tests.bundle.helpers import files_under, flip_byte, sha256

INDEX_FILES = {
  "centroids.npy",
  "labels.npy",
  "cluster_sizes.npy",
  "label_map.json",
  "landmarks.csv",
  "manifest.json",
}


def test_the_bundle_holds_the_weights_config_label_map_and_index_under_one_manifest(
  bundle, trained, index_dir
):
  index = index_dir / "index"
  manifest = json.loads((bundle / "bundle.json").read_text())
  expected = {"weights.safetensors", "config.json", "label_map.json"}
  expected |= {f"index/{name}" for name in files_under(index)}
  assert files_under(bundle) == expected | {"bundle.json"}
  assert set(manifest["files"]) == expected
  for name, record in manifest["files"].items():  # against hashlib, not the library's code
    assert record == {"bytes": (bundle / name).stat().st_size, "sha256": sha256(bundle / name)}
  for name in files_under(index):  # the index is copied byte for byte
    assert (bundle / "index" / name).read_bytes() == (index / name).read_bytes()
  assert INDEX_FILES <= files_under(index)
  # The weights: every array of the checkpoint under its flattened name, bit for bit.
  weights = safetensors.numpy.load_file(bundle / "weights.safetensors")
  flat = traverse_util.flatten_dict(trained.variables, sep="/")
  assert any(key.startswith("params/backbone/") for key in weights)
  assert any(key.startswith("batch_stats/") for key in weights)
  assert weights.keys() == flat.keys()
  for key, value in flat.items():
    assert weights[key].dtype == value.dtype and np.array_equal(weights[key], value), key
  assert manifest["checkpoint"] == CentroidIndex.load(index).metadata["checkpoint"]
  assert manifest["checkpoint"] == trained.checkpoint_id
  assert manifest["step"] == trained.step
  assert manifest["model_id"].startswith("sha256:")


def test_a_bundle_answers_bit_for_bit_as_its_workdir_and_index(
  bundle, tiny_trained, trained, index_dir
):
  from_bundle = Recognizer.load(bundle)
  from_workdir = Recognizer.load(tiny_trained[0], index_dir / "index")
  model, bundle_index = load_bundle(bundle)
  # The bundle's model answers to the id its index was built from: no other-model refusal.
  assert model.checkpoint_id == trained.checkpoint_id
  assert model.workdir == bundle and bundle_index == bundle / "index"
  source = source_for(trained.config.data, "test", trained.label_map)
  ours, theirs = (r.photos.embed_source(source).embeddings for r in (from_bundle, from_workdir))
  assert len(ours) == len(source.paths) > 0
  assert ours.tobytes() == theirs.tobytes()
  paths = [str(path) for path in source.paths]
  answers = [list(r.recognize_files(paths)) for r in (from_bundle, from_workdir)]
  assert [(p, a.to_dict()) for p, a in answers[0]] == [(p, a.to_dict()) for p, a in answers[1]]
  scores = [[a.score for _, a in answer] for answer in answers]
  assert np.asarray(scores[0]).tobytes() == np.asarray(scores[1]).tobytes()


def _flip_model_id(bundle: pathlib.Path) -> None:
  """One byte of the manifest changed, the JSON still valid: only its digest can tell."""
  text = (bundle / "bundle.json").read_text()
  flip_byte(
    bundle / "bundle.json", text.index('"model_id": "sha256:') + len('"model_id": "sha256:')
  )


@pytest.mark.parametrize(
  "name, damage, message",
  [
    ("weights.safetensors", flip_byte, "damaged: checksum mismatch"),
    ("index/centroids.npy", flip_byte, "damaged: checksum mismatch"),
    ("index/labels.npy", pathlib.Path.unlink, "bundle file missing"),
    ("config.json", lambda p: p.write_text(p.read_text() + " "), "truncated or extended"),
    ("bundle.json", lambda p: _flip_model_id(p.parent), "damaged or edited after"),
    ("notes.txt", lambda p: p.write_text("mine"), "not listed in"),
    ("index/extra.npy", lambda p: np.save(p, np.zeros(3)), "not listed in"),
  ],
)
def test_a_damaged_missing_or_extra_file_is_refused_by_name(bundle_copy, name, damage, message):
  damage(bundle_copy / name)
  for load in (load_bundle, Recognizer.load):
    with pytest.raises(BundleError, match=message) as refused:
      load(bundle_copy)
    assert str(bundle_copy / name) in str(refused.value)


def test_a_workdir_given_as_a_bundle_is_told_apart(tiny_trained):
  with pytest.raises(BundleError, match="is a training workdir, not a bundle"):
    Recognizer.load(tiny_trained[0])


def test_export_refuses_a_non_empty_folder_and_forces_over_a_bundle_only(
  tiny_trained, index_dir, tmp_path
):
  out = tmp_path / "out"
  out.mkdir()
  (out / "mine.txt").write_text("keep")
  with pytest.raises(BundleError, match="exists and is not empty"):
    export_bundle(tiny_trained[0], index_dir / "index", out)
  assert files_under(out) == {"mine.txt"}
  with pytest.raises(BundleError, match="holds"):  # the bundle would replace its own source
    export_bundle(tiny_trained[0], index_dir / "index", index_dir, force=True)
  # --force replaces a bundle only: a folder of something else is never deleted.
  with pytest.raises(BundleError, match="is not a bundle"):
    export_bundle(tiny_trained[0], index_dir / "index", out, force=True)
  assert files_under(out) == {"mine.txt"}
  (out / "mine.txt").unlink()
  export_bundle(tiny_trained[0], index_dir / "index", out)
  (out / "extra.txt").write_text("stale")
  export_bundle(tiny_trained[0], index_dir / "index", out, force=True)
  assert "extra.txt" not in files_under(out) and (out / "bundle.json").is_file()
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
  load_bundle(out)


def test_export_refuses_another_models_index(tiny_trained, index_dir, tmp_path):
  other = tmp_path / "other-index"
  index = CentroidIndex.load(index_dir / "index")
  index.with_metadata(checkpoint="/runs/another/train@7").save(other)
  with pytest.raises(OtherModelError):
    export_bundle(tiny_trained[0], other, tmp_path / "refused")
  assert not (tmp_path / "refused").exists()
  out = export_bundle(tiny_trained[0], other, tmp_path / "allowed", allow_other_model=True).path
  # The user said the two are one model: the bundle's model answers to the index's id.
  assert load_bundle(out)[0].checkpoint_id == "/runs/another/train@7"
  Recognizer.load(out)


BLOCKED_RUNNER = textwrap.dedent(
  """
  import sys
  # Before anything is imported: `import flax` (and the library, and orbax) must fail.
  for name in ("flax", "landmark_jax", "orbax", "orbax.checkpoint"):
      sys.modules[name] = None
  try:
      import flax  # noqa: F401
  except ImportError:
      pass
  else:
      raise SystemExit("flax was importable")
  import jax
  import numpy as np

  program, images, out = sys.argv[1:]
  exported = jax.export.deserialize(bytearray(open(program, "rb").read()))
  pixels = np.load(images)
  np.save(out, np.asarray(exported.call(pixels)))
  np.save(out + ".one.npy", np.asarray(exported.call(pixels[:1])))
  loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("flax", "landmark_jax", "orbax"))
  assert all(sys.modules[m] is None for m in loaded), loaded
  print(exported.platforms)
  """
)


def test_the_jax_export_program_embeds_as_the_library_without_flax(
  tiny_trained, trained, index_dir, tmp_path
):
  bundle = export_bundle(tiny_trained[0], index_dir / "index", tmp_path / "b", jax_export=True)
  record = bundle.manifest["files"]["embed.jax_export"]
  assert record["sha256"] == sha256(bundle.path / "embed.jax_export")
  assert bundle.manifest["jax_export"]["platforms"] == ["cpu", "cuda"]
  source = source_for(trained.config.data, "test", trained.label_map)
  image = trained.config.pipeline.image
  pixels = np.stack([decode_photo(path, image).pixels for path in source.paths[:3]])
  expected = Recognizer.load(bundle.path).photos.embed_arrays(pixels)
  np.save(tmp_path / "images.npy", pixels)
  (tmp_path / "runner.py").write_text(BLOCKED_RUNNER)
  done = subprocess.run(
    [
      sys.executable,
      str(tmp_path / "runner.py"),
      str(bundle.path / "embed.jax_export"),
      str(tmp_path / "images.npy"),
      str(tmp_path / "out.npy"),
    ],
    capture_output=True,
    text=True,
    cwd=tmp_path,  # not the checkout: nothing of the library on the path by accident
    env={**os.environ, "PYTHONPATH": ""},
    timeout=300,
  )
  assert done.returncode == 0, done.stderr[-3000:]
  assert "('cpu', 'cuda')" in done.stdout
  embeddings = np.load(tmp_path / "out.npy")
  assert embeddings.shape == expected.shape and embeddings.dtype == np.float32
  np.testing.assert_allclose(embeddings, expected, atol=1e-5)
  np.testing.assert_allclose(np.load(tmp_path / "out.npy.one.npy"), expected[:1], atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1, atol=1e-5)
