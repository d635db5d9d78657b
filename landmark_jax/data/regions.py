"""Curriculum regions: which of the paper's four geographic parts a landmark belongs to.

The paper splits the training data "by the geographic affiliation of the landmark's city"
into Europe/Russia; North America/Australia/Oceania; Middle East/North Africa; Far East
(`labels.REGIONS`, in training order). It names no boundaries and leaves most of the world
out, so everything below is **[ours]**. Every point on Earth and every ISO 3166-1 alpha-2
code gets exactly one of the four parts:

- ``europe_russia``: Europe (Iceland, Cyprus, Malta, the Canary Islands, Madeira and the
  Greek islands off Turkey's coast included), **all of Russia** — Siberia, Sakhalin, the
  Kurils, Vladivostok and Chukotka too: the paper says "Europe/Russia", not "European
  Russia" — and the other former Soviet states of the Caucasus (Georgia, Armenia,
  Azerbaijan) and Central Asia (Kazakhstan, Uzbekistan, Turkmenistan, Kyrgyzstan,
  Tajikistan): their cities share Russia's Soviet-era fabric and border it, where the
  alternative (the Middle East, for Samarkand's Timurid architecture) would split the
  former USSR.
- ``north_america_oceania``: the whole Americas (Latin America and the Caribbean too: the
  only part on their side of the Atlantic), Greenland, Hawaii and every Pacific island
  (Melanesia with Papua New Guinea, Micronesia with Palau and Guam, Polynesia),
  Australia and New Zealand, and Antarctica with the sub-Antarctic islands (no cities;
  Australia and New Zealand are their gateways).
- ``middle_east_north_africa``: the Middle East with **Turkey, Istanbul included**, Iran,
  Afghanistan and Pakistan (the IMF's "MENAP" grouping),
  and **all of Africa**: Sub-Saharan Africa joins the one African part, with the Indian
  Ocean islands off it (Madagascar, Mauritius, Réunion, the Seychelles).
- ``far_east``: East Asia (China, Japan, the Koreas, Mongolia, Taiwan), Southeast Asia
  (Indonesia up to New Guinea's 141°E border, the Philippines, Timor-Leste) and South Asia
  east of Pakistan (India, Bangladesh, Sri Lanka, Nepal, Bhutan, the Maldives): the rest
  of Asia. Its Hindu and Buddhist temples are closer to Southeast Asia's than to the
  Middle East's.

Two ways to say where a landmark is, and they agree wherever the coordinates are not near a
border:

- A country code (`region_of_country`): exact, and the better choice when a dataset has
  one. ``COUNTRY_REGIONS`` is the table. A code covers its whole country (ES: the Canary
  Islands and also Ceuta; RU: Vladivostok; TR: Istanbul; US: Hawaii and Alaska); overseas
  territories with their own ISO code go by where they are (RE Réunion: Africa; PF French
  Polynesia: Oceania). XK (Kosovo, user-assigned but in common use) is accepted.
- Coordinates (`region_of_location`): first match wins in this order —
  1. south of 45°S: Antarctica and the sub-Antarctic islands, Oceania;
  2. ``BOXES``: latitude/longitude boxes for what the broad rules below would get wrong
     (the Bering Sea and Chukotka east of the antimeridian, the Aleutians and the North
     Pacific west of it — so that 180°E and 180°W agree — the Kurils, Hokkaido, Primorye,
     the Canaries, Madeira, Greek islands and Cyprus off Turkey, Turkey's land west of
     26.4°E, northern Greenland) and for Oceania west of the antimeridian;
  3. west of 30°W: the Americas and the Pacific east of the antimeridian;
  4. west of 26.4°E (the Evros, the Greek–Turkish border): Europe north of
     ``MEDITERRANEAN_EDGE``, Africa south of it;
  5. east of 26.4°E: Europe/Russia north of ``EURASIA_NORTH_EDGE`` (a line along Turkey's
     Black Sea coast, the borders of Turkey and Iran with the Caucasus, of Iran,
     Afghanistan and China with Central Asia, of Mongolia and China with Russia);
  6. south of it: the Middle East west of ``MIDDLE_EAST_EAST_EDGE`` (the Arabian Sea at
     68.2°E, the Pakistan–India border, the Line of Control, the Pakistan–China border),
     the Far East east of it.

  The lines have 92 and 26 vertices, so a place within ~20 km of an international
  border (Orestiada on the Greek bank of the Evros, a Bulgarian village by Turkey, a
  border crossing) can land on the wrong side, and so can enclaves (Ceuta and Melilla are
  Spanish but in Africa by coordinates). Use country codes where that matters.

`assign_regions` reads a landmarks CSV: ``landmark_id`` plus ``latitude,longitude`` (or
``lat`` and ``lon``/``lng``) and/or ``country_code`` (or ``country``) with alpha-2 codes;
column names in any case, other columns ignored. A row's country code decides where it has
one, else its coordinates (or only one kind: ``by``). A row with neither is an error naming
it, unless a default region is given; so are a repeated id, a value out of range and an
unknown code. `write_regions_csv` writes ``landmark_id,region``, what training's
``data.regions_csv`` reads (`landmark-jax regions` does both).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import pathlib
from typing import NamedTuple, Sequence

from landmark_jax.data.labels import REGIONS
from landmark_jax.data.sources import parse_id
from landmark_jax.errors import DataError, MissingFileError, UsageError
from landmark_jax.folders import atomic_write_text

EUROPE_RUSSIA, NORTH_AMERICA_OCEANIA, MIDDLE_EAST_NORTH_AFRICA, FAR_EAST = REGIONS

# ---------------------------------------------------------------------------------------
# Countries: ISO 3166-1 alpha-2 → region. All 249 assigned codes, plus XK.

_COUNTRIES_BY_REGION = {
  EUROPE_RUSSIA: """
        # Europe: the EU and EEA, the Balkans, the microstates, the Crown dependencies,
        # the Nordic territories (Åland, Faroe, Svalbard and Jan Mayen), Cyprus and Malta.
        AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS
        IT JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS SE SI SJ SK SM UA VA XK
        # Russia, all of it: "Europe/Russia".
        RU
        # The Caucasus and Central Asia, former Soviet states bordering Russia [ours].
        AM AZ GE KG KZ TJ TM UZ
        """,
  NORTH_AMERICA_OCEANIA: """
        # North and Central America, Greenland, Bermuda, Saint Pierre and Miquelon.
        BM BZ CA CR GL GT HN MX NI PA PM SV US
        # The Caribbean.
        AG AI AW BB BL BQ BS CU CW DM DO GD GP HT JM KN KY LC MF MQ MS PR SX TC TT VC VG
        VI
        # South America: the Americas are one part [ours].
        AR BO BR CL CO EC FK GF GY PE PY SR UY VE
        # Oceania: Australia (with Christmas and Cocos Islands), New Zealand, Melanesia,
        # Micronesia, Polynesia, the US Minor Outlying Islands.
        AS AU CC CK CX FJ FM GU HM KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU
        WF WS
        # Antarctica and the sub-Antarctic islands: Bouvet, South Georgia, the French
        # Southern Lands (mostly Kerguelen and Crozet) [ours].
        AQ BV GS TF
        """,
  MIDDLE_EAST_NORTH_AFRICA: """
        # The Middle East, Turkey included.
        AE BH IL IQ IR JO KW LB OM PS QA SA SY TR YE
        # Afghanistan and Pakistan, as in the IMF's "MENAP" [ours].
        AF PK
        # North Africa.
        DZ EG EH LY MA SD TN
        # Sub-Saharan Africa and its islands: the one African part [ours].
        AO BF BI BJ BW CD CF CG CI CM CV DJ ER ET GA GH GM GN GQ GW KE KM LR LS MG ML MR
        MU MW MZ NA NE NG RE RW SC SH SL SN SO SS ST SZ TD TG TZ UG YT ZA ZM ZW
        """,
  FAR_EAST: """
        # East Asia.
        CN HK JP KP KR MN MO TW
        # Southeast Asia.
        BN ID KH LA MM MY PH SG TH TL VN
        # South Asia east of Pakistan, and the Chagos Islands off the Maldives [ours].
        BD BT IN LK MV NP IO
        """,
}


def _country_table() -> dict[str, str]:
  table = {}
  for region, text in _COUNTRIES_BY_REGION.items():
    for line in text.splitlines():
      for code in line.split("#", 1)[0].split():
        assert code not in table, f"{code} listed twice"
        table[code] = region
  return table


COUNTRY_REGIONS: dict[str, str] = _country_table()


def region_of_country(code: str) -> str:
  """The region of an ISO 3166-1 alpha-2 country code (any case, e.g. ``"jp"``).

  Raises:
    DataError: not a code of `COUNTRY_REGIONS` (a country name, ``UK`` for ``GB``, ...).
  """
  normalised = code.strip().upper()
  try:
    return COUNTRY_REGIONS[normalised]
  except KeyError:
    hint = " (the United Kingdom is GB)" if normalised == "UK" else ""
    raise DataError(
      f"unknown country code {code.strip()!r}: expected an ISO 3166-1 alpha-2 "
      f"code such as FR, US, EG, JP{hint}"
    ) from None


# ---------------------------------------------------------------------------------------
# Coordinates.


class Box(NamedTuple):
  """A latitude/longitude box (edges included), degrees north and east."""

  south: float
  north: float
  west: float
  east: float
  region: str
  why: str

  def contains(self, latitude: float, longitude: float) -> bool:
    return self.south <= latitude <= self.north and self.west <= longitude <= self.east


SOUTHERN_OCEAN_LATITUDE = -45.0  # south of it: Antarctica, Kerguelen, Heard, Bouvet...
ATLANTIC_LONGITUDE = -30.0  # between the Azores (31°W, Europe) and Brazil (35°W)
EVROS_LONGITUDE = 26.4  # the Greek–Turkish border (Edirne 26.56°E, Alexandroupolis 25.87°E)

# Checked in order, first match wins; most are exceptions to the broad rules that follow.
BOXES: tuple[Box, ...] = (
  # Across the antimeridian, so that 180°E and 180°W agree: the Bering Sea's border runs
  # between St Matthew Island (US, 172.7°W) and Cape Navarin (Russia, 179.1°E), then
  # through the Bering Strait at 169°W.
  Box(
    59.0,
    90.0,
    -180.0,
    -173.0,
    EUROPE_RUSSIA,
    "the Bering Sea's Russian side, Chukotka and Wrangel Island east of the antimeridian",
  ),
  Box(
    64.2,
    90.0,
    -173.0,
    -169.0,
    EUROPE_RUSSIA,
    "Chukotka to the Bering Strait (St Lawrence Island, US, ends at 63.8°N)",
  ),
  Box(
    22.0,
    59.0,
    168.3,
    180.0,
    NORTH_AMERICA_OCEANIA,
    "the Aleutians west of the antimeridian (Attu) and the North Pacific east of "
    "Kamchatka and the Commander Islands (168.1°E)",
  ),
  # Russia and Japan in the north-west Pacific: the Kurils before Hokkaido's box, whose
  # east edge (145.85°E) is Cape Nosappu, the Nemuro peninsula's tip.
  Box(
    43.6,
    51.5,
    145.35,
    157.0,
    EUROPE_RUSSIA,
    "the Kuril Islands (administered by Russia): Kunashir is 20 km off Hokkaido",
  ),
  Box(
    41.35,
    45.6,
    139.3,
    145.85,
    FAR_EAST,
    "Hokkaido, Rishiri and Rebun: south of Sakhalin (45.9°N), west of the Kurils",
  ),
  # Primorye lies south of the Amur line, east of the Chinese border (the Ussuri, Lake
  # Khanka, the hills west of Vladivostok, the Tumen); stepped to keep Suifenhe (131.15°E),
  # Hulin (132.97°E) and Raohe (134.0°E) in China.
  Box(42.4, 43.2, 130.65, 131.3, EUROPE_RUSSIA, "Russia's Khasan district (Posyet)"),
  Box(42.3, 45.0, 131.3, 135.0, EUROPE_RUSSIA, "Primorye: Vladivostok, Ussuriysk"),
  Box(45.0, 46.5, 133.2, 135.0, EUROPE_RUSSIA, "Primorye along the Ussuri: Dalnerechensk"),
  Box(46.5, 48.2, 134.1, 135.0, EUROPE_RUSSIA, "the Ussuri's east bank: Bikin"),
  # Spain's and Portugal's Atlantic islands off Africa.
  Box(
    27.5,
    29.5,
    -18.5,
    -13.3,
    EUROPE_RUSSIA,
    "the Canary Islands: Spain (Lanzarote 13.4°W, Morocco's coast 12.9°W)",
  ),
  Box(32.3, 33.2, -17.5, -16.0, EUROPE_RUSSIA, "Madeira: Portugal"),
  # Greek islands east of the Evros meridian, off Turkey's coast, and Cyprus.
  Box(
    38.95,
    39.45,
    26.4,
    26.63,
    EUROPE_RUSSIA,
    "Lesbos' east coast (Mytilene), west of Ayvalık (26.69°E)",
  ),
  Box(
    36.93,
    37.82,
    26.4,
    27.08,
    EUROPE_RUSSIA,
    "Samos, Fournoi, Patmos, Leros, Kalymnos: west of the Dilek and Bodrum peninsulas",
  ),
  Box(36.65, 36.93, 26.9, 27.36, EUROPE_RUSSIA, "Kos, south of the Bodrum peninsula"),
  Box(
    35.3,
    36.63,
    26.4,
    28.26,
    EUROPE_RUSSIA,
    "Rhodes, Symi, Tilos, Nisyros, Karpathos: south of the Datça peninsula",
  ),
  Box(36.1, 36.17, 29.5, 29.62, EUROPE_RUSSIA, "Kastellorizo, 2 km off Kaş"),
  Box(34.5, 35.75, 32.2, 34.65, EUROPE_RUSSIA, "Cyprus: an EU member (CY)"),
  # Turkey west of the Evros meridian: the Aegean coast bulges west of it.
  Box(
    38.2,
    38.75,
    26.22,
    26.4,
    MIDDLE_EAST_NORTH_AFRICA,
    "the Çeşme and Karaburun peninsulas (Chios' east coast is 26.16°E)",
  ),
  Box(
    39.5,
    40.35,
    25.6,
    26.4,
    MIDDLE_EAST_NORTH_AFRICA,
    "the Troad (Troy, 26.24°E), Bozcaada and Gökçeada (Lemnos ends at 25.45°E)",
  ),
  Box(
    40.35,
    40.75,
    26.0,
    26.4,
    MIDDLE_EAST_NORTH_AFRICA,
    "the Gallipoli peninsula's west coast and Enez",
  ),
  # Greenland reaches 11°W north of Iceland (whose north tip, Grímsey, is 66.55°N).
  Box(67.0, 90.0, -75.0, -10.0, NORTH_AMERICA_OCEANIA, "northern and eastern Greenland"),
  # Oceania west of the antimeridian. Indonesia's Papua ends at 141°E, the border with
  # Papua New Guinea; the Northern Marianas end at 20.6°N, Japan's Bonin Islands start
  # at 24°N; Indonesia's southernmost islands (Rote, Ndana) end at 11.0°S.
  Box(
    -45.0,
    22.0,
    141.0,
    180.0,
    NORTH_AMERICA_OCEANIA,
    "Australia east of 141°E, Papua New Guinea, Melanesia, Micronesia, New Zealand",
  ),
  Box(
    -45.0,
    -11.05,
    119.5,
    141.0,
    NORTH_AMERICA_OCEANIA,
    "Australia west of 141°E: Darwin, the Kimberley, south of Timor",
  ),
  Box(
    -45.0,
    -10.3,
    95.0,
    119.5,
    NORTH_AMERICA_OCEANIA,
    "Western Australia, Christmas and Cocos Islands: south of Java and Sumba",
  ),
  Box(
    2.5,
    8.5,
    131.0,
    135.0,
    NORTH_AMERICA_OCEANIA,
    "Palau, north of Indonesia's Papua and east of the Philippines",
  ),
)

# West of the Evros meridian: the latitude north of which it is Europe, by longitude band
# (west edge of each band, latitude). Africa's Mediterranean coast is not one latitude:
# Tunisia (Bizerte 37.27°N) lies north of Sicily's south coast (36.6°N).
MEDITERRANEAN_EDGE: tuple[tuple[float, float], ...] = (
  (-30.0, 36.0),  # Tarifa 36.01°N, Gibraltar 36.14°N | Tangier 35.77°N, Ceuta 35.89°N
  (-0.5, 37.55),  # Cartagena 37.60°N, Alicante | Algiers 36.75°N, Tunis, Bizerte 37.27°N
  (11.5, 34.0),  # Pantelleria, Lampedusa 35.5°N, Malta, Crete 34.8°N | Tripoli 32.9°N
)

# East of the Evros meridian: (longitude, latitude) vertices, west to east; north of the
# line (linear between vertices) is Europe/Russia. The Ussuri's stretch, which runs north–
# south, is left to Primorye's boxes; east of 134.9°E the line drops to the Sea of Japan.
EURASIA_NORTH_EDGE: tuple[tuple[float, float], ...] = (
  # The Bulgarian–Turkish border (Edirne 41.68°N | Elhovo 42.17°N).
  (26.4, 41.72),
  (27.5, 41.95),
  (28.05, 41.98),
  # The Black Sea: north of Turkey's coast (Sinop 42.03°N), south of Crimea (44.4°N).
  (28.1, 42.08),
  (35.0, 42.12),
  # Georgia–Turkey (Batumi 41.64°N | Hopa 41.39°N), Armenia–Turkey (the Akhurian: Ani |
  # Gyumri; the Aras: Iğdır | Yerevan), Nakhchivan/Armenia–Iran (the Aras), Azerbaijan–
  # Iran (the Mughan steppe to Astara on the Caspian).
  (41.55, 41.52),
  (42.8, 41.55),
  (43.45, 41.15),
  (43.6, 40.6),
  (44.3, 40.0),
  (44.8, 39.65),
  (45.0, 39.45),
  (45.6, 38.95),
  (46.2, 38.85),
  (47.0, 39.15),
  (47.9, 39.7),
  (48.4, 39.2),
  (48.9, 38.42),
  # The Caspian, to the Turkmen–Iranian border at Esenguly.
  (54.0, 37.3),
  # Turkmenistan–Iran along the Kopet Dag (Ashgabat 37.95°N | Quchan, Mashhad), then
  # Turkmenistan–Afghanistan (Serhetabat | Herat; Andkhoy).
  (55.5, 38.0),
  (57.0, 38.25),
  (58.4, 37.65),
  (60.0, 36.9),
  (61.2, 36.6),
  (61.25, 35.6),
  (62.3, 35.2),
  (63.1, 35.85),
  (64.5, 36.25),
  (65.0, 37.2),
  (66.5, 37.35),
  # The Amu Darya and the Panj: Uzbekistan and Tajikistan | Afghanistan (Termez |
  # Mazar-i-Sharif; Khorog | Ishkashim), then the Wakhan corridor.
  (67.3, 37.15),
  (68.3, 37.0),
  (69.3, 37.1),
  (70.2, 37.9),
  (70.8, 38.4),
  (71.4, 37.3),
  (71.6, 36.85),
  (72.5, 36.95),
  (73.6, 37.3),
  (74.9, 37.2),
  # Tajikistan, Kyrgyzstan, Kazakhstan | China (Murghab | Tashkurgan; Naryn | Kashgar;
  # Zharkent | Yining; Zaysan | Jeminay), to the Altai.
  (75.0, 39.3),
  (75.4, 40.55),
  (76.5, 40.4),
  (78.0, 41.1),
  (80.2, 42.2),
  (80.4, 44.2),
  (80.8, 45.0),
  (82.45, 45.2),
  (82.7, 47.0),
  (85.5, 47.3),
  (86.2, 48.4),
  (87.3, 49.1),
  (87.8, 49.17),
  # Russia | Mongolia (Kosh-Agach | Ölgii; Kyzyl | Ulaangom; Mondy | Khankh; Kyakhta |
  # Sükhbaatar).
  (88.5, 49.5),
  (89.2, 49.6),
  (90.5, 50.0),
  (92.0, 50.55),
  (94.0, 50.45),
  (95.5, 49.95),
  (97.5, 50.0),
  (98.3, 50.5),
  (98.9, 52.1),
  (100.0, 51.75),
  (101.5, 51.5),
  (102.5, 51.3),
  (104.0, 50.3),
  (106.45, 50.33),
  (108.0, 49.45),
  (110.0, 49.2),
  (112.0, 49.55),
  (114.0, 50.2),
  (115.5, 49.9),
  (116.7, 49.85),
  # Russia | China: the Argun (Zabaikalsk | Manzhouli), the Amur (Blagoveshchensk |
  # Heihe; Khabarovsk | Fuyuan).
  (117.4, 49.6),
  (118.5, 49.95),
  (119.2, 50.25),
  (119.9, 51.3),
  (120.9, 52.6),
  (121.3, 53.3),
  (123.5, 53.55),
  (124.1, 53.33),
  (126.65, 51.72),
  (127.5, 50.25),
  (128.2, 49.6),
  (129.5, 49.4),
  (130.6, 48.9),
  (131.6, 47.75),
  (132.5, 47.75),
  (134.3, 48.45),
  (134.8, 48.45),
  # East of the Ussuri's mouth: the Sea of Japan, north of North Korea (Rason 42.25°N);
  # Japan's Hokkaido has its box.
  (134.9, 42.3),
  (180.0, 42.3),
)

# South of EURASIA_NORTH_EDGE: (latitude, longitude) vertices, south to north; west of the
# line is the Middle East, east of it the Far East. South of the first vertex it is 68.2°E
# (the Arabian Sea, between Karachi and Gujarat's coast; the Maldives and Chagos east of
# it), north of the last 74.9°E (Afghanistan's Wakhan | China).
MIDDLE_EAST_EAST_EDGE: tuple[tuple[float, float], ...] = (
  # Sir Creek, the Rann of Kutch's north edge (Badin, Nagarparkar | Kutch).
  (23.6, 68.2),
  (24.25, 68.8),
  (24.35, 71.1),
  # The Thar desert to the Punjab (Rahim Yar Khan, Fort Abbas | Bikaner, Anupgarh;
  # Bahawalnagar | Sri Ganganagar; Kasur, Lahore | Ferozepur, Amritsar; Sialkot | Jammu).
  (25.7, 70.25),
  (26.6, 69.5),
  (27.7, 70.0),
  (28.0, 70.6),
  (29.0, 72.9),
  (29.9, 73.4),
  (30.4, 73.9),
  (31.0, 74.55),
  (31.6, 74.57),
  (32.05, 75.1),
  (32.5, 74.7),
  # The Line of Control in Kashmir (Kotli, Muzaffarabad | Poonch, Uri, Kupwara; Skardu,
  # Khaplu | Kargil, Turtuk), to the Karakoram Pass.
  (33.0, 74.3),
  (33.7, 73.95),
  (34.1, 73.95),
  (34.4, 73.9),
  (34.7, 74.55),
  (34.85, 75.5),
  (35.0, 76.8),
  (35.5, 77.8),
  # Pakistan | China along the Karakoram (K2, the Khunjerab Pass), then Afghanistan's
  # Wakhan | China.
  (35.9, 76.5),
  (36.85, 75.43),
  (37.1, 74.6),
  (37.25, 74.9),
)


def _interpolate(vertices: Sequence[tuple[float, float]], x: float) -> float:
  """Piecewise-linear y(x) through `vertices` (x increasing); constant beyond the ends."""
  if x <= vertices[0][0]:
    return vertices[0][1]
  for (x0, y0), (x1, y1) in zip(vertices, vertices[1:]):
    if x <= x1:
      return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
  return vertices[-1][1]


def _mediterranean_edge(longitude: float) -> float:
  return next(lat for west, lat in reversed(MEDITERRANEAN_EDGE) if longitude >= west)


def check_location(latitude: float, longitude: float) -> None:
  """Raises DataError unless latitude is in [-90, 90] and longitude in [-180, 180]."""
  if not -90.0 <= latitude <= 90.0:  # NaN fails too
    raise DataError(f"latitude {latitude} is outside -90..90")
  if not -180.0 <= longitude <= 180.0:
    raise DataError(f"longitude {longitude} is outside -180..180")


def region_of_location(latitude: float, longitude: float) -> str:
  """The region of a point (degrees north, degrees east; WGS84): see the module docstring.

  Raises:
    DataError: latitude outside [-90, 90] or longitude outside [-180, 180] (or NaN).
  """
  check_location(latitude, longitude)
  if latitude <= SOUTHERN_OCEAN_LATITUDE:
    return NORTH_AMERICA_OCEANIA
  for box in BOXES:
    if box.contains(latitude, longitude):
      return box.region
  if longitude < ATLANTIC_LONGITUDE:
    return NORTH_AMERICA_OCEANIA
  if longitude < EVROS_LONGITUDE:
    return EUROPE_RUSSIA if latitude >= _mediterranean_edge(longitude) else MIDDLE_EAST_NORTH_AFRICA
  if latitude >= _interpolate(EURASIA_NORTH_EDGE, longitude):
    return EUROPE_RUSSIA
  if longitude < _interpolate(MIDDLE_EAST_EAST_EDGE, latitude):
    return MIDDLE_EAST_NORTH_AFRICA
  return FAR_EAST


# ---------------------------------------------------------------------------------------
# A landmarks CSV → ``landmark_id,region``.

# Accepted column names (any case, surrounding spaces ignored), the first present is used.
ID_COLUMN = "landmark_id"
LATITUDE_COLUMNS = ("latitude", "lat")
LONGITUDE_COLUMNS = ("longitude", "lon", "lng")
COUNTRY_COLUMNS = ("country_code", "country")  # ISO 3166-1 alpha-2 codes
BY = ("auto", "country", "coordinates")  # what decides a row's region


@dataclasses.dataclass(frozen=True)
class RegionAssignment:
  """One landmark's region and what decided it.

  Attributes:
    landmark_id: the id as written in the input (stripped).
    region: one of `REGIONS`.
    source: ``"country"``, ``"coordinates"`` or ``"default"`` (no location; the default).
    line: the input's line number.
    coordinates_region: the coordinates' region when the country decided and the row had
      coordinates too (so that disagreements can be reported), else None.
  """

  landmark_id: str
  region: str
  source: str
  line: int
  coordinates_region: str | None = None

  @property
  def disagrees(self) -> bool:
    return self.coordinates_region is not None and self.coordinates_region != self.region


def _column(fieldnames: dict[str, str], names: Sequence[str]) -> str | None:
  return next((fieldnames[n] for n in names if n in fieldnames), None)


def _number(text: str, what: str, where: str) -> float:
  try:
    return float(text)
  except ValueError:
    raise DataError(f"{where}: {what} {text!r} is not a number") from None


def assign_regions(
  path: str | os.PathLike, *, by: str = "auto", default_region: str | None = None
) -> list[RegionAssignment]:
  """The region of every landmark of a CSV, in the file's order.

  The CSV has a ``landmark_id`` column and either ``latitude,longitude`` (or ``lat`` and
  ``lon``/``lng``) or ``country_code`` (or ``country``) holding ISO 3166-1 alpha-2 codes,
  or both; other columns (``name``, an old ``region``) are ignored.

  Args:
    by: ``"auto"``: a row's country code where it has one (exact at borders), else its
      coordinates; ``"country"`` or ``"coordinates"``: only that column.
    default_region: the region of rows without a location (empty cells); None: such rows
      are an error naming them.

  Raises:
    MissingFileError: no such file.
    DataError: no ``landmark_id`` column, neither location column (or not the one `by`
      names), an empty or repeated landmark id, a value that is not a number, a latitude or
      longitude out of range, an unknown country code (each naming the line and landmark),
      rows without a location and no `default_region`, or no rows at all.
    UsageError: `by` or `default_region` is not one of the accepted values.
  """
  if by not in BY:
    raise UsageError(f"by={by!r}: expected one of {', '.join(BY)}")
  if default_region is not None and default_region not in REGIONS:
    raise UsageError(f"default region {default_region!r}: expected one of {', '.join(REGIONS)}")
  path = pathlib.Path(path)
  if not path.is_file():
    raise MissingFileError(f"landmarks CSV not found: {path}")
  with open(path, newline="", encoding="utf-8-sig") as f:  # -sig: a spreadsheet's BOM
    reader = csv.DictReader(f)
    fieldnames = {name.strip().lower(): name for name in reader.fieldnames or [] if name}
    id_column = _column(fieldnames, [ID_COLUMN])
    latitude_column = _column(fieldnames, LATITUDE_COLUMNS)
    longitude_column = _column(fieldnames, LONGITUDE_COLUMNS)
    country_column = _column(fieldnames, COUNTRY_COLUMNS)
    has = f"it has {list(reader.fieldnames or [])}"
    if id_column is None:
      raise DataError(f"{path} has no landmark_id column; {has}")
    if (latitude_column is None) != (longitude_column is None):
      raise DataError(f"{path} has only one of latitude and longitude; {has}")
    if (
      by != "country"
      and latitude_column is None
      and (by == "coordinates" or country_column is None)
    ):
      raise DataError(
        f"{path} has no coordinate columns (latitude,longitude)"
        + ("" if by == "coordinates" else " and no country column (country_code or country)")
        + f"; {has}"
      )
    if by == "country" and country_column is None:
      raise DataError(f"{path} has no country column (country_code or country); {has}")
    use_country = country_column if by != "coordinates" else None
    use_coordinates = latitude_column is not None and by != "country"

    assignments, seen, unplaced = [], {}, []
    for row in reader:
      line = reader.line_num
      landmark_id = (row.get(id_column) or "").strip()
      if not landmark_id:
        cells = [c for v in row.values() for c in (v if isinstance(v, list) else [v])]
        if not any(c and c.strip() for c in cells):  # extra cells come as a list
          continue  # a line of empty cells
        raise DataError(f"{path} line {line}: empty landmark_id")
      where = f"{path} line {line} (landmark {landmark_id})"
      key = parse_id(landmark_id)
      if key in seen:
        raise DataError(
          f"{path}: landmark {landmark_id} appears twice (lines {seen[key]} and "
          f"{line}); each landmark needs one row"
        )
      seen[key] = line

      coordinates_region = None
      if use_coordinates:
        lat_text = (row.get(latitude_column) or "").strip()
        lon_text = (row.get(longitude_column) or "").strip()
        if bool(lat_text) != bool(lon_text):
          raise DataError(f"{where}: has only one of latitude and longitude")
        if lat_text:
          latitude = _number(lat_text, "latitude", where)
          longitude = _number(lon_text, "longitude", where)
          try:
            coordinates_region = region_of_location(latitude, longitude)
          except DataError as error:
            raise DataError(f"{where}: {error}") from None
      country = (row.get(use_country) or "").strip() if use_country else ""
      if country:
        try:
          region = region_of_country(country)
        except DataError as error:
          raise DataError(f"{where}: {error}") from None
        assignments.append(
          RegionAssignment(landmark_id, region, "country", line, coordinates_region)
        )
      elif coordinates_region is not None:
        assignments.append(RegionAssignment(landmark_id, coordinates_region, "coordinates", line))
      elif default_region is not None:
        assignments.append(RegionAssignment(landmark_id, default_region, "default", line))
      else:
        unplaced.append(f"{landmark_id} (line {line})")
  if unplaced:
    what = " or ".join(
      w for w, used in (("coordinates", use_coordinates), ("a country code", use_country)) if used
    )
    raise DataError(
      f"{path}: {len(unplaced)} landmark(s) without {what}: "
      f"{', '.join(unplaced[:5])}{', …' if len(unplaced) > 5 else ''}; fill them "
      "in, or give a default region (--default-region)"
    )
  if not assignments:
    raise DataError(f"{path} lists no landmarks")
  return assignments


def regions_csv_text(assignments: Sequence[RegionAssignment]) -> str:
  """``landmark_id,region`` rows: what training's ``data.regions_csv`` reads."""
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(["landmark_id", "region"])
  writer.writerows((a.landmark_id, a.region) for a in assignments)
  return out.getvalue()


def write_regions_csv(assignments: Sequence[RegionAssignment], path: str | os.PathLike) -> None:
  """Writes `regions_csv_text` atomically: a reader sees the old file or the new one."""
  path = pathlib.Path(path)
  if not path.parent.is_dir():
    raise MissingFileError(f"output folder not found: {path.parent}")
  atomic_write_text(path, regions_csv_text(assignments))
