"""The upload page in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium): choose a photo, see the answer and the top-k; a screenshot is kept as an artifact.

`.ci/run` installs the browser; elsewhere the test skips when it is absent (set
LANDMARK_JAX_REQUIRE_BROWSER=1 to make that a failure).
"""

import os
import pathlib
import shutil

import pytest

from landmark_jax.geo import exif_location
from tests.helpers import mini_photos

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = pathlib.Path(os.environ.get("LANDMARK_JAX_ARTIFACTS", "test-artifacts"))


def browser():
  if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    message = "Chromium/chromedriver not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("LANDMARK_JAX_REQUIRE_BROWSER"):
      pytest.fail(message)
    pytest.skip(message)
  webdriver = pytest.importorskip("selenium.webdriver")
  from selenium.webdriver.chrome.service import Service

  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  for flag in (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--window-size=1000,1100",
  ):
    options.add_argument(flag)
  return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def test_choose_a_photo_and_see_the_answer(server, landmarks_mini):
  from selenium.webdriver.common.by import By
  from selenium.webdriver.support import expected_conditions
  from selenium.webdriver.support.ui import WebDriverWait

  url, recognizer = server
  # A photo without EXIF GPS: a located one far from every demo landmark has no candidates.
  photo = next(p for p in mini_photos(landmarks_mini, 26) if exif_location(p) is None)
  expected = recognizer.recognize([str(photo)])[0]
  assert expected.candidates
  driver = browser()
  try:
    driver.get(url + "/")
    assert "Which landmark" in driver.find_element(By.TAG_NAME, "h1").text
    driver.find_element(By.ID, "photo").send_keys(str(photo))
    WebDriverWait(driver, 60).until(
      expected_conditions.visibility_of_element_located((By.ID, "candidates"))
    )
    answer = driver.find_element(By.ID, "answer").text
    rows = driver.find_elements(By.CSS_SELECTOR, "#candidates tbody tr")
    assert len(rows) == len(expected.candidates)
    first = rows[0].find_elements(By.TAG_NAME, "td")
    assert first[2].text == f"{expected.candidates[0].score:.3f}"
    if expected.is_landmark:
      assert answer.startswith("Landmark:") and str(expected.landmark_id) in answer
    else:
      assert answer.startswith("No landmark recognised")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / "upload_page.png"))
    assert (ARTIFACTS / "upload_page.png").stat().st_size > 10_000
  finally:
    driver.quit()
