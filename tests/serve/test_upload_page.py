"""The upload page in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium): choose photos, see one card per photo with its answer, the top-k and the
threshold η of /v1/info; the location options reach the API. A screenshot is kept as an
artifact.

`.ci/run` installs the browser; elsewhere the test skips when it is absent (set
LANDMARK_JAX_REQUIRE_BROWSER=1 to make that a failure). Nothing is downloaded: the browser
and its driver are given by path, and Selenium's usage statistics are off.
"""

import json
import os
import pathlib
import shutil
import urllib.request

import pytest

from landmark_jax.geo import exif_location
from landmark_jax.recognize import decode_photo
from tests.helpers import mini_photos
from tests.serve.conftest import SERVE_CONFIG

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = pathlib.Path(os.environ.get("LANDMARK_JAX_ARTIFACTS", "test-artifacts"))
HTML_NAME = '<b>Arch</b> & <img src="x">'  # must show as text, never as markup


def browser():
  if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    message = "Chromium/chromedriver not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("LANDMARK_JAX_REQUIRE_BROWSER"):
      pytest.fail(message)
    pytest.skip(message)
  os.environ["SE_AVOID_STATS"] = "true"
  webdriver = pytest.importorskip("selenium.webdriver")
  from selenium.webdriver.chrome.service import Service

  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--window-size=1000,1400",
  ):
    options.add_argument(flag)
  return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


@pytest.fixture(scope="module")
def driver():
  driver = browser()
  yield driver
  driver.quit()


def by():
  from selenium.webdriver.common.by import By

  return By


def choose(driver, url, paths):
  """Opens the page afresh and chooses `paths` at once (the page sends them on change)."""
  driver.get(url + "/")
  driver.find_element(by().ID, "photo").send_keys("\n".join(str(p) for p in paths))
  return wait_for_cards(driver, len(paths))


def wait_for_cards(driver, n):
  from selenium.webdriver.support.ui import WebDriverWait

  def answered(driver):
    cards = driver.find_elements(by().CSS_SELECTOR, "#results .result")
    done = len(cards) == n and all(c.get_attribute("data-state") != "pending" for c in cards)
    return cards if done else False

  return WebDriverWait(driver, 60).until(answered)


def answer_json(card):
  return json.loads(card.find_element(by().CSS_SELECTOR, "pre.json").get_attribute("textContent"))


def broken_images(driver):
  return driver.execute_script(
    "return Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length"
  )


def served_prediction(recognizer, photo, read_exif=True):
  """The answer the service gives for `photo` (its image limits decide the JPEG draft size)."""
  config = SERVE_CONFIG.image_config(recognizer.photos.image_config)
  return recognizer.recognize_photos([decode_photo(str(photo), config, read_exif=read_exif)])[0]


def unlocated_photos(landmarks_mini, n):
  # A photo without EXIF GPS: a located one far from every demo landmark has no candidates.
  return [p for p in mini_photos(landmarks_mini, 26) if exif_location(p) is None][:n]


def test_choose_a_photo_and_see_the_answer(server, landmarks_mini, driver):
  url, recognizer = server
  (photo,) = unlocated_photos(landmarks_mini, 1)
  expected = served_prediction(recognizer, photo)
  assert expected.candidates
  (card,) = choose(driver, url, [photo])
  assert "Which landmark" in driver.find_element(by().TAG_NAME, "h1").text
  assert card.get_attribute("data-state") == "done"
  answer = card.find_element(by().CSS_SELECTOR, ".answer").text
  rows = card.find_elements(by().CSS_SELECTOR, "table.candidates tbody tr")
  assert len(rows) == len(expected.candidates)
  first = rows[0].find_elements(by().TAG_NAME, "td")
  assert abs(float(first[2].text) - expected.candidates[0].score) <= 0.0015
  if expected.is_landmark:
    assert answer.startswith("Landmark:") and str(expected.landmark_id) in answer
  else:
    assert answer.startswith("No landmark recognised")
  # The threshold shown is the service's η (and ρ only when the index checks references).
  info = json.load(urllib.request.urlopen(url + "/v1/info"))
  threshold = driver.find_element(by().ID, "threshold")
  assert float(threshold.get_attribute("data-eta")) == info["eta"]
  assert f"similarity ≥ η = {info['eta']:.3f}" in threshold.text
  rho = info["reference_threshold"]
  assert (f"ρ = {rho:.3f}" in threshold.text) if rho is not None else ("ρ" not in threshold.text)
  assert len(card.find_elements(by().TAG_NAME, "img")) == 1 and broken_images(driver) == 0


