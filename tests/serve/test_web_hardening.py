"""The service on the web (issue 33, finding 10): the API key, the Host and Origin a browser
sends, the security headers on every answer, and the upload page under its own
Content-Security-Policy, against a real service with a key in a thread."""

import base64
import dataclasses
import hashlib
import importlib.resources
import re
import socket

import httpx
import pytest
from starlette.testclient import TestClient

from landmark_jax.errors import ConfigError, UsageError
from landmark_jax.serve.app import create_app
from landmark_jax.serve.security import API_KEY_ENV, HostOriginGate, api_key, bearer_matches
from tests.helpers import encode, gradient_image
from tests.serve.conftest import SERVE_CONFIG, app_in_thread, served_recognizer

KEY = "a-test-key-of-32-characters-0123"
WITH_KEY = {"authorization": f"Bearer {KEY}"}
JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"
PHOTO = encode(gradient_image())


class BodySpy:
  """The app, counting the request-body messages it takes from the server: a request
  refused from its headers takes none."""

  def __init__(self, app):
    self.app = app
    self.state = app.state  # what app_in_thread reads its limits from
    self.body_reads = 0

  async def __call__(self, scope, receive, send):
    async def counted():
      message = await receive()
      if message["type"] == "http.request":
        self.body_reads += 1
      return message

    await self.app(scope, counted if scope["type"] == "http" else receive, send)


@pytest.fixture(scope="module")
def keyed(trained, index_dir):
  """A service with an API key: (base URL, its app, the body spy, the Recognizer)."""
  recognizer = served_recognizer(trained, index_dir)
  app = create_app(recognizer, SERVE_CONFIG, api_key=KEY)
  spy = BodySpy(app)
  with app_in_thread(spy, log_level="warning") as url:
    yield url, app, spy, recognizer


@pytest.fixture
def recognize_spy(keyed, monkeypatch):
  """The photos that reached `RecognitionService.recognize`, where decoding starts."""
  service = keyed[1].state.service
  calls, recognize = [], service.recognize
  monkeypatch.setattr(service, "recognize", lambda *a, **k: calls.append(a) or recognize(*a, **k))
  return calls


def upload(client, **headers):
  return client.post(
    "/v1/recognize", files={"image": ("a.jpg", PHOTO, "image/jpeg")}, headers=headers
  )


def assert_error(response, status, code):
  assert response.status_code == status, response.text
  assert response.headers["content-type"] == "application/json"
  assert response.json()["error"] == code


@pytest.mark.parametrize(
  "authorization",
  [None, f"Bearer {KEY[:-1]}x", f"Bearer {KEY}x", f"Bearer {KEY[:8]}", f"Basic {KEY}", KEY],
)
def test_without_the_key_only_health_and_page_answer(keyed, recognize_spy, authorization):
  url, _, spy, _ = keyed
  headers = {} if authorization is None else {"authorization": authorization}
  reads = spy.body_reads
  with httpx.Client(base_url=url, timeout=60) as client:
    for response in (
      upload(client, **headers),
      client.post(
        "/v1/recognize:batch", files=[("images", ("a.jpg", PHOTO, "image/jpeg"))], headers=headers
      ),
      client.get("/v1/info", headers=headers),
      client.get("/metrics", headers=headers),
      client.get("/no/such/route", headers=headers),  # nothing to learn about the routes
    ):
      assert_error(response, 401, "unauthorized")
      assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/healthz", headers=headers).json() == {"status": "ok"}
    assert client.get("/", headers=headers).status_code == 200  # static, asks for the key
  assert spy.body_reads == reads and not recognize_spy  # refused from the headers alone


def test_with_the_key_the_service_answers(keyed, tmp_path):
  url, _, _, recognizer = keyed
  path = tmp_path / "a.jpg"
  path.write_bytes(PHOTO)
  expected = recognizer.recognize([str(path)])[0]
  with httpx.Client(base_url=url, timeout=60, headers=WITH_KEY) as client:
    response = upload(client)
    assert response.status_code == 200, response.text
    assert response.json()["score"] == pytest.approx(expected.score, abs=1e-5)
    info = client.get("/v1/info").json()
    assert info["api_key_required"] is True and KEY not in str(info)
    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example"])
def test_a_name_the_service_was_not_given_is_refused(keyed, host):
  """DNS rebinding: the attacker's name, resolving to this machine, arrives as the Host."""
  url, _, _, _ = keyed
  with httpx.Client(base_url=url, timeout=60, headers=WITH_KEY) as client:
    assert_error(client.get("/v1/info", headers={"host": host}), 403, "forbidden_host")
    port = url.rsplit(":", 1)[1]
    for own in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "LOCALHOST"):
      assert client.get("/v1/info", headers={"host": own}).status_code == 200, own


