"""Live edits: `add-landmarks` and `calibrate` run against the served index while 16 clients
keep sending photos; every request is answered (200), each answer from one index version
(its `index_version`, its candidates among that version's landmarks, its decision that
version's η). Then indexes that must not be served (another model's, half-written, damaged)
are refused, and the old one kept. All over the real socket."""

import concurrent.futures
import csv
import dataclasses
import os
import shutil
import threading
import time

import httpx
import numpy as np
import pytest

from landmark_jax.cli import main
from landmark_jax.index import CentroidIndex
from landmark_jax.recognize import Recognizer
from landmark_jax.recognize.decision import public_landmark_id
from landmark_jax.serve.app import create_app
from landmark_jax.serve.reload import IndexSource, read_version
from tests.serve.conftest import SERVE_CONFIG, app_in_thread, scrape
from tests.serve.conftest import metric_delta as delta

ADMIN_KEY = "k" * 8 + "0123456789abcdef"
# Each edit adds a landmark of landmarks-mini under its own name (a new id), or calibrates.
ADDED = {"piazza_san_marco_venice": "1", "mini_landmark_4": "4", "berliner_dom": "0"}


def landmark_set(index: CentroidIndex) -> set[str]:
  return {public_landmark_id(i) for i in index.label_map.to_landmark_ids(np.unique(index.labels))}


@pytest.fixture(scope="module")
def live(trained, tiny_trained, index_dir, tmp_path_factory):
  """The service over a calibrated copy of the index, polling its manifest every 0.2 s and
  with an admin key: (base URL, the index folder, the workdir)."""
  index = tmp_path_factory.mktemp("live") / "index"
  shutil.copytree(index_dir / "index", index)
  workdir = str(tiny_trained[0])
  assert main(["calibrate", "--checkpoint", workdir, "--index", str(index)]) == 0
  version = read_version(index)  # before the load, as `IndexSource` asks
  recognizer = Recognizer(trained, CentroidIndex.load(index), batch_size=SERVE_CONFIG.max_batch)
  app = create_app(
    recognizer,
    dataclasses.replace(SERVE_CONFIG, reload_poll_s=0.2),
    source=IndexSource(index, version),
    admin_key=ADMIN_KEY,
  )
  with app_in_thread(app, log_level="warning") as url:
    yield url, index, workdir


def wait_for_version(client: httpx.Client, version: str, timeout: float = 60) -> dict:
  deadline = time.monotonic() + timeout
  while True:
    info = client.get("/v1/info").json()
    if info["index"]["version"] == version:
      return info
    assert time.monotonic() < deadline, f"still serving {info['index']['version']}, not {version}"
    time.sleep(0.05)


def photo_folder(root, landmarks_mini, name: str, landmark_id: str):
  rows = csv.DictReader(open(landmarks_mini / "train.csv"))
  folder = root / name
  (folder / name).mkdir(parents=True)
  for row in rows:
    if row["landmark_id"] == landmark_id:
      i = row["id"]
      path = landmarks_mini / "images" / i[0] / i[1] / i[2] / f"{i}.jpg"
      (folder / name / path.name).symlink_to(path)
  return folder


def test_edits_under_load_answer_every_request_from_one_version(live, landmarks_mini, tmp_path):
  url, index, workdir = live
  edits = [
    ["add-landmarks", "--folder", photo_folder(tmp_path, landmarks_mini, name, lid)]
    for name, lid in ADDED.items()
  ]
  edits.insert(1, ["calibrate"])
  edits.insert(3, ["calibrate"])
  photos = [p.read_bytes() for p in sorted((landmarks_mini / "images").rglob("*.jpg"))]
  versions = {}  # served version → (its landmarks, its η)
  client = httpx.Client(base_url=url, timeout=120)
  info = wait_for_version(client, read_version(index).short)
  versions[info["index"]["version"]] = (landmark_set(CentroidIndex.load(index)), info["eta"])
  before = scrape(client)

  stop = threading.Event()

  def load(worker: int) -> list:
    results = []
    with httpx.Client(base_url=url, timeout=120) as c:
      i = worker
      while not stop.is_set():
        i += 1
        if i % 4 == 0:  # a batch request: all its photos from one version
          files = [
            ("images", (f"{j}.jpg", photos[(i + j) % len(photos)], "image/jpeg")) for j in range(3)
          ]
          response = c.post("/v1/recognize:batch", files=files)
          answers = response.json()["results"] if response.status_code == 200 else []
        else:
          response = c.post(
            "/v1/recognize", content=photos[i % len(photos)], headers={"content-type": "image/jpeg"}
          )
          answers = [response.json()] if response.status_code == 200 else []
        results.append((response.status_code, answers, response.text[:300]))
    return results

  with concurrent.futures.ThreadPoolExecutor(16) as pool:
    clients = [pool.submit(load, worker) for worker in range(16)]
    try:
      for edit in edits:
        argv = [edit[0], "--checkpoint", workdir, "--index", str(index), *map(str, edit[1:])]
        if edit[0] == "add-landmarks":
          argv.append("min_cluster_size=2")  # a landmark of 3-5 photos keeps its pairs
        assert main(argv) == 0, argv
        version = read_version(index).short
        assert version not in versions
        info = wait_for_version(client, version)  # served before the next edit lands
        versions[version] = (landmark_set(CentroidIndex.load(index)), info["eta"])
      time.sleep(1.0)  # some answers from the last version too
    finally:
      stop.set()
    results = [r for c in clients for r in c.result()]

  failed = [(status, text) for status, _, text in results if status != 200]
  assert not failed, failed[:5]
  assert len(results) > 100
  served_versions = set()
  for _, answers, _ in results:
    assert len({a["index_version"] for a in answers}) == 1  # one version per request
    for answer in answers:
      version = answer["index_version"]
      assert version in versions, version
      served_versions.add(version)
      landmarks, eta = versions[version]
      assert {c["landmark_id"] for c in answer["candidates"]} <= landmarks, version
      if answer["is_landmark"]:
        assert answer["landmark_id"] in landmarks and answer["score"] >= eta
      elif answer["reason"] == "below_threshold":
        assert answer["score"] < eta
  print(
    f"\nlive edits: {len(edits)} edits while 16 clients sent {len(results)} requests "
    f"({sum(len(answers) for _, answers, _ in results)} photos), all answered; "
    f"{len(served_versions)} of {len(versions)} index versions answered"
  )
  # Swaps happened under load: answers came from the first version, the last, and between.
  assert len(served_versions) >= 3 and list(versions)[-1] in served_versions
  added_seen = {
    c["landmark_id"] for _, answers, _ in results for a in answers for c in a["candidates"]
  } & set(ADDED)
  assert added_seen  # the new landmarks are answered, from the versions that have them

  info = client.get("/v1/info").json()
  assert info["reloads"]["ok"] == len(edits) and info["reloads"]["refused"] == 0
  assert info["index"]["edits"] == read_version(index).edits >= len(ADDED)
  after = scrape(client)
  assert delta(before, after, "landmark_index_reloads_total", result="ok") == len(edits)
  assert delta(before, after, "landmark_index_reloads_total", result="refused") == 0
  (index_info,) = [labels for name, labels in after if name == "landmark_index_info"]
  assert dict(index_info)["version"] == list(versions)[-1]
  client.close()


