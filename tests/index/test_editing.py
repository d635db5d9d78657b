"""Adding a landmark to a saved index without retraining, and removing it again."""

import csv
import json

import pytest

from landmark_jax.cleaning.config import CleaningConfig
from landmark_jax.cli import main
from landmark_jax.data import GLDv2Source, ImageFolderSource
from landmark_jax.data.demo_dataset import demo_dataset
from landmark_jax.index import CentroidIndex
from landmark_jax.index.editing import remove_landmarks
from landmark_jax.recognize import PhotoEmbedder, Recognizer
from landmark_jax.stages.new_landmarks import add_landmarks


@pytest.fixture(scope="module")
def sacre_coeur(landmarks_mini, tmp_path_factory):
  """A new landmark from real photos: 7 to add, 3 held out for searching."""
  rows = [r for r in csv.DictReader(open(landmarks_mini / "train.csv")) if r["landmark_id"] == "2"]
  paths = [
    landmarks_mini / "images" / r["id"][0] / r["id"][1] / r["id"][2] / f"{r['id']}.jpg"
    for r in rows
  ]
  folder = tmp_path_factory.mktemp("new") / "sacre_coeur"
  folder.mkdir()
  for path in paths[:7]:
    (folder / path.name).symlink_to(path)
  return ImageFolderSource(folder.parent), [str(p) for p in paths[7:]]


def answers(recognizer, photos, ignore=("sacre_coeur",), candidates=4):
  """Answer, score and the first candidates among the original landmarks (a new landmark
  may rightly take one of the top-5 places; it must change nothing else)."""
  return [
    (
      p.landmark_id,
      round(p.score, 6),
      tuple(
        (c.landmark_id, round(c.score, 6)) for c in p.candidates if c.landmark_id not in ignore
      )[:candidates],
    )
    for p in recognizer.recognize(photos, use_exif=False)
  ]


def test_add_search_keep_and_remove(trained, index_dir, sacre_coeur, tmp_path):
  original = CentroidIndex.load(index_dir / "index")
  original.save(tmp_path / "index")
  source, held_out = sacre_coeur
  existing_queries = list(GLDv2Source(demo_dataset(), csv="test.csv").paths[:48:3])
  before = answers(Recognizer(trained, original, eta=0.5), existing_queries)

  added = add_landmarks(
    CentroidIndex.load(tmp_path / "index"),
    PhotoEmbedder(trained).embed_source,
    source,
    CleaningConfig(distance_threshold=0.5),
  ).index
  added.save(tmp_path / "index")
  loaded = CentroidIndex.load(tmp_path / "index")
  assert len(loaded) > len(original)
  assert loaded.label_map.landmark_ids[:-1] == original.label_map.landmark_ids  # appended
  assert loaded.label_map.landmark_ids[-1] == "sacre_coeur"
  edit = json.loads((tmp_path / "index" / "manifest.json").read_text())["edits"][-1]
  assert edit["op"] == "add" and edit["landmarks"] == ["sacre_coeur"]

  recognizer = Recognizer(trained, loaded, eta=0.5)
  found = recognizer.recognize(held_out, use_exif=False)
  assert [p.landmark_id for p in found] == ["sacre_coeur"] * 3
  # The existing landmarks' answers on a fixed set of their own photos are unchanged.
  assert answers(recognizer, existing_queries) == before

  with pytest.raises(ValueError, match=r"already has landmark\(s\) sacre_coeur"):
    add_landmarks(loaded, PhotoEmbedder(trained).embed_source, source)

  removed = remove_landmarks(loaded, ["sacre_coeur"])
  removed.save(tmp_path / "index")
  restored = Recognizer(trained, CentroidIndex.load(tmp_path / "index"), eta=0.5)
  assert answers(restored, existing_queries, candidates=5) == answers(
    Recognizer(trained, original, eta=0.5), existing_queries, candidates=5
  )  # all of them
  assert all(p.landmark_id != "sacre_coeur" for p in restored.recognize(held_out, use_exif=False))
  with pytest.raises(ValueError, match="no landmark 'nowhere'"):
    remove_landmarks(removed, ["nowhere"])


def test_cli_add_and_remove(tiny_trained, index_dir, sacre_coeur, tmp_path, capsys):
  CentroidIndex.load(index_dir / "index").save(tmp_path / "index")
  source, _ = sacre_coeur
  folder = str(source.paths[0]).rsplit("/", 2)[0]
  assert (
    main(
      [
        "add-landmarks",
        "--checkpoint",
        str(tiny_trained[0]),
        "--index",
        str(tmp_path / "index"),
        "--folder",
        folder,
        "distance_threshold=0.5",
      ]
    )
    == 0
  )
  assert "  sacre_coeur: 7 photos" in capsys.readouterr().out
  assert main(["remove-landmarks", "--index", str(tmp_path / "index"), "sacre_coeur"]) == 0
  manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
  assert [e["op"] for e in manifest["edits"]] == ["add", "remove"]
