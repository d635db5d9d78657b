"""docs/your-own-landmarks.md, run as written: a user's own landmarks added to a trained
model's index from a folder and a landmarks CSV, η chosen again in the same command, held-
back photos recognised, η calibrated on the user's own photos, a landmark removed by name.

The commands are read from the page's ```bash blocks, so the page cannot drift from what
is tested. They run in a folder of the user's own, laid out as the page describes, with
real photos from landmarks-mini (two of its landmarks, one with only 2 photos, and its
street photos as non-landmarks), and $DEMO pointing at a checkout's workdir/demo (the
demo's model and calibrated index) elsewhere.
"""

import csv
import glob
import json
import os
import pathlib
import re
import shlex
import shutil
import textwrap

import numpy as np
import pytest

from landmark_jax.cli import main
from landmark_jax.index import CentroidIndex

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "your-own-landmarks.md"
NEW = {"sacre_coeur_paris": (8, 2), "st_pauls_cathedral_london": (2, 0)}  # (added, queries)


def doc_commands() -> list[list[str]]:
  """Every command of the page's bash blocks, as argv lists (continuations joined)."""
  commands = []
  for block in re.findall(r"```bash\n(.*?)```", DOC.read_text(), re.S):
    for line in block.replace("\\\n", " ").splitlines():
      argv = shlex.split(line, comments=True)
      if argv:
        assert argv[0] in ("landmark-jax", "cp"), f"a command the test cannot run: {line}"
        commands.append(argv)
  return commands


def doc_csv() -> str:
  """The landmarks CSV the page shows (the block after "my_landmarks.csv")."""
  block = re.search(r"`my_landmarks\.csv`.*?```\n(.*?)```", DOC.read_text(), re.S).group(1)
  return textwrap.dedent(block).strip() + "\n"


def image(landmarks_mini, image_id) -> pathlib.Path:
  return landmarks_mini / "images" / image_id[0] / image_id[1] / image_id[2] / f"{image_id}.jpg"


@pytest.fixture
def user_folder(tiny_trained, index_dir, landmarks_mini, tmp_path, monkeypatch):
  """The folder the page's commands run in; returns the demo's index."""
  demo = tmp_path / "landmark_jax" / "workdir" / "demo"
  demo.mkdir(parents=True)
  (demo / "train").symlink_to(tiny_trained[0])
  shutil.copytree(index_dir / "index", demo / "index")
  # The demo's index is calibrated on its validation split, which it keeps (`make demo`).
  assert (
    main(["calibrate", "--checkpoint", str(demo / "train"), "--index", str(demo / "index")]) == 0
  )
  names = {
    row["landmark_id"]: row for row in csv.DictReader(open(landmarks_mini / "landmarks.csv"))
  }
  by_name = {row["name"]: row["landmark_id"] for row in names.values()}
  rows = list(csv.DictReader(open(landmarks_mini / "train.csv")))
  with open(tmp_path / "my_landmarks.csv", "w", newline="") as f:
    writer = csv.writer(f)
    writer.writerow(["landmark_id", "name", "region", "latitude", "longitude"])
    for name in NEW:
      row = names[by_name[name]]
      writer.writerow([row[k] for k in ("landmark_id", "name", "region", "latitude", "longitude")])
  assert (tmp_path / "my_landmarks.csv").read_text().replace("\r\n", "\n") == doc_csv()
  for name, (added, queries) in NEW.items():
    photos = [image(landmarks_mini, r["id"]) for r in rows if r["landmark_id"] == by_name[name]]
    assert len(photos) == added + queries
    for folder, chosen in (("my_landmarks", photos[:added]), ("queries", photos[added:])):
      if chosen:
        (tmp_path / folder / name).mkdir(parents=True)
      for photo in chosen:
        (tmp_path / folder / name / photo.name).symlink_to(photo)
  (tmp_path / "street_photos").mkdir()
  for row in csv.DictReader(open(landmarks_mini / "non_landmark.csv")):
    (tmp_path / "street_photos" / f"{row['id']}.jpg").symlink_to(image(landmarks_mini, row["id"]))
  monkeypatch.chdir(tmp_path)
  monkeypatch.setenv("DEMO", str(demo))
  return CentroidIndex.load(demo / "index")


def run(argv, capsys) -> str:
  """One command of the page, as a shell would run it: variables and globs expanded."""
  argv = [os.path.expandvars(arg) for arg in argv]
  argv = [match for arg in argv for match in (sorted(glob.glob(arg)) if "*" in arg else [arg])]
  if argv[0] == "cp":
    assert argv[1] == "-r" and len(argv) == 4
    shutil.copytree(argv[2], argv[3])
    return ""
  assert main(argv[1:]) == 0, capsys.readouterr().err
  return capsys.readouterr().out


