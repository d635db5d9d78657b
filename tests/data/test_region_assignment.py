"""A landmarks CSV → curriculum regions (`assign_regions`), and `landmark-jax regions`."""

import re

import pytest

from landmark_jax.cli.main import main
from landmark_jax.data.labels import REGIONS, LabelMap
from landmark_jax.data.region_assignment import RegionAssignment, assign_regions, regions_csv_text
from landmark_jax.data.tables import read_landmark_table
from landmark_jax.errors import DataError, MissingFileError, UsageError
from tests.data.test_regions import EU, FE, ME, TEN_CITIES


def _write(tmp_path, text, name="landmarks.csv"):
  path = tmp_path / name
  path.write_text(text)
  return path


def _cities_csv(tmp_path):
  """The ten cities, ids 100..109: some rows with both columns, some with one only."""
  lines = ["landmark_id,name,latitude,longitude,country_code"]
  for i, (place, lat, lon, code, _) in enumerate(TEN_CITIES):
    if i % 3 == 0:
      lines.append(f"{100 + i},{place},{lat},{lon},")  # coordinates only
    elif i % 3 == 1:
      lines.append(f"{100 + i},{place},,,{code.lower()}")  # country only
    else:
      lines.append(f"{100 + i},{place},{lat},{lon},{code}")
  return _write(tmp_path, "\n".join(lines) + "\n")


def test_the_command_writes_a_csv_that_training_reads(tmp_path, capsys):
  out = tmp_path / "regions.csv"
  assert main(["regions", "--landmarks-csv", str(_cities_csv(tmp_path)), "--out", str(out)]) == 0
  stdout = capsys.readouterr().out
  assert "10 landmarks (6 by country, 4 by coordinates)" in stdout
  # Counts per region, by hand: Paris, Moscow | New York, Sydney, Honolulu | Cairo, Dubai,
  # Istanbul | Tokyo, Beijing.
  assert re.search(r"europe_russia\s+2\b", stdout) and re.search(r"far_east\s+2\b", stdout)
  assert re.search(r"north_america_oceania\s+3\b", stdout)
  assert re.search(r"middle_east_north_africa\s+3\b", stdout)

  regions = read_landmark_table(out, "region")
  assert regions == {100 + i: region for i, (*_, region) in enumerate(TEN_CITIES)}
  label_map = LabelMap.from_ids(list(regions), regions)
  assert label_map.stage_sizes == (2, 5, 8, 10)
  assert label_map.landmark_ids == (100, 101, 102, 103, 109, 104, 105, 108, 106, 107)
  assert out.read_text().splitlines()[0] == "landmark_id,region"
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_the_command_on_the_demo_landmarks_csv(tmp_path, capsys):
  # The demo writes landmarks.csv as landmark_id,name,region,latitude,longitude; the
  # command reads its coordinates (and ignores its region column).
  from landmark_jax.data.demo_dataset import LANDMARKS

  rows = [
    f"{i},{name},{region},{lat},{lon}" for i, (name, _, region, lat, lon) in enumerate(LANDMARKS)
  ]
  source = _write(tmp_path, "landmark_id,name,region,latitude,longitude\n" + "\n".join(rows))
  out = tmp_path / "regions.csv"
  assert main(["regions", "--landmarks-csv", str(source), "--out", str(out)]) == 0
  assert read_landmark_table(out, "region") == read_landmark_table(source, "region")
  assert "8 landmarks (8 by coordinates)" in capsys.readouterr().out


def test_by_country_or_coordinates_and_disagreements(tmp_path, capsys):
  source = _write(
    tmp_path, "landmark_id,lat,lng,country\nceuta,35.8894,-5.3213,ES\ntokyo,35.6762,139.6503,JP\n"
  )
  by_country = assign_regions(source, by="country")
  assert [(a.landmark_id, a.region, a.source) for a in by_country] == [
    ("ceuta", EU, "country"),
    ("tokyo", FE, "country"),
  ]
  assert [a.disagrees for a in by_country] == [False, False]  # coordinates not consulted
  by_coordinates = assign_regions(source, by="coordinates")
  assert [a.region for a in by_coordinates] == [ME, FE]
  auto = assign_regions(source)
  assert [(a.region, a.coordinates_region, a.disagrees) for a in auto] == [
    (EU, ME, True),
    (FE, FE, False),
  ]
  out = tmp_path / "r.csv"
  assert main(["regions", "--landmarks-csv", str(source), "--out", str(out)]) == 0
  assert (
    "1 landmark(s) have coordinates in another region than their country code"
    in capsys.readouterr().out
  )
  assert out.read_text() == "landmark_id,region\nceuta,europe_russia\ntokyo,far_east\n"