@pytest.mark.parametrize(
  "headers",
  [
    {"origin": "http://evil.example"},
    {"origin": "http://localhost:1"},  # another port of this machine: another origin
    {"origin": "null"},  # a sandboxed frame or a file: page
    {"sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors"},
  ],
)
def test_an_upload_from_another_web_page_is_refused_unread(keyed, recognize_spy, headers):
  """A multipart POST needs no CORS preflight: without the check any page could make its
  visitor's browser upload to the service (finding 1's scan bomb included)."""
  url, _, spy, _ = keyed
  reads = spy.body_reads
  with httpx.Client(base_url=url, timeout=60, headers=WITH_KEY) as client:
    response = upload(client, **headers)
  assert_error(response, 403, "forbidden_origin")
  assert spy.body_reads == reads and not recognize_spy
  # `null` is sent by every sandboxed frame and local file: never offered as the way out.
  assert "--allowed-origin null" not in response.json()["message"]


@pytest.mark.parametrize("origin", ["null", "app.example", "https://app.example/page", ""])
def test_an_allowed_origin_must_be_a_web_origin(origin):
  with pytest.raises(ConfigError, match="is not a web origin"):
    dataclasses.replace(SERVE_CONFIG, allowed_origins=(origin,))


def test_the_service_s_own_page_may_upload(keyed, recognize_spy):
  url, _, _, _ = keyed
  with httpx.Client(base_url=url, timeout=60, headers=WITH_KEY) as client:
    response = upload(client, origin=url, **{"sec-fetch-site": "same-origin"})
    assert response.status_code == 200, response.text
    # A link from another site to the page (a navigation) opens it.
    page = client.get("/", headers={"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"})
    assert page.status_code == 200
  assert len(recognize_spy) == 1


def raw_response_head(url: str, request: bytes) -> dict:
  """The status and headers of the answer to `request`, sent as is."""
  host, port = url.removeprefix("http://").split(":")
  with socket.create_connection((host, int(port)), timeout=30) as sock:
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
      chunk = sock.recv(65536)
      if not chunk:
        break
      data += chunk
  status_line, *lines = data.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
  headers = {name.lower(): value for name, value in (line.split(": ", 1) for line in lines)}
  return {"status": int(status_line.split()[1]), **headers}


def test_every_answer_carries_the_security_headers(keyed, monkeypatch):
  url, app, _, _ = keyed
  over = SERVE_CONFIG.max_bytes + 1
  with httpx.Client(base_url=url, timeout=60, headers=WITH_KEY) as client:
    answers = {
      200: client.get("/v1/info"),
      401: client.get("/v1/info", headers={"authorization": ""}),
      403: client.get("/v1/info", headers={"host": "evil.example"}),
      404: client.get("/v1/nothing-here"),
      405: client.get("/v1/recognize"),
      "healthz": client.get("/healthz"),
      "metrics": client.get("/metrics"),
    }
    monkeypatch.setattr(app.state.service, "info", lambda: 1 / 0)
    answers[500] = client.get("/v1/info")
  head = (
    f"POST /v1/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n"
    f"Content-Type: image/jpeg\r\nContent-Length: {over}\r\n\r\n"
  )
  answers[413] = httpx.Response(**_as_response(raw_response_head(url, head.encode())))
  for what, response in answers.items():
    if isinstance(what, int):
      assert response.status_code == what, (what, response.text)
    assert response.headers["x-content-type-options"] == "nosniff", what
    assert response.headers["x-frame-options"] == "DENY", what
    assert response.headers["referrer-policy"] == "no-referrer", what
    assert response.headers["content-security-policy"] == JSON_POLICY, what
  for what in (200, 401, 403, 404, 405, 413, 500):  # the paths under /v1/
    assert answers[what].headers["cache-control"] == "no-store", what


def _as_response(head: dict) -> dict:
  status = head.pop("status")
  return {"status_code": status, "headers": head}


def inline_sources(page: str, tag: str) -> set[str]:
  """The CSP source of each inline `tag` element of `page`, computed here by a regex, apart
  from the service's HTML parser."""
  blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.DOTALL)
  assert blocks
  return {
    "'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
    for b in blocks
  }


def test_the_page_policy_names_exactly_its_inline_script_and_style(keyed):
  url, _, _, _ = keyed
  page = importlib.resources.files("landmark_jax.serve").joinpath("page.html").read_text()
  response = httpx.get(url + "/")
  assert response.text == page
  policy = dict(
    (d.split()[0], set(d.split()[1:]))
    for d in response.headers["content-security-policy"].split("; ")
  )
  assert policy["script-src"] == inline_sources(page, "script")
  assert policy["style-src"] == inline_sources(page, "style")
  assert policy["default-src"] == {"'none'"} and policy["frame-ancestors"] == {"'none'"}
  assert policy["connect-src"] == {"'self'"} and "blob:" in policy["img-src"]  # thumbnails
  assert "cache-control" not in response.headers  # the page holds no answer