def test_the_walkthrough_as_written(user_folder, capsys):
  before = user_folder
  commands = doc_commands()
  assert [c[1] if c[0] == "landmark-jax" else c[0] for c in commands] == [
    "cp",
    "add-landmarks",
    "calibrate",
    "recognize",
    "remove-landmarks",
  ]
  run(commands.pop(0), capsys)  # a copy of the demo's index, which must stay as it is
  index_dir = pathlib.Path("my_index")
  stored = before.validation.counts()

  # add-landmarks --recalibrate: new landmarks named from the CSV by folder name, the
  # existing landmarks (ids 2 and 3 among them) untouched, the 2-photo landmark kept.
  out = run(commands[0], capsys)
  added = CentroidIndex.load(index_dir)
  for landmark_id, info in before.landmarks.items():
    assert added.landmarks[landmark_id] == info
  for name in NEW:
    info = added.landmarks[name]
    assert info.name == name and info.has_location
  assert (
    added.landmarks["sacre_coeur_paris"].latitude,
    added.landmarks["sacre_coeur_paris"].longitude,
  ) == (48.88671, 2.34305)
  assert "matched by name" in out
  labels = added.label_map.to_landmark_ids(added.labels)
  sizes = {name: added.cluster_sizes[[l == name for l in labels]] for name in NEW}
  assert list(sizes["st_pauls_cathedral_london"]) == [2]  # one centroid of both photos
  assert 2 <= sizes["sacre_coeur_paris"].sum() <= 6  # 8 photos, ⌊8/4⌋ = 2 held back
  edit = added.metadata["edits"][-1]
  assert edit["held_back"] == 2 and sorted(edit["landmarks"]) == sorted(NEW)
  calibration = added.metadata["calibration"]
  assert (calibration["landmark_images"], calibration["non_landmark_images"]) == (
    stored[0] + 2,
    stored[1],
  )
  assert added.validation.counts() == (stored[0] + 2, stored[1])
  held = [
    i
    for i, l in zip(added.validation.ids, added.validation.landmark_ids)
    if l == "sacre_coeur_paris"
  ]
  assert len(held) == 2 and all(i.startswith("sacre_coeur_paris/") for i in held)
  assert added.metadata["eta"] == calibration["eta"]

  # calibrate on the user's street photos: they replace the stored non-landmark photos, the
  # landmark photos stay, and η is what a hand computation gives from the stored embeddings
  # and the centroids.
  run(commands[1], capsys)
  calibrated = CentroidIndex.load(index_dir)
  validation = calibrated.validation
  streets = len(list(pathlib.Path("street_photos").iterdir()))
  assert validation.counts() == (stored[0] + 2, streets)
  best = (
    (validation.embeddings.astype(np.float64) @ calibrated.centroids.T.astype(np.float64))
    .max(1)
    .astype(np.float32)
  )
  street = np.sort(best[validation.is_non_landmark])
  needed = int(np.ceil(0.95 * streets))
  # η alone; the manifest's `eta` is the one chosen with ρ when the calibration chose a ρ.
  rho = calibrated.metadata.get("reference_threshold")
  alone = calibrated.metadata["eta" if rho is None else "eta_without_references"]
  assert alone == float(np.nextafter(street[needed - 1], np.float32(2)))
  assert (street < alone).mean() >= 0.95

  # recognize: the photos kept aside find their landmark first, and each answer is the
  # threshold rule applied to the best candidate: η, and when the calibration chose one, ρ
  # on the similarity to that landmark's reference photos (with the η chosen alongside).
  eta_used = calibrated.metadata["eta"]
  lines = [json.loads(line) for line in run(commands[2], capsys).splitlines()]
  assert len(lines) == NEW["sacre_coeur_paris"][1]
  for line in lines:
    assert line["candidates"][0]["landmark_id"] == "sacre_coeur_paris", line
    clears = np.float32(line["score"]) >= np.float32(eta_used)
    near = rho is None or np.float32(line["reference_similarity"]) >= np.float32(rho)
    accepted = clears and near
    assert line["landmark_id"] == ("sacre_coeur_paris" if accepted else None), line
    assert line["reason"] == (
      None if accepted else "below_threshold" if not clears else "far_from_references"
    ), line

  # remove-landmarks by name: that landmark goes, every other keeps its metadata.
  run(commands[3], capsys)
  removed = CentroidIndex.load(index_dir)
  present = set(removed.label_map.to_landmark_ids(np.unique(removed.labels)))
  assert "st_pauls_cathedral_london" not in present and "sacre_coeur_paris" in present
  assert "st_pauls_cathedral_london" not in removed.landmarks
  for landmark_id, info in before.landmarks.items():
    assert removed.landmarks[landmark_id] == info
  demo = CentroidIndex.load(os.path.expandvars("$DEMO/index"))  # untouched
  assert len(demo) == len(before) and demo.metadata == before.metadata