def test_indexes_that_must_not_be_served_are_refused(live, landmarks_mini):
  url, index, _ = live
  photo = sorted((landmarks_mini / "images").rglob("*.jpg"))[0].read_bytes()
  good = CentroidIndex.load(index)
  client = httpx.Client(base_url=url, timeout=60)
  served = wait_for_version(client, read_version(index).short)["index"]["version"]
  before = scrape(client)

  def refused_after(count: int) -> dict:
    deadline = time.monotonic() + 30
    while (info := client.get("/v1/info").json())["reloads"]["refused"] < count:
      assert time.monotonic() < deadline
      time.sleep(0.05)
    return info

  def still_served() -> None:
    response = client.post("/v1/recognize", content=photo, headers={"content-type": "image/jpeg"})
    assert response.status_code == 200 and response.json()["index_version"] == served

  refused = client.get("/v1/info").json()["reloads"]["refused"]
  # Another model's embeddings (a valid index otherwise): refused by provenance, once.
  good.with_metadata(checkpoint="another_run@7").save(index)
  info = refused_after(refused + 1)
  assert "another_run@7" in info["reloads"]["last_refusal"]
  time.sleep(1.0)  # five more polls of the same manifest: not refused (nor logged) again
  info = client.get("/v1/info").json()
  assert info["reloads"]["refused"] == refused + 1 and info["index"]["version"] == served
  still_served()

  # A half-written manifest (put in place at once: the poll must see one change, not two).
  (index / "manifest.tmp").write_text('{"format_version": 2, "embedding_')
  os.replace(index / "manifest.tmp", index / "manifest.json")
  info = refused_after(refused + 2)
  assert info["index"]["version"] == served
  still_served()

  # The admin route: only with the key, and it refuses a damaged file the poll cannot see
  # (the manifest is unchanged; the checksums catch it).
  good.save(index)
  authorized = {"authorization": f"Bearer {ADMIN_KEY}"}
  # Seen before it is damaged (an admin reload waits for a poll's): no poll reads it mid-write.
  # Saved again, its manifest is a new version (a save records when it was made).
  response = client.post("/v1/admin/reload", headers=authorized)
  served = read_version(index).short
  assert response.status_code == 200 and response.json()["index"]["version"] == served
  with open(index / "centroids.npy", "r+b") as f:
    f.seek(-8, 2)
    f.write(b"\x00\x01\x02\x03\x04\x05\x06\x07")
  for headers in (
    {},
    {"authorization": "Bearer wrong-key-0123456789"},
    {"authorization": ADMIN_KEY},
  ):
    response = client.post("/v1/admin/reload", headers=headers)
    assert response.status_code == 401 and response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"
  response = client.post("/v1/admin/reload", headers=authorized)
  assert response.status_code == 422 and response.json()["error"] == "index_refused"
  assert "checksum" in response.json()["message"] and served in response.json()["message"]
  still_served()

  good.save(index)  # the index as it was
  response = client.post("/v1/admin/reload", headers=authorized)
  assert response.status_code == 200 and response.json()["outcome"] in ("unchanged", "reloaded")
  served = read_version(index).short
  assert response.json()["index"]["version"] == served
  still_served()
  after = scrape(client)
  assert delta(before, after, "landmark_index_reloads_total", result="refused") == 3
  client.close()
