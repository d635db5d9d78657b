"""docs/train-on-your-photos.md, run as written: a plain folder of `<landmark>/*.jpg` and a
folder of street photos to a recognizer with `landmark-jax fit`, the table and the commands
that use it printed, a second run reusing every step, another setting refused, and the
page's `recognize` command and Python lines answering for a photo kept aside.

The commands are read from the page's ```bash blocks (and its ```python block), so the page
cannot drift from what is tested. The photos are landmarks-mini's (real JPEGs: its six
landmarks by name, its street photos as non-landmarks)."""

import csv
import json
import pathlib
import re
import shlex
import shutil

import pytest

from landmark_jax.cli import main

pytestmark = pytest.mark.slow  # trains two rounds of the tiny model

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "train-on-your-photos.md"


def doc_blocks(kind: str) -> list[str]:
  return re.findall(rf"```{kind}\n(.*?)```", DOC.read_text(), re.S)


def doc_commands() -> list[list[str]]:
  commands = []
  for block in doc_blocks("bash"):
    for line in block.replace("\\\n", " ").splitlines():
      argv = shlex.split(line, comments=True)
      if argv:
        assert argv[0] == "landmark-jax", f"a command the test cannot run: {line}"
        commands.append(argv[1:])
  return commands


def image(root, image_id) -> pathlib.Path:
  return root / "images" / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"


@pytest.fixture
def user_folder(landmarks_mini, demo_cache, tmp_path, monkeypatch):
  """The page's layout, made from landmarks-mini; the test runs from this folder."""
  names = {
    r["landmark_id"]: r["name"] for r in csv.DictReader(open(landmarks_mini / "landmarks.csv"))
  }
  rows = list(csv.DictReader(open(landmarks_mini / "train.csv")))
  kept_aside = [r for r in rows if names[r["landmark_id"]] == "sacre_coeur_paris"][-1]
  for row in rows:
    if row is not kept_aside:
      folder = tmp_path / "my_photos" / names[row["landmark_id"]]
      folder.mkdir(parents=True, exist_ok=True)
      shutil.copy(image(landmarks_mini, row["id"]), folder / f"{row['id']}.jpg")
  shutil.copy(image(landmarks_mini, kept_aside["id"]), tmp_path / "new_photo.jpg")
  (tmp_path / "street_photos").mkdir()
  for row in csv.DictReader(open(landmarks_mini / "non_landmark.csv")):
    shutil.copy(image(landmarks_mini, row["id"]), tmp_path / "street_photos" / f"{row['id']}.jpg")
  # The counts the page's tree shows are the folder's.
  for name, count in re.findall(r"^  (\w+)/\s+(\d+) photos", DOC.read_text(), re.M):
    assert len(list((tmp_path / "my_photos" / name).iterdir())) == int(count), name
  assert len(list((tmp_path / "street_photos").iterdir())) == 29
  monkeypatch.chdir(tmp_path)
  return tmp_path


def test_the_walkthrough_runs_as_written(user_folder, capsys):
  fit, recognize, serve = doc_commands()
  assert fit[0] == "fit" and recognize[0] == "recognize" and serve[0] == "serve"
  # The page's command with a short training budget: the test is about the steps, not the
  # figures (the page's own budget, 30 epochs, trains 30 steps a round here).
  fit = [*fit, "max_steps=4"]

  assert main(fit) == 0
  out = capsys.readouterr().out
  assert "| all photos |" in out  # the paper's table
  # The split: 20 % of each landmark with 3 or more photos to validation and to test.
  counts = json.loads((user_folder / "my_recognizer" / "split" / "split.json").read_text())[
    "counts"
  ]
  assert counts["val"] == counts["test"] == {"landmark_photos": 5, "non_landmark_photos": 6}
  assert counts["train"] == {"landmark_photos": 15, "non_landmark_photos": 17}
  assert (
    "Not evaluated (fewer than 3 photos): st_pauls_cathedral_london, united_states_capitol" in out
  )
  # It ends with the page's two commands, for this workdir.
  printed = [line.strip() for line in out.splitlines()[-2:]]
  assert printed[0] == shlex.join(["landmark-jax", *recognize]).replace(
    " --json new_photo.jpg", " PHOTO.jpg"
  )
  assert printed[1] == shlex.join(["landmark-jax", *serve])

  # A second run reuses every step but the evaluation (two rounds of train, embed, clean;
  # index; calibrate).
  assert main(fit) == 0
  out = capsys.readouterr().out
  assert out.count("(done before: reused)") == 8

  # Another setting in the same workdir: refused in one line, naming it and --fresh.
  assert main([*fit[:-1], "max_steps=5"]) == 2
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "max_steps" in err and "--fresh" in err

  assert main(recognize) == 0
  answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert isinstance(answer["landmark_id"], (str, type(None)))
  # Without a landmarks CSV each landmark is named by its folder.
  assert all(c["name"] == c["landmark_id"] for c in answer["candidates"])
  assert {c["landmark_id"] for c in answer["candidates"]} <= {
    p.name for p in (user_folder / "my_photos").iterdir()
  }

  (python,) = doc_blocks("python")
  exec(python, {})
  from_python = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert from_python["score"] == pytest.approx(answer["score"], abs=1e-6)
  assert from_python["landmark_id"] == answer["landmark_id"]
