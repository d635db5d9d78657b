"""An index built from another model's embeddings is refused by every command that scores
photos against it with a model (a `Recognizer.load` or a locked edit), one line and status
2, unless --allow-other-model (`allow_other_model=True`) says the two are the same model."""

import pytest

from landmark_jax.cli.main import main
from landmark_jax.data import GLDv2Source
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.index.provenance import OtherModelError, check_same_model
from landmark_jax.recognize import Recognizer
from tests.eval.test_one_eta import photo_folder, validation_where_rho_pays
from tests.index.test_references import hand_index
from tests.serve.conftest import free_port

# Not test_references' other model: its warning is said once per pair in a process.
OTHER = "/runs/elsewhere/train@9"


def test_the_check_compares_folder_name_and_step():
  check_same_model("/home/a/train@340", "/mnt/copy/train@340")  # moved: the same model
  check_same_model(None, "/home/a/train@340")  # an index that does not say: nothing to tell
  check_same_model(OTHER, "/home/a/train@340", allow_other_model=True)
  # A demo's two rounds: train folders both, at different steps.
  with pytest.raises(OtherModelError, match="index idx was built from the embeddings of /a/"):
    check_same_model("/a/round1/train@343", "/a/train@340", index="idx")


@pytest.fixture
def other_index(tmp_path):
  path = tmp_path / "index"
  index = hand_index().with_metadata(checkpoint=OTHER)
  index.with_validation(validation_where_rho_pays()).save(path)
  return path


def test_recognizer_load_refuses_another_models_index_unless_allowed(trained, other_index):
  with pytest.raises(OtherModelError, match=f"{OTHER}, and this model is {trained.checkpoint_id}"):
    Recognizer.load(trained.workdir, other_index)
  assert Recognizer.load(trained.workdir, other_index, allow_other_model=True).index.dim == 64


def test_every_command_refuses_it_in_one_line_unless_allowed(
  trained, other_index, tmp_path, capsys
):
  photo = str(GLDv2Source(demo_dataset(), csv="test.csv").paths[0])
  both = ["--checkpoint", str(trained.workdir), "--index", str(other_index)]
  folder = str(photo_folder(tmp_path / "photos"))
  commands = {
    "recognize": ["recognize", *both, photo],
    "calibrate": ["calibrate", *both, "--target-specificity", "0.8"],
    "evaluate": ["evaluate", *both, "--out", str(tmp_path / "r"), "--folder", folder],
    "add-landmarks": ["add-landmarks", *both, "--folder", folder],
    "serve": ["serve", *both, "--port", str(free_port())],
  }
  for name, argv in commands.items():
    assert main(argv) == 2, name
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"landmark-jax {name}: error: the index "), err
    assert f"built from the embeddings of {OTHER}" in err[0] and "--allow-other-model" in err[0]
  # Allowed: the commands that answer at once run to the end.
  assert main([*commands["recognize"], "--allow-other-model"]) == 0
  assert main([*commands["calibrate"], "--allow-other-model"]) == 0