def test_several_photos_names_and_non_images(server, landmarks_mini, driver, tmp_path, monkeypatch):
  url, recognizer = server
  photos = unlocated_photos(landmarks_mini, 2)
  ids = [c.landmark_id for c in served_prediction(recognizer, photos[0]).candidates]
  assert len(ids) >= 2
  # The best candidate's name holds HTML; the others are named as their ids.
  names = {ids[0]: HTML_NAME, **{i: i for i in ids[1:]}}
  monkeypatch.setattr(recognizer.decision, "names", names)
  not_a_jpeg = tmp_path / "broken.jpg"  # an image type by name: the page tries a thumbnail
  not_a_jpeg.write_bytes(b"these bytes are no JPEG at all " * 40)
  notes = tmp_path / "notes.txt"
  notes.write_text("just some notes\n")
  files = [*photos, not_a_jpeg, notes]
  cards = choose(driver, url, files)

  assert [c.get_attribute("data-file") for c in cards] == [p.name for p in files]
  assert [c.get_attribute("data-state") for c in cards] == ["done", "done", "error", "error"]
  rows = cards[0].find_elements(by().CSS_SELECTOR, "table.candidates tbody tr")
  labels = [r.find_elements(by().TAG_NAME, "td")[1].text for r in rows]
  assert labels == [f"{HTML_NAME} ({ids[0]})", *ids[1 : len(labels)]]
  page = driver.find_element(by().ID, "results").text
  assert not any(f"{i} ({i})" in page for i in ids)
  assert not driver.find_elements(by().CSS_SELECTOR, "#results b")
  for card in cards[2:]:  # the error only: no thumbnail, no table, no broken image
    error = card.find_element(by().CSS_SELECTOR, ".answer.error").text
    assert card.get_attribute("data-file") in error
    assert not card.find_elements(by().TAG_NAME, "img")
    assert not card.find_elements(by().TAG_NAME, "table")

  from selenium.webdriver.support.ui import WebDriverWait

  WebDriverWait(driver, 10).until(lambda d: len(d.find_elements(by().CSS_SELECTOR, "img")) == 2)
  assert broken_images(driver) == 0
  ARTIFACTS.mkdir(parents=True, exist_ok=True)
  driver.save_screenshot(str(ARTIFACTS / "upload_page.png"))
  assert (ARTIFACTS / "upload_page.png").stat().st_size > 10_000


def test_location_options_reach_the_api(server, landmarks_mini, driver):
  url, recognizer = server
  photo = next(p for p in mini_photos(landmarks_mini, 3) if exif_location(p) is not None)
  gps = exif_location(photo)
  assert not served_prediction(recognizer, photo).candidates  # no demo landmark near it

  # Default: the photo's GPS; nothing nearby is a sentence, not an empty table.
  (card,) = choose(driver, url, [photo])
  located = answer_json(card)["location"]
  assert located == pytest.approx({"latitude": gps.latitude, "longitude": gps.longitude})
  assert card.find_element(by().CSS_SELECTOR, ".answer").text.startswith(
    "No landmark in the index within"
  )
  assert not card.find_elements(by().TAG_NAME, "table")

  def send_with(where, lat=None, lon=None):
    driver.find_element(by().CSS_SELECTOR, f"input[name=where][value={where}]").click()
    for field, value in (("lat", lat), ("lon", lon)):
      if value is not None:
        driver.find_element(by().ID, field).clear()
        driver.find_element(by().ID, field).send_keys(value)
    driver.find_element(by().CSS_SELECTOR, "button[type=submit]").click()
    return wait_for_cards(driver, 1)[0]

  # Ignore GPS: the photo arrives without its GPS position, and every landmark is a candidate.
  card = send_with("ignore")
  assert answer_json(card)["location"] is None
  assert card.get_attribute("data-location") == "none"
  unlocated = served_prediction(recognizer, photo, read_exif=False)
  rows = card.find_elements(by().CSS_SELECTOR, "table.candidates tbody tr")
  assert len(rows) == len(unlocated.candidates)
  assert "GPS ignored" in card.find_element(by().CSS_SELECTOR, ".where").text

  # A given location becomes ?lat=&lon=, which wins over the photo's GPS.
  card = send_with("given", "48.8584", "2.2945")
  assert answer_json(card)["location"] == {"latitude": 48.8584, "longitude": 2.2945}
  assert "given location: 48.8584, 2.2945" in card.find_element(by().CSS_SELECTOR, ".where").text
  ARTIFACTS.mkdir(parents=True, exist_ok=True)
  driver.save_screenshot(str(ARTIFACTS / "upload_page_location.png"))

  # A location out of range is refused on the page; nothing is sent.
  driver.find_element(by().ID, "lat").clear()
  driver.find_element(by().ID, "lat").send_keys("123")
  driver.find_element(by().CSS_SELECTOR, "button[type=submit]").click()
  assert "latitude in [-90, 90]" in driver.find_element(by().ID, "location-error").text
  assert answer_json(card)["location"] == {"latitude": 48.8584, "longitude": 2.2945}