def test_rows_without_a_location_need_a_default_region(tmp_path):
  source = _write(tmp_path, "landmark_id,latitude,longitude\n1,48.8566,2.3522\n2,,\n3,,\n")
  with pytest.raises(
    DataError,
    match=r"2 landmark\(s\) without coordinates: 2 \(line 3\), "
    r"3 \(line 4\)",
  ):
    assign_regions(source)
  placed = assign_regions(source, default_region=FE)
  assert [(a.landmark_id, a.region, a.source) for a in placed] == [
    ("1", EU, "coordinates"),
    ("2", FE, "default"),
    ("3", FE, "default"),
  ]
  assert regions_csv_text(placed) == "landmark_id,region\n1,europe_russia\n2,far_east\n3,far_east\n"


def test_assign_regions_refuses_unknown_options(tmp_path):
  source = _write(tmp_path, "landmark_id,country\n1,FR\n")
  with pytest.raises(UsageError):
    assign_regions(source, by="city")
  with pytest.raises(UsageError):
    assign_regions(source, default_region="south_america")
  with pytest.raises(MissingFileError):
    assign_regions(tmp_path / "absent.csv")
  assert RegionAssignment("1", EU, "country", 2).disagrees is False


# The one-line errors: (CSV text or None for a missing file, extra flags, what the line names)
ERRORS = {
  "missing file": (None, [], "landmarks CSV not found"),
  "no location columns": (
    "landmark_id,name\n1,Louvre\n",
    [],
    "no coordinate columns (latitude,longitude) and no country column (country_code or country)",
  ),
  "no id column": ("id,country\n1,FR\n", [], "no landmark_id column"),
  "empty id": ("landmark_id,country\n1,FR\n,JP\n", [], "line 3: empty landmark_id"),
  "only latitude column": ("landmark_id,latitude\n1,48.8\n", [], "only one of latitude"),
  "latitude out of range": (
    "landmark_id,latitude,longitude\n1,48.8,2.3\nlouvre,95.0,2.3\n",
    [],
    "line 3 (landmark louvre): latitude 95.0 is outside -90..90",
  ),
  "latitude not a number": (
    "landmark_id,latitude,longitude\n7,north,2.3\n",
    [],
    "line 2 (landmark 7): latitude 'north' is not a number",
  ),
  "unknown country": (
    "landmark_id,country_code\n1,FR\n2,FR\n3,Atlantis\n",
    [],
    "line 4 (landmark 3): unknown country code 'Atlantis'",
  ),
  "duplicate id": (
    "landmark_id,country_code\n5,FR\n6,JP\n05,US\n",
    [],
    "landmark 05 appears twice (lines 2 and 4)",
  ),
  "row without location": (
    "landmark_id,latitude,longitude,country_code\n1,,,FR\n2,,,\n",
    [],
    "1 landmark(s) without coordinates or a country code: 2 (line 3)",
  ),
  "--by country without the column": (
    "landmark_id,latitude,longitude\n1,1,1\n",
    ["--by", "country"],
    "no country column",
  ),
  "no rows": ("landmark_id,country_code\n", [], "lists no landmarks"),
  "output over the input": (
    "landmark_id,country_code\n1,FR\n",
    ["SAME"],
    "is the landmarks CSV itself",
  ),
  "output folder missing": (
    "landmark_id,country_code\n1,FR\n",
    ["MISSING_DIR"],
    "output folder not found",
  ),
  "unknown default region": (
    "landmark_id,country_code\n1,FR\n",
    ["--default-region", "south_america"],
    "south_america",
  ),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_mistakes_are_one_line_and_status_2(name, tmp_path, capsys):
  text, flags, needle = ERRORS[name]
  source = tmp_path / "landmarks.csv"
  if text is not None:
    source.write_text(text)
  out = tmp_path / "regions.csv"
  if flags == ["SAME"]:
    flags, out = [], source
  elif flags == ["MISSING_DIR"]:
    flags, out = [], tmp_path / "no" / "regions.csv"
  argv = ["regions", "--landmarks-csv", str(source), "--out", str(out), *flags]
  try:
    status = main(argv)
  except SystemExit as exit:  # argparse's own refusals (an invalid choice)
    status = exit.code
  err = capsys.readouterr().err.splitlines()
  assert status == 2
  assert len(err) == 1 and "error:" in err[0] and needle in err[0], err
  if name != "output over the input":
    assert not out.exists()


def test_the_command_line_lists_the_training_regions():
  from landmark_jax.cli import regions as cli_regions

  assert cli_regions.REGIONS == REGIONS
