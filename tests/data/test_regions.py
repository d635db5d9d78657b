"""Curriculum regions from coordinates and country codes, and the boundary data they use.

Every expected region below is written by hand from geography and the boundaries
docs/decisions.md ('Curriculum regions') states (not computed by the code under test);
coordinates are the places' real ones (city centres, WGS84).
"""

import importlib.resources
import pathlib
import re

import pytest

from landmark_jax.data.labels import REGIONS
from landmark_jax.data.region_boundaries import (
  BOXES,
  COUNTRY_REGIONS,
  EURASIA_NORTH_EDGE,
  MIDDLE_EAST_EAST_EDGE,
)
from landmark_jax.data.regions import region_of_country, region_of_location
from landmark_jax.errors import DataError

EU, NA, ME, FE = "europe_russia", "north_america_oceania", "middle_east_north_africa", "far_east"

# (place, latitude, longitude, ISO country code, region)
TEN_CITIES = [
  ("Paris", 48.8566, 2.3522, "FR", EU),
  ("Moscow", 55.7558, 37.6173, "RU", EU),
  ("New York", 40.7128, -74.0060, "US", NA),
  ("Sydney", -33.8688, 151.2093, "AU", NA),
  ("Cairo", 30.0444, 31.2357, "EG", ME),
  ("Dubai", 25.2048, 55.2708, "AE", ME),
  ("Tokyo", 35.6762, 139.6503, "JP", FE),
  ("Beijing", 39.9042, 116.4074, "CN", FE),
  ("Istanbul", 41.0082, 28.9784, "TR", ME),
  ("Honolulu", 21.3069, -157.8583, "US", NA),
]

# Places where a boundary choice decides, or near a boundary line of the module.
BOUNDARY_CASES = [
  # Russia is Europe/Russia to the Pacific; Japan and China are not.
  ("Vladivostok", 43.1155, 131.8855, "RU", EU),
  ("Khabarovsk", 48.4802, 135.0719, "RU", EU),
  ("Novosibirsk", 55.0084, 82.9357, "RU", EU),
  ("Irkutsk", 52.2870, 104.3050, "RU", EU),
  ("Yuzhno-Sakhalinsk", 46.9591, 142.7380, "RU", EU),
  ("Yuzhno-Kurilsk, Kunashir", 44.0306, 145.8556, "RU", EU),
  ("Provideniya, Chukotka (west longitude)", 64.4233, -173.2258, "RU", EU),
  ("Sapporo", 43.0618, 141.3545, "JP", FE),
  ("Rausu, Shiretoko (facing Kunashir)", 44.0206, 145.1897, "JP", FE),
  ("Harbin", 45.8038, 126.5350, "CN", FE),
  ("Suifenhe (west of Primorye)", 44.3960, 131.1500, "CN", FE),
  ("Ulaanbaatar", 47.8864, 106.9057, "MN", FE),
  ("Kashgar", 39.4704, 75.9898, "CN", FE),
  # The Americas and Oceania.
  ("Anchorage", 61.2181, -149.9003, "US", NA),
  ("Attu, Aleutians (east longitude)", 52.8990, 172.9090, "US", NA),
  ("Rio de Janeiro", -22.9068, -43.1729, "BR", NA),
  ("Mexico City", 19.4326, -99.1332, "MX", NA),
  ("Nuuk", 64.1814, -51.6941, "GL", NA),
  ("Port Moresby", -9.4438, 147.1803, "PG", NA),
  ("Darwin", -12.4634, 130.8456, "AU", NA),
  ("Suva", -18.1416, 178.4419, "FJ", NA),
  ("Apia", -13.8333, -171.7667, "WS", NA),
  ("McMurdo Station", -77.8463, 166.6682, "AQ", NA),
  # Southeast Asia up to New Guinea's 141°E border.
  ("Jayapura", -2.5337, 140.7181, "ID", FE),
  ("Singapore", 1.3521, 103.8198, "SG", FE),
  # South Asia: Pakistan with the Middle East, India with the Far East.
  ("Mumbai", 19.0760, 72.8777, "IN", FE),
  ("Amritsar", 31.6340, 74.8723, "IN", FE),
  ("Lahore", 31.5204, 74.3587, "PK", ME),
  ("Karachi", 24.8607, 67.0011, "PK", ME),
  ("Kabul", 34.5553, 69.2075, "AF", ME),
  ("Colombo", 6.9271, 79.8612, "LK", FE),
  # Africa is one part.
  ("Nairobi", -1.2921, 36.8219, "KE", ME),
  ("Cape Town", -33.9249, 18.4241, "ZA", ME),
  ("Tunis", 36.8065, 10.1815, "TN", ME),
  # The Caucasus and Central Asia with Russia; Iran and eastern Turkey not.
  ("Tbilisi", 41.7151, 44.8271, "GE", EU),
  ("Yerevan", 40.1792, 44.4991, "AM", EU),
  ("Baku", 40.4093, 49.8671, "AZ", EU),
  ("Almaty", 43.2220, 76.8512, "KZ", EU),
  ("Dushanbe", 38.5598, 68.7870, "TJ", EU),
  ("Ashgabat", 37.9601, 58.3261, "TM", EU),
  ("Kars", 40.6013, 43.0975, "TR", ME),
  ("Tehran", 35.6892, 51.3890, "IR", ME),
  ("Mashhad", 36.2605, 59.6168, "IR", ME),
  # The Mediterranean and the Aegean.
  ("Athens", 37.9838, 23.7275, "GR", EU),
  ("Rhodes (east of Turkey's Marmaris meridian)", 36.4341, 28.2176, "GR", EU),
  ("Nicosia", 35.1856, 33.3823, "CY", EU),
  ("Valletta", 35.8989, 14.5146, "MT", EU),
  ("Santa Cruz de Tenerife", 28.4636, -16.2518, "ES", EU),
  ("Reykjavik", 64.1466, -21.9426, "IS", EU),
  ("Troy (west of Greece's Evros border)", 39.9575, 26.2389, "TR", ME),
  ("Edirne", 41.6771, 26.5557, "TR", ME),
  ("Izmir", 38.4237, 27.1428, "TR", ME),
]