def test_the_browser_asks_for_the_key_and_sends_it_under_the_policy(keyed, tmp_path):
  """The page in headless Chromium, which enforces the policy: its script runs (the key
  field appears, answers come), its style applies, and its fetches carry the key."""
  from tests.serve.test_upload_page import browser, by, wait_for_cards

  driver = browser()  # skips when Chromium is absent, as the page's own test does
  from selenium.webdriver.support.ui import WebDriverWait

  url, _, _, _ = keyed
  try:
    driver.get(url + "/")
    key_form = driver.find_element(by().ID, "key-form")
    WebDriverWait(driver, 30).until(lambda d: key_form.is_displayed())  # /v1/info said 401
    # The inline style applies: `body { max-width: 52rem }` at 16 px a rem.
    assert driver.execute_script("return getComputedStyle(document.body).maxWidth") == "832px"
    driver.find_element(by().ID, "api-key").send_keys(KEY)
    key_form.find_element(by().TAG_NAME, "button").click()
    threshold = driver.find_element(by().ID, "threshold")
    WebDriverWait(driver, 30).until(lambda d: threshold.get_attribute("data-eta"))
    assert float(threshold.get_attribute("data-eta")) == pytest.approx(0.9, abs=1e-6)
    path = tmp_path / "a.jpg"
    path.write_bytes(PHOTO)
    driver.find_element(by().ID, "photo").send_keys(str(path))
    (card,) = wait_for_cards(driver, 1)
    assert card.get_attribute("data-state") == "done"
    assert driver.execute_script("return sessionStorage.getItem('landmark_jax_api_key')") == KEY
  finally:
    driver.quit()


def test_allowed_origins_get_cors_and_may_upload(keyed):
  """`--allowed-origin`: another web page that may call the service, whose browser can then
  read the answers; its preflight carries no key and is answered before the key gate."""
  config = dataclasses.replace(SERVE_CONFIG, allowed_origins=("https://app.example",))
  app = create_app(keyed[3], config, api_key=KEY)
  client = TestClient(app, base_url="http://localhost")  # no lifespan: no device batches
  preflight = client.options(
    "/v1/recognize",
    headers={
      "origin": "https://app.example",
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization",
    },
  )
  assert preflight.status_code == 200, preflight.text
  assert preflight.headers["access-control-allow-origin"] == "https://app.example"
  assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
  info = client.get("/v1/info", headers={"origin": "https://app.example", **WITH_KEY})
  assert info.status_code == 200
  assert info.headers["access-control-allow-origin"] == "https://app.example"
  other = client.get("/v1/info", headers={"origin": "https://other.example", **WITH_KEY})
  assert_error(other, 403, "forbidden_origin")
  assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
  "allowed, listen, answered, refused",
  [
    ((), None, ["localhost", "127.0.0.1:80", "[::1]", "LocalHost."], ["evil.example", "10.0.0.1"]),
    ((), "192.168.1.5", ["192.168.1.5:8000", "localhost"], ["192.168.1.6", "evil.example"]),
    # Every interface: any address (an address cannot be rebound), no name.
    ((), "0.0.0.0", ["10.0.0.1:8000", "[fe80::1]", "localhost"], ["evil.example"]),
    (
      ("example.org",),
      None,
      ["example.org:443", "localhost"],
      ["a.example.org", "example.org.evil"],
    ),
    (("*",), None, ["evil.example", "localhost"], []),
  ],
)
def test_host_names_answered(allowed, listen, answered, refused):
  gate = HostOriginGate(None, allowed_hosts=allowed, listen_host=listen)
  assert [h for h in answered if not gate.host_allowed(h)] == []
  assert [h for h in refused if gate.host_allowed(h)] == []


def test_bearer_keys_and_where_the_api_key_comes_from(tmp_path, monkeypatch):
  assert bearer_matches({"authorization": f"Bearer {KEY}"}, KEY)
  assert bearer_matches({"authorization": f"bearer  {KEY} "}, KEY)
  for wrong in ("", KEY, f"Bearer {KEY[:-1]}", f"Bearer {KEY}0", f"Basic {KEY}"):
    assert not bearer_matches({"authorization": wrong}, KEY), wrong
  monkeypatch.delenv(API_KEY_ENV, raising=False)
  assert api_key(None) is None
  monkeypatch.setenv(API_KEY_ENV, f" {KEY}\n")
  assert api_key(None) == KEY
  key_file = tmp_path / "key"
  key_file.write_text("short\n")
  with pytest.raises(UsageError, match="--api-key-file .*5 characters"):
    api_key(key_file)


def test_the_admin_route_wants_its_own_key_not_the_api_key(keyed):
  """One Authorization header cannot carry two keys: the admin route is past the API gate."""
  admin = "an-admin-key-of-32-characters-01"
  app = create_app(keyed[3], SERVE_CONFIG, api_key=KEY, admin_key=admin)
  client = TestClient(app, base_url="http://localhost")
  reload = "/v1/admin/reload"
  assert_error(client.post(reload, headers=WITH_KEY), 401, "unauthorized")
  # The admin key passes; this app has no index folder to reload.
  assert_error(
    client.post(reload, headers={"authorization": f"Bearer {admin}"}), 409, "no_index_folder"
  )
  assert_error(
    client.get("/v1/info", headers={"authorization": f"Bearer {admin}"}), 401, "unauthorized"
  )
