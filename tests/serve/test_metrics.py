"""`GET /metrics` over the real socket: the counters equal the requests this test sent, by
route and status, and the batch, answer and score figures agree with /v1/info and the
answers themselves."""

import collections

import httpx

from tests.helpers import mini_photos
from tests.serve.conftest import metric_delta as delta
from tests.serve.conftest import scrape

# `server` (the running service, without an admin key) is tests/serve/conftest.py's.


def test_metrics_count_what_was_sent(server, landmarks_mini):
  url, _ = server
  photos = [p.read_bytes() for p in mini_photos(landmarks_mini, 4)]
  jpeg = {"content-type": "image/jpeg"}
  answers = []
  with httpx.Client(base_url=url, timeout=60) as client:
    info_before = client.get("/v1/info").json()["batching"]
    before = scrape(client)
    for data in photos[:3]:
      response = client.post("/v1/recognize", content=data, headers=jpeg)
      assert response.status_code == 200
      answers.append(response.json())
    batch = client.post(
      "/v1/recognize:batch",
      files=[("images", ("a.jpg", photos[3], "image/jpeg"))]
      + [("images", ("b.jpg", photos[0], "image/jpeg"))]
      + [("images", ("broken.jpg", b"not a photo", "image/jpeg"))],
    )
    assert batch.status_code == 200
    answers += batch.json()["results"][:2]
    sent = collections.Counter({("/v1/recognize", "200"): 3, ("/v1/recognize:batch", "200"): 1})
    for content, headers, status in (
      (b"", jpeg, 400),  # empty_body
      (b"{}", {"content-type": "application/json"}, 415),
      (b"\xff" * 2_000_001, jpeg, 413),  # over SERVE_CONFIG.max_bytes: before any route
    ):
      assert client.post("/v1/recognize", content=content, headers=headers).status_code == status
      sent["/v1/recognize", str(status)] += 1
    assert client.get("/no/such/path").status_code == 404
    assert client.get("/v1/recognize/../../etc/passwd").status_code == 404
    sent["other", "404"] += 2
    assert client.post("/v1/admin/reload").status_code == 404  # no admin key: no route
    sent["other", "404"] += 1
    assert client.get("/v1/recognize").status_code == 405
    sent["/v1/recognize", "405"] += 1
    assert client.get("/healthz").status_code == 200
    sent["/healthz", "200"] += 1
    info_after = client.get("/v1/info").json()["batching"]
    sent["/v1/info", "200"] += 1  # the one before the first scrape is not in the delta
    sent["/metrics", "200"] += 1  # the first scrape; a scrape counts itself after answering
    after = scrape(client)

  counted = {
    (dict(labels)["route"], dict(labels)["status"]): after[name, labels]
    - before.get((name, labels), 0)
    for name, labels in after
    if name == "landmark_http_requests_total"
  }
  assert {key: n for key, n in counted.items() if n} == dict(sent)
  for route in {route for route, _ in sent}:
    assert delta(before, after, "landmark_http_request_duration_seconds_count", route=route) == sum(
      n for (r, _), n in sent.items() if r == route
    )
  assert after["landmark_http_requests_in_flight", ()] == 1  # the scrape itself

  # Device batches: as many as /v1/info counted, holding the 5 photos recognised.
  batches = info_after["batches"] - info_before["batches"]
  assert batches >= 1
  assert delta(before, after, "landmark_batch_size_count") == batches
  assert (
    delta(before, after, "landmark_batch_size_sum")
    == 5
    == (info_after["photos"] - info_before["photos"])
  )
  assert delta(before, after, "landmark_decode_refusals_total", reason="undecodable_image") == 1
  assert delta(before, after, "landmark_decode_refusals_total", reason="empty_body") == 1

  accepted = sum(a["is_landmark"] for a in answers)
  assert delta(before, after, "landmark_answers_total", decision="accepted", reason="") == accepted
  reasons = collections.Counter(a["reason"] for a in answers if not a["is_landmark"])
  for reason, n in reasons.items():
    assert delta(before, after, "landmark_answers_total", decision="rejected", reason=reason) == n
  scored = [a["score"] for a in answers if a["candidates"]]
  assert delta(before, after, "landmark_best_score_count") == len(scored)
  for le in ("0.5", "0.8", "0.85", "0.9", "0.95", "0.99", "1.0"):
    assert delta(before, after, "landmark_best_score_bucket", le=le) == sum(
      s <= float(le) for s in scored
    ), le
  # Given an index object, not its folder: no version to name, and no reloads.
  (index_info,) = [labels for name, labels in after if name == "landmark_index_info"]
  assert dict(index_info)["version"] == "None" and after["landmark_index_info", index_info] == 1
  assert after["landmark_index_reloads_total", (("result", "refused"),)] == 0