ALL = TEN_CITIES + BOUNDARY_CASES


@pytest.mark.parametrize("place,lat,lon,code,region", TEN_CITIES, ids=[c[0] for c in TEN_CITIES])
def test_the_ten_cities_by_coordinates_and_by_country(place, lat, lon, code, region):
  assert region_of_location(lat, lon) == region
  assert region_of_country(code) == region


@pytest.mark.parametrize(
  "place,lat,lon,code,region", BOUNDARY_CASES, ids=[c[0] for c in BOUNDARY_CASES]
)
def test_boundary_cases_by_coordinates_and_by_country(place, lat, lon, code, region):
  assert region_of_location(lat, lon) == region
  assert region_of_country(code) == region


def test_ceuta_is_spain_by_code_but_africa_by_coordinates():
  # The documented limit of coordinates: an enclave goes by its continent.
  assert region_of_country("ES") == EU
  assert region_of_location(35.8894, -5.3213) == ME


def test_country_codes_ignore_case_and_spaces_and_refuse_names():
  assert region_of_country(" jp ") == FE
  assert region_of_country("xk") == EU  # Kosovo's user-assigned code
  for wrong in ("UK", "France", "FRA", "", "ZZ"):
    with pytest.raises(DataError, match="unknown country code"):
      region_of_country(wrong)
  with pytest.raises(DataError, match="GB"):
    region_of_country("uk")


def _iso3166_tab() -> pathlib.Path | None:
  """The IANA time zone database's country list, where this machine has one."""
  try:
    path = importlib.resources.files("tzdata").joinpath("zoneinfo", "iso3166.tab")
    if path.is_file():
      return pathlib.Path(str(path))
  except ModuleNotFoundError:
    pass
  system = pathlib.Path("/usr/share/zoneinfo/iso3166.tab")
  return system if system.is_file() else None


