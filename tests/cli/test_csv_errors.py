"""A spreadsheet's landmarks CSV as `landmark-jax update-landmarks` meets it (issue 33,
finding 9): each mistake is one line on stderr naming the line, status 2, and the index
unchanged; Excel's BOM is read as the same file without it; formula names are stored quoted
and read back as they were; escape sequences in names never reach the terminal."""

import csv

import pytest

from landmark_jax.index import CentroidIndex
from landmark_jax.index.landmarks import LandmarkInfo
from landmark_jax.recognize.decision import Candidate, Prediction
from tests.helpers import run_in_process
from tests.index.test_landmark_names import DEMO, demo_index

HEADER = b"landmark_id,name,latitude,longitude\n"
# (the CSV after its header, what the error line says)
MISTAKES = {
  "cp1252": (
    "1,Caf\xe9,45.0,12.0\n".encode("cp1252"),
    "line 2: not UTF-8 (byte 0xE9 at offset 41)",
  ),
  "latitude abc": (b"1,coffee,abc,12.0\n", "line 2: latitude 'abc' is not a number"),
  "latitude NaN": (b"0,astronaut,48.0,2.0\n1,coffee,NaN,12.0\n", "line 3: latitude 'NaN'"),
  "longitude inf": (b"1,coffee,45.0,inf\n", "line 2: longitude 'inf' is not a number"),
  "200k-character name": (b"1," + b"x" * 200_000 + b",45.0,12.0\n", "line 2: a name of 200,000"),
  "unterminated quote": (
    b'0,astronaut,48.0,2.0\n1,"coffee,45.0,12.0\n2,camera,40.0,-3.0\n',
    "line 3: a quote opened in this row is never closed",
  ),
  "quote closed two lines later": (
    b'1,"coffee,45.0,12.0\n2,camera,40.0,-3.0\n3,rocket",28.5,-80.6\n',
    "line 2: a line break in the name cell",
  ),
}


@pytest.fixture
def index(tmp_path):
  return demo_index().save(tmp_path / "index")


def update(index, csv_path, capsys):
  return run_in_process(["update-landmarks", "--index", index, "--landmarks-csv", csv_path], capsys)


@pytest.mark.parametrize("mistake", MISTAKES)
def test_a_spreadsheet_mistake_is_one_line_and_status_2(index, tmp_path, capsys, mistake):
  body, message = MISTAKES[mistake]
  (tmp_path / "landmarks.csv").write_bytes(HEADER + body)
  status, out, err = update(index, tmp_path / "landmarks.csv", capsys)
  assert (status, len(err)) == (2, 1), err
  assert err[0].startswith(f"landmark-jax update-landmarks: error: {tmp_path / 'landmarks.csv'}")
  assert message in err[0]
  assert CentroidIndex.load(index).landmarks == DEMO  # nothing applied


def test_excels_bom_updates_the_index_as_the_same_file_without_it(tmp_path, capsys):
  text = "landmark_id,name,latitude,longitude\n1,Café Florian,45.43391,12.33817\n"
  stored = {}
  for kind, encoding in (("plain", "utf-8"), ("excel", "utf-8-sig")):
    index = demo_index().save(tmp_path / kind / "index")
    (tmp_path / kind / "landmarks.csv").write_bytes(text.encode(encoding))
    status, _, err = update(index, tmp_path / kind / "landmarks.csv", capsys)
    assert (status, err) == (0, [])
    stored[kind] = CentroidIndex.load(index).landmarks
  expected = {**DEMO, 1: LandmarkInfo("Café Florian", 45.43391, 12.33817)}
  assert stored["excel"] == stored["plain"] == expected


def test_formula_names_are_stored_quoted_and_read_back(index, tmp_path, capsys):
  names = {
    0: '=HYPERLINK("http://evil.example","x")',
    1: "@SUM(A1)",
    2: "-x",
    3: "+1+cmd|'/C calc'!A0",
  }
  with open(tmp_path / "landmarks.csv", "w", newline="") as f:
    csv.writer(f).writerows([["landmark_id", "name"], *names.items()])
  status, _, err = update(index, tmp_path / "landmarks.csv", capsys)
  assert (status, err) == (0, [])
  with open(index / "landmarks.csv", newline="", encoding="utf-8") as f:
    cells = {row[0]: row[1] for row in list(csv.reader(f))[1:]}
  assert cells == {str(i): "'" + name for i, name in names.items()}
  assert {i: info.name for i, info in CentroidIndex.load(index).landmarks.items()} == names


def test_escape_sequences_in_names_never_reach_the_terminal(index, tmp_path, capsys):
  evil = "astro\x1b]0;pwned\x07\x1b[2Jnaut"
  (tmp_path / "landmarks.csv").write_text(f"landmark_id,name\n0,{evil}\n")
  status, out, err = update(index, tmp_path / "landmarks.csv", capsys)
  assert status == 0 and out and not any("\x1b" in line or "\x07" in line for line in out + err)
  assert r"astro\x1b]0;pwned\x07\x1b[2Jnaut" in "\n".join(out)
  assert CentroidIndex.load(index).landmarks[0].name == evil  # stored as given, shown escaped

  # `recognize` prints a prediction's name and candidates through the same escaping.
  from landmark_jax.cli.recognize import _report

  candidates = (Candidate("0", 0.9, evil), Candidate("1", 0.5, "cof\x9bfee"))
  prediction = Prediction("0", 0.9, candidates, name=evil)
  _report("photo\x1b[A.jpg", prediction, as_json=False)
  printed = capsys.readouterr().out
  assert "\x1b" not in printed and "\x9b" not in printed and "\x07" not in printed
  assert printed == (
    "photo\\x1b[A.jpg\tastro\\x1b]0;pwned\\x07\\x1b[2Jnaut (0)\t0.900\t"
    "[astro\\x1b]0;pwned\\x07\\x1b[2Jnaut (0) 0.900, cof\\x9bfee (1) 0.500]\n"
  )


def test_excels_unicode_text_is_named_as_utf16(index, tmp_path, capsys):
  """Excel's "Unicode Text" is UTF-16 with a BOM: the advice names that, not cp1252."""
  text = "landmark_id,name,latitude,longitude\n1,Café,45.0,12.0\n"
  (tmp_path / "landmarks.csv").write_bytes(text.encode("utf-16"))
  status, _, err = update(index, tmp_path / "landmarks.csv", capsys)
  assert (status, len(err)) == (2, 1), err
  assert "UTF-16 text" in err[0] and "iconv -f utf-16 -t utf-8" in err[0]
  assert CentroidIndex.load(index).landmarks == DEMO
