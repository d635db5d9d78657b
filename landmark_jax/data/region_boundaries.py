"""Where the curriculum's four regions are drawn, as data: the region of every ISO 3166-1
alpha-2 country code, and the boxes and lines that divide the map (`regions.py` looks points
up in them). Why they run where they do: docs/decisions.md, 'Curriculum regions'."""

from __future__ import annotations

from typing import NamedTuple

from landmark_jax.data.labels import REGIONS

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