def test_every_iso_code_has_a_region():
  # The list written by hand here (249 codes; 250 with XK), checked against an outside one
  # when the machine has it.
  assert len(COUNTRY_REGIONS) == 250 and set(COUNTRY_REGIONS.values()) == set(REGIONS)
  tab = _iso3166_tab()
  if tab is None:
    pytest.skip("no iso3166.tab (tzdata) on this machine")
  codes = {
    line.split("\t")[0]
    for line in tab.read_text().splitlines()
    if line and not line.startswith("#")
  }
  assert len(codes) >= 249
  assert codes - set(COUNTRY_REGIONS) == set()


def _dms(text: str) -> float:
  """zone.tab's ±DDMM[SS] / ±DDDMM[SS] → degrees."""
  sign, digits = (-1 if text[0] == "-" else 1), text[1:]
  seconds = len(digits) in (6, 7)
  degrees_len = len(digits) - (4 if seconds else 2)
  value = int(digits[:degrees_len]) + int(digits[degrees_len : degrees_len + 2]) / 60
  if seconds:
    value += int(digits[-2:]) / 3600
  return sign * value


def test_country_table_and_coordinates_agree_on_every_time_zone_city():
  # An independent reference: the IANA database's zone.tab gives, for each of ~400 time
  # zones, its country code and the coordinates of its principal city — a city of every
  # country, many of them near the boundaries (Ürümqi, Vladivostok, Kolkata, Karachi,
  # Nicosia, Istanbul, Chita, Hovd, the Kurils' Srednekolymsk ...). The one city whose
  # country and coordinates disagree is Ceuta (see docs/decisions.md).
  tab = _iso3166_tab()
  zones = tab and tab.with_name("zone.tab")
  if not zones or not zones.is_file():
    pytest.skip("no zone.tab (tzdata) on this machine")
  disagreeing, count = [], 0
  for line in zones.read_text().splitlines():
    if line.startswith("#") or not line.strip():
      continue
    code, coordinates, name = line.split("\t")[:3]
    lat, lon = re.fullmatch(r"([+-]\d+)([+-]\d+)", coordinates).groups()
    count += 1
    if region_of_location(_dms(lat), _dms(lon)) != region_of_country(code):
      disagreeing.append(name)
  assert count > 300
  assert disagreeing == ["Africa/Ceuta"]


def test_every_point_on_earth_gets_a_region():
  # A 1° grid, the poles and both sides of the antimeridian included.
  seen = set()
  for lat in range(-90, 91):
    for lon in range(-180, 181):
      region = region_of_location(float(lat), float(lon))
      assert region in REGIONS
      seen.add(region)
  assert seen == set(REGIONS)
  # -180° and 180° are one meridian: the same region on both.
  for lat in (-89.5, -50.0, -20.0, 0.0, 30.0, 52.0, 66.0, 70.0, 89.5):
    assert region_of_location(lat, -180.0) == region_of_location(lat, 180.0), lat


def test_the_boundary_data_is_well_formed():
  assert all(
    box.south < box.north and box.west < box.east and box.region in REGIONS and box.why
    for box in BOXES
  )
  for vertices in (EURASIA_NORTH_EDGE, MIDDLE_EAST_EAST_EDGE):
    xs = [x for x, _ in vertices]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)


@pytest.mark.parametrize(
  "lat,lon,needle",
  [
    (90.01, 0.0, "latitude 90.01"),
    (-91.0, 0.0, "latitude -91"),
    (0.0, 180.5, "longitude 180.5"),
    (float("nan"), 0.0, "latitude nan"),
  ],
)
def test_out_of_range_coordinates_are_refused(lat, lon, needle):
  with pytest.raises(DataError, match=needle):
    region_of_location(lat, lon)


def test_the_demo_datasets_placements_match_its_region_column():
  # The demo's fictional placements (Paris, London, Rome, Moscow, New York, San Francisco,
  # Sydney, Toronto) were given regions by hand; the coordinates must agree with them.
  from landmark_jax.data.demo_dataset import LANDMARKS

  assert [region_of_location(lat, lon) for *_, lat, lon in LANDMARKS] == [
    region for _, _, region, _, _ in LANDMARKS
  ]
